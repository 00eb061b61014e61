/**
 * Finds the API key in a request: `X-Api-Key` or `Authorization: Bearer`, never the query
 * string. An `Authorization` header with another scheme (e.g. Basic for a legacy upstream)
 * is not ours and is left alone.
 *
 * This file is the only reader of `Authorization` values: the credential keygate checks
 * (extractCredential) and the copies the rewrite step drops (carriesKey, used by
 * pipeline/rewrite.ts) come from the same parse, so a key keygate would read is never one it
 * forwards.
 *
 * The reading is lenient on purpose — wherever another parser (the upstream's, a framework's)
 * might find a Bearer credential, keygate finds it first, and verifies it or drops it:
 *
 *  - the scheme is case-insensitive (RFC 9110 §11.1);
 *  - between scheme and token any run of whitespace: one or more SP (RFC 9110 §11.4,
 *    `1*SP`), HTAB, or a mix (RFC 6750 allows only one SP; servers commonly take more);
 *    "whitespace" is what String#trim removes — in a header value, where node refuses CR,
 *    LF and the other controls, that is SP, HTAB and NBSP (0xA0);
 *  - whitespace around the value and around the token is ignored;
 *  - a value that is a comma-separated list (two Authorization fields joined by a proxy,
 *    RFC 9110 §5.3) is read element by element: one distinct Bearer token in it is the
 *    token, two different ones are a conflict (400), like X-Api-Key and Bearer disagreeing.
 *
 * X-Api-Key: trimmed (whitespace as above); never split (apiKeyOf). It is dropped on every
 * route, whatever it holds.
 */
import type { IncomingHttpHeaders } from 'node:http';

export interface Credential {
  key: string;
  /** Which headers carried it, so the rewrite step removes exactly those. */
  inApiKey: boolean;
  inAuthorization: boolean;
}

/** Two different credentials (X-Api-Key and Bearer, or two of either). A symbol: no token can be mistaken for it. */
export const CONFLICT: unique symbol = Symbol('conflicting credentials');

/** JavaScript's whitespace (what String#trim removes). */
const WHITESPACE = /\s/;

/** The token of one list element if it is `Bearer <token>`, else undefined. */
function bearerOf(raw: string): string | undefined {
  const element = raw.trim();
  if (element.length < 8 || !WHITESPACE.test(element[6]!)) return undefined;
  if ((element.charCodeAt(0) | 0x20) !== 98 /* b */ || element.slice(0, 6).toLowerCase() !== 'bearer') return undefined;
  const token = element.slice(7).trim();
  return token === '' ? undefined : token;
}

/** The Bearer tokens of one Authorization value, in order (duplicates kept). */
function bearerTokensOf(value: string, into: string[]): void {
  for (const raw of value.split(',')) {
    const token = bearerOf(raw);
    if (token !== undefined) into.push(token);
  }
}

/** Every value of a header: a string, or (duplicated headers, some node options) an array. */
function valuesOf(value: string | readonly string[] | undefined): readonly string[] {
  return value === undefined ? [] : typeof value === 'string' ? [value] : value;
}

/** The one token of list items: undefined for none, CONFLICT for two different ones. */
function single(items: readonly string[]): string | undefined | typeof CONFLICT {
  if (items.length === 0) return undefined;
  const first = items[0]!;
  for (let i = 1; i < items.length; i++) if (items[i] !== first) return CONFLICT;
  return first;
}

/**
 * The token of `Authorization: Bearer <token>` (see the file comment for the whitespace and
 * list rules): undefined when the value carries no Bearer credential, CONFLICT when it carries
 * two different ones.
 */
export function bearerToken(value: string | readonly string[] | undefined): string | undefined | typeof CONFLICT {
  // Most requests: no Authorization, or one field holding one credential — no arrays.
  if (value === undefined) return undefined;
  if (typeof value === 'string' && !value.includes(',')) return bearerOf(value);
  const tokens: string[] = [];
  for (const v of valuesOf(value)) bearerTokensOf(v, tokens);
  return single(tokens);
}

/**
 * Whether one Authorization field may not be forwarded because it carries something of the
 * key shape (`<prefix>_…`): a Bearer token as bearerToken reads it (or any word of it); or,
 * whatever the scheme (`Token kg_…`, a bare `kg_…`), a key-shaped word — keygate never reads
 * those as credentials, but it never hands a key to an upstream either.
 */
export function carriesKey(value: string, keyPrefix: string): boolean {
  const marker = `${keyPrefix}_`;
  if (!value.includes(marker)) return false;
  const tokens: string[] = [];
  bearerTokensOf(value, tokens);
  for (const token of tokens) if (token.startsWith(marker)) return true;
  // A key-shaped word anywhere: the marker at the start or after a character that cannot be
  // part of a token68 (RFC 9110 §11.2), i.e. not glued to a longer word.
  for (let at = value.indexOf(marker); at !== -1; at = value.indexOf(marker, at + 1)) {
    if (at === 0 || !/[A-Za-z0-9._~+/-]/.test(value[at - 1]!)) return true;
  }
  return false;
}

/**
 * X-Api-Key: trimmed, nothing else. Not split at commas: a bare value has no scheme to tell
 * a list from a malformed key, so repeated X-Api-Key headers (which node joins with ", ") are
 * one value that is not a key — 401 invalid_key, never a guess at which copy was meant.
 */
function apiKeyOf(value: string | readonly string[] | undefined): string | undefined {
  if (value === undefined) return undefined;
  const key = (typeof value === 'string' ? value : value.join(', ')).trim();
  return key === '' ? undefined : key;
}

export function extractCredential(headers: IncomingHttpHeaders): Credential | null | typeof CONFLICT {
  const apiKey = headers['x-api-key'];
  const key = apiKeyOf(apiKey);
  const bearer = bearerToken(headers.authorization);
  if (bearer === CONFLICT) return CONFLICT;
  if (key !== undefined) {
    if (bearer !== undefined && bearer !== key) return CONFLICT;
    return { key, inApiKey: true, inAuthorization: bearer !== undefined };
  }
  if (bearer !== undefined) return { key: bearer, inApiKey: apiKey !== undefined, inAuthorization: true };
  return null;
}

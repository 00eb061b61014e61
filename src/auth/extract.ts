/**
 * Finds the API key in a request: `X-Api-Key` or `Authorization: Bearer`, never the query
 * string. An `Authorization` header with another scheme (e.g. Basic for a legacy upstream)
 * is not ours and is left alone.
 */
import type { IncomingHttpHeaders } from 'node:http';

export interface Credential {
  key: string;
  /** Which headers carried it, so the rewrite step removes exactly those. */
  inApiKey: boolean;
  inAuthorization: boolean;
}

export const CONFLICT = 'conflict' as const;

/** The token of an `Authorization: Bearer <token>` header, or undefined. */
export function bearerToken(value: string | undefined): string | undefined {
  if (value === undefined || value.length < 8) return undefined;
  // RFC 9110: the scheme is case-insensitive; one or more spaces follow it.
  if ((value.charCodeAt(0) | 0x20) !== 98 || value.slice(0, 7).toLowerCase() !== 'bearer ') return undefined;
  const token = value.slice(7).trim();
  return token === '' ? undefined : token;
}

export function extractCredential(headers: IncomingHttpHeaders): Credential | null | typeof CONFLICT {
  const apiKey = headers['x-api-key'];
  const bearer = bearerToken(headers.authorization);
  const key = typeof apiKey === 'string' ? apiKey.trim() : undefined;
  if (key) {
    if (bearer !== undefined && bearer !== key) return CONFLICT;
    return { key, inApiKey: true, inAuthorization: bearer !== undefined };
  }
  if (bearer !== undefined) return { key: bearer, inApiKey: apiKey !== undefined, inAuthorization: true };
  return null;
}

/**
 * What a signature scheme (standard.ts, stripe.ts, github.ts) tells the verifier, from the
 * request headers alone — before a byte of the body is read, so a delivery with missing or
 * malformed signature headers, or a stale timestamp, costs no buffering.
 *
 * Every scheme here is HMAC-SHA-256 over `prefix + body`; they differ in what the prefix is,
 * where the signatures are, how they are encoded and what the stored secret means as a key.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { WebhookScheme } from './config.ts';

export interface SignedParts {
  /** What the sender signed ahead of the body (`id.timestamp.`, `timestamp.`, or nothing). */
  readonly prefix: string;
  /** The signed timestamp in seconds since the epoch; null when the scheme signs none (GitHub). */
  readonly timestamp: number | null;
  /** The signatures of the version we verify (32-byte HMAC-SHA-256 values); any one may match. */
  readonly signatures: readonly Buffer[];
}

export interface HeaderProblem {
  readonly problem: 'missing_signature' | 'invalid_signature';
  /** Names what is missing or malformed; never a header's value. */
  readonly detail: string;
}

export interface Scheme {
  readonly name: WebhookScheme;
  parse(headers: IncomingHttpHeaders): SignedParts | HeaderProblem;
  /** The HMAC key a stored secret value stands for, or null if the value cannot be one for this scheme. */
  key(value: string): Buffer | null;
}

/** A header's one value; a list (a header node:http does not join) counts as absent. */
export function single(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return typeof value === 'string' ? value : undefined;
}

/** Decimal seconds, digits only (parseInt would take "12abc" or "+12"). */
export function parseSeconds(text: string): number | null {
  return /^\d{1,12}$/.test(text) ? Number(text) : null;
}

/** 64 hex digits as the 32 bytes they encode, or null (Buffer.from would silently stop at the first non-hex character). */
export function hexDigest(text: string): Buffer | null {
  return /^[0-9a-fA-F]{64}$/.test(text) ? Buffer.from(text, 'hex') : null;
}

/** A secret used as its UTF-8 bytes (Stripe, GitHub); an empty one is no key. */
export function literalKey(value: string): Buffer | null {
  return value.length > 0 ? Buffer.from(value, 'utf8') : null;
}

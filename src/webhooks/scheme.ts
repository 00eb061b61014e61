/**
 * What a signature scheme (standard.ts, stripe.ts, github.ts, slack.ts, shopify.ts,
 * twilio.ts, hmac.ts; schemes.ts picks a route's) tells the verifier, from the request
 * headers and URL alone — before a byte of the body is read, so a delivery with missing or
 * malformed signature headers, or a stale timestamp, costs no buffering.
 *
 * Most schemes are an HMAC over `prefix + body + suffix`, computed while the body streams in;
 * they differ in the prefix, the hash, where the signatures are, how they are encoded and
 * what the stored secret means as a key. Twilio signs text derived from the whole body (the
 * URL and the sorted form parameters): its parts carry `derive`, run once the body is read.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { HmacAlgorithm, WebhookScheme } from '../config/webhooks.ts';

/** What a scheme signs when it is not the body's bytes (Twilio): computed from the whole body. */
export interface Derived {
  /** Candidate signed messages (e.g. the URL with and without its default port); any may match. */
  readonly messages: readonly string[];
  /** Everything signed, once (whichever candidate matches), for the replay id. */
  readonly replay: string;
}

export interface SignedParts {
  /** What the sender signed ahead of the body (`id.timestamp.`, `timestamp.`, or nothing). */
  readonly prefix: string;
  /** What the sender signed after the body (hmac's payload template); none when absent. */
  readonly suffix?: string;
  /** The HMAC's hash; sha256 when absent. */
  readonly algorithm?: HmacAlgorithm;
  /** The signed timestamp in seconds since the epoch; null when the scheme signs none (GitHub). */
  readonly timestamp: number | null;
  /** The signatures of the version we verify (HMAC values of the algorithm's length); any one may match. */
  readonly signatures: readonly Buffer[];
  /** The sender's delivery id, made part of the replay claim (Shopify, hmac with idHeader). */
  readonly deliveryId?: string;
  /** The signed messages from the whole body, or why the body cannot be what was signed (Twilio). */
  readonly derive?: (body: Buffer) => Derived | string;
}

export interface HeaderProblem {
  readonly problem: 'missing_signature' | 'invalid_signature';
  /** Names what is missing or malformed; never a header's value. */
  readonly detail: string;
}

export interface Scheme {
  readonly name: WebhookScheme;
  /** @param url the request target as received (path and query); only Twilio reads it. */
  parse(headers: IncomingHttpHeaders, url?: string): SignedParts | HeaderProblem;
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

/** Visible ASCII, at most 256: a delivery id that becomes part of the replay claim. */
export const DELIVERY_ID = /^[\x21-\x7e]{1,256}$/;

/** The standard base64 (with padding) of exactly `bytes` bytes, decoded, or null. */
export function base64Digest(text: string, bytes: number): Buffer | null {
  const chars = Math.ceil(bytes / 3) * 4;
  if (text.length !== chars || !/^[A-Za-z0-9+/]+={0,2}$/.test(text)) return null;
  const decoded = Buffer.from(text, 'base64');
  // Re-encoding catches non-canonical padding bits and misplaced '='.
  return decoded.length === bytes && decoded.toString('base64') === text ? decoded : null;
}

/** `2 * bytes` hex digits, decoded, or null. */
export function hexBytes(text: string, bytes: number): Buffer | null {
  return text.length === 2 * bytes && /^[0-9a-fA-F]+$/.test(text) ? Buffer.from(text, 'hex') : null;
}

/** Length of each algorithm's HMAC in bytes. */
export const DIGEST_BYTES: Record<HmacAlgorithm, number> = { sha1: 20, sha256: 32, sha512: 64 };

/** A secret used as its UTF-8 bytes (Stripe, GitHub, Slack, Shopify, Twilio, hmac); an empty one is no key. */
export function literalKey(value: string): Buffer | null {
  return value.length > 0 ? Buffer.from(value, 'utf8') : null;
}

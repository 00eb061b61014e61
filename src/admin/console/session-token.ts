/**
 * The console's session cookie: a stateless token signed with HMAC-SHA-256, so any keygate
 * instance behind a load balancer accepts a session another instance started (they share
 * the pepper, and the signing key is derived from it). It carries ids and times only:
 *
 *   v1.<base64url JSON {sid, kid, ten, iat, exp, max}>.<base64url HMAC of "v1.<payload>">
 *
 *   sid  random session id (the CSRF token and sign-out are tied to it)
 *   kid  the id of the admin key signed in with (re-checked in the store on every request)
 *   ten  its tenant scope: null for a platform admin
 *   iat  sign-in time; exp  idle deadline (slides); max  absolute deadline (never slides)
 *
 * Signed, not encrypted: nothing in it is secret (a key id is a public handle). The typed
 * key never goes into it. The signing and CSRF keys are HKDF-SHA-256 of the pepper with
 * labels of their own, so neither can be used as the other, nor as a key hash.
 *
 * @example
 *   const tokens = new SessionTokens(pepper);
 *   const cookie = tokens.sign({ sid: newSessionId(), kid: 'key_…', ten: null, iat: now, exp: now + idle, max: now + maxMs });
 *   tokens.verify(cookie, Date.now());   // the payload, or null (bad signature, malformed, expired)
 */
import { createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';

export interface SessionPayload {
  sid: string;
  kid: string;
  ten: string | null;
  iat: number;
  exp: number;
  max: number;
}

const VERSION = 'v1';
const SESSION_LABEL = 'keygate console session v1';
const CSRF_LABEL = 'keygate console csrf v1';
/** Larger than any token keygate signs; a longer cookie is refused before any parsing. */
const MAX_TOKEN_LENGTH = 1024;

function derive(pepper: string, label: string): Buffer {
  return Buffer.from(hkdfSync('sha256', pepper, Buffer.alloc(0), label, 32));
}

function sameBytes(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export const newSessionId = (): string => randomBytes(16).toString('base64url');

function isPayload(value: unknown): value is SessionPayload {
  if (value === null || typeof value !== 'object') return false;
  const v = value as Record<string, unknown>;
  const isTime = (n: unknown) => typeof n === 'number' && Number.isSafeInteger(n) && n > 0;
  return (
    typeof v.sid === 'string' &&
    v.sid.length > 0 &&
    typeof v.kid === 'string' &&
    v.kid.length > 0 &&
    (v.ten === null || typeof v.ten === 'string') &&
    isTime(v.iat) &&
    isTime(v.exp) &&
    isTime(v.max)
  );
}

export class SessionTokens {
  readonly #signing: Buffer;
  readonly #csrf: Buffer;

  constructor(pepper: string) {
    this.#signing = derive(pepper, SESSION_LABEL);
    this.#csrf = derive(pepper, CSRF_LABEL);
  }

  #mac(text: string): string {
    return createHmac('sha256', this.#signing).update(text).digest('base64url');
  }

  sign(payload: SessionPayload): string {
    const body = `${VERSION}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}`;
    return `${body}.${this.#mac(body)}`;
  }

  /** The payload of a well-signed token that has not passed either deadline, else null. */
  verify(token: string, now: number): SessionPayload | null {
    if (token.length > MAX_TOKEN_LENGTH) return null;
    const parts = token.split('.');
    if (parts.length !== 3 || parts[0] !== VERSION) return null;
    if (!sameBytes(this.#mac(`${parts[0]}.${parts[1]}`), parts[2]!)) return null;
    let payload: unknown;
    try {
      payload = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8'));
    } catch {
      return null;
    }
    if (!isPayload(payload)) return null;
    if (payload.exp <= now || payload.max <= now) return null;
    return payload;
  }

  /** The CSRF token of a session: derived from its id, so nothing has to be stored for it. */
  csrfToken(sid: string): string {
    return createHmac('sha256', this.#csrf).update(sid).digest('base64url');
  }

  csrfMatches(sid: string, sent: string): boolean {
    return sameBytes(this.csrfToken(sid), sent);
  }
}

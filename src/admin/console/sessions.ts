/**
 * Console sessions: an admin key is exchanged once for a short-lived signed cookie
 * (session-token.ts), and the cookie then stands in for the key on the admin API.
 *
 *  - The cookie is HttpOnly, SameSite=Strict, Path=/, and Secure (with the `__Host-`
 *    prefix) when the console's origin is https. It expires after `sessionIdleMs` without
 *    a request (every authenticated request slides it) and at most `sessionMaxMs` after
 *    sign-in (or when the key expires, if sooner).
 *  - Every request re-reads the key record from the store by id: a revoked or expired key,
 *    or one that may no longer use the admin API, ends its sessions at once, on every
 *    instance. Sign-out is recorded in the store too (SessionStore), so a copied cookie is
 *    refused everywhere after it, not only by the instance that saw the sign-out.
 *  - State-changing requests need the session's CSRF token in `X-CSRF-Token` and an
 *    `Origin` equal to the console's; any cookie request a browser marks as coming from
 *    another site or origin (`Sec-Fetch-Site`) is refused.
 *  - Callers that send a key (`X-Api-Key`, Bearer) are not affected by any of this: the
 *    wrapped authenticator handles them exactly as before.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { extractCredential } from '../../auth/extract.ts';
import { toIdentity } from '../../auth/identity.ts';
import type { Directory } from '../../users/directory.ts';
import type { EventSink } from '../../events/event-sink.ts';
import { keyEndsAt, keyState } from '../../keys/key-state.ts';
import type { KeyRecord } from '../../keys/record.ts';
import { KeyService, type Caller } from '../../keys/service.ts';
import type { Logger } from '../../observability/logger.ts';
import { isKeygateError, sendProblem } from '../../http/problem.ts';
import type { KeyStore } from '../../store/key-store.ts';
import type { SessionStore } from '../../store/session-store.ts';
import type { Authenticate } from '../authenticate.ts';
import type { ConsoleConfig } from '../../config/console.ts';
import { newSessionId, SessionTokens, type SessionPayload } from './session-token.ts';

export const CSRF_HEADER = 'x-csrf-token';
const COOKIE = 'keygate_console';
/** `__Host-`: the browser only accepts it Secure, host-only and on Path=/, so no sibling subdomain can plant one. */
const SECURE_COOKIE = `__Host-${COOKIE}`;
const SAFE_METHODS = new Set(['GET', 'HEAD']);

export interface ConsoleSessionsOptions {
  config: ConsoleConfig;
  pepper: string;
  store: Pick<KeyStore, 'get'> & SessionStore;
  /** The users and permission groups in force now (kept current by the store's feed and reloads). */
  directory: Directory;
  systemTenant: string;
  /** The admin API's own key check: sign-in goes through it (and its failed-login audit). */
  keyAuth: Authenticate;
  events: EventSink;
  logger: Logger;
  now?: () => number;
}

/** A request's valid session. */
export interface Session {
  payload: SessionPayload;
  record: KeyRecord;
  caller: Caller;
}

function cookieValues(header: string | undefined, name: string): string[] {
  if (!header) return [];
  const values: string[] = [];
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq !== -1 && part.slice(0, eq).trim() === name) values.push(part.slice(eq + 1).trim());
  }
  return values;
}

/**
 * Browsers mark every request with where it came from; the console's own pages make
 * same-origin requests, and a typed URL or bookmark is `none`. Anything else carrying the
 * cookie (a page on another port of this host is "same-site") is refused.
 */
function siteProblem(req: IncomingMessage): string | null {
  const site = req.headers['sec-fetch-site'];
  if (site === undefined || site === 'same-origin' || site === 'none') return null;
  return `the request came from another ${site === 'same-site' ? 'origin' : 'site'} (Sec-Fetch-Site: ${site})`;
}

export class ConsoleSessions {
  readonly #o: ConsoleSessionsOptions;
  readonly #tokens: SessionTokens;
  readonly #now: () => number;

  constructor(options: ConsoleSessionsOptions) {
    this.#o = options;
    this.#tokens = new SessionTokens(options.pepper);
    this.#now = options.now ?? Date.now;
  }

  /** The origin the console is served at: configured, or this listener as the request reached it. */
  origin(req: IncomingMessage): string {
    if (this.#o.config.origin !== undefined) return this.#o.config.origin;
    return `${(req.socket as TLSSocket).encrypted ? 'https' : 'http'}://${req.headers.host ?? ''}`;
  }

  #secure(req: IncomingMessage): boolean {
    return this.origin(req).startsWith('https:');
  }

  #cookieName(req: IncomingMessage): string {
    return this.#secure(req) ? SECURE_COOKIE : COOKIE;
  }

  /** True when the request carries this console's session cookie (and no key). */
  carriesSession(req: IncomingMessage): boolean {
    return extractCredential(req.headers) === null && cookieValues(req.headers.cookie, this.#cookieName(req)).length > 0;
  }

  #setCookie(req: IncomingMessage, res: ServerResponse, value: string, maxAgeMs: number): void {
    const attributes = [`${this.#cookieName(req)}=${value}`, 'Path=/', `Max-Age=${Math.max(0, Math.floor(maxAgeMs / 1000))}`, 'HttpOnly', 'SameSite=Strict'];
    if (this.#secure(req)) attributes.push('Secure');
    res.setHeader('set-cookie', attributes.join('; '));
  }

  clearCookie(req: IncomingMessage, res: ServerResponse): void {
    this.#setCookie(req, res, '', 0);
  }

  /**
   * Why this request cannot be trusted to come from the console's own pages, or null. For
   * sign-in and every state-changing request: browsers send `Origin` on those, so a missing
   * one means a script or a stripped request, and is refused too.
   */
  originProblem(req: IncomingMessage): string | null {
    const site = siteProblem(req);
    if (site !== null) return site;
    const origin = req.headers.origin;
    if (origin === undefined) return 'the request has no Origin header';
    const expected = this.origin(req);
    if (origin !== expected) {
      const hint = this.#o.config.origin === undefined ? ' (behind a proxy, set admin.console.origin to the URL people open)' : '';
      return `the request's Origin ${origin.slice(0, 200)} is not this console's origin ${expected}${hint}`;
    }
    return null;
  }

  #csrfProblem(req: IncomingMessage, sid: string): string | null {
    const sent = req.headers[CSRF_HEADER];
    return typeof sent === 'string' && this.#tokens.csrfMatches(sid, sent) ? null : `the ${CSRF_HEADER} header is missing or does not belong to this session`;
  }

  #refuse(req: IncomingMessage, res: ServerResponse, detail: string): null {
    this.clearCookie(req, res);
    sendProblem(res, 'invalid_session', `${detail}; sign in again`);
    return null;
  }

  #csrfRefused(req: IncomingMessage, res: ServerResponse, detail: string): null {
    this.#o.logger.warn({ reason: detail, method: req.method, path: (req.url ?? '').split('?')[0] }, 'console: cross-site request refused');
    sendProblem(res, 'csrf_rejected', detail);
    return null;
  }

  /**
   * The request's session, checked against the store; or null once it has answered the
   * request itself (401 invalid_session, 403 csrf_rejected, 503 auth_unavailable). Slides
   * the cookie's idle deadline.
   */
  async resolve(req: IncomingMessage, res: ServerResponse): Promise<Session | null> {
    res.setHeader('x-content-type-options', 'nosniff');
    const now = this.#now();
    const values = cookieValues(req.headers.cookie, this.#cookieName(req));
    if (values.length === 0) return this.#refuse(req, res, 'not signed in');
    // Two cookies of one name: one was planted (or is stale). Trust neither.
    const payload = values.length === 1 ? this.#tokens.verify(values[0]!, now) : null;
    if (payload === null) return this.#refuse(req, res, 'the session has expired or is not valid');
    const problem = SAFE_METHODS.has(req.method ?? '') ? siteProblem(req) : (this.originProblem(req) ?? this.#csrfProblem(req, payload.sid));
    if (problem !== null) return this.#csrfRefused(req, res, problem);
    let record: KeyRecord | null;
    let ended: boolean;
    try {
      [record, ended] = await Promise.all([this.#o.store.get(payload.kid), this.#o.store.isSessionEnded(payload.sid)]);
    } catch (error) {
      if (!isKeygateError(error, 'auth_unavailable')) throw error;
      sendProblem(res, 'auth_unavailable', 'the key store cannot be reached to check the session', { 'retry-after': '1' });
      return null;
    }
    if (ended) return this.#refuse(req, res, 'this session was signed out');
    const state = record === null ? 'revoked' : keyState(record, now);
    if (record === null || state !== 'active') return this.#refuse(req, res, `the key this session was signed in with has ${state === 'expired' ? 'expired' : 'been revoked'}`);
    const identity = toIdentity(record, this.#o.directory);
    if (identity.userDisabled) return this.#refuse(req, res, 'the user the key this session was signed in with acts as is disabled');
    const caller = KeyService.callerFor(record, identity.permissionSet, this.#o.systemTenant);
    if (caller === null || caller.tenant !== payload.ten) return this.#refuse(req, res, 'the key this session was signed in with may no longer use the admin API');
    const renewed: SessionPayload = { ...payload, exp: Math.min(now + this.#o.config.sessionIdleMs, payload.max) };
    this.#setCookie(req, res, this.#tokens.sign(renewed), renewed.exp - now);
    return { payload: renewed, record, caller };
  }

  /**
   * Sign-in: the key in `X-Api-Key` (sent once, by the sign-in form's script) is checked by
   * the admin API's own authenticator; a session cookie is set for it. Null when refused.
   */
  async start(req: IncomingMessage, res: ServerResponse): Promise<Session | null> {
    res.setHeader('x-content-type-options', 'nosniff');
    const problem = this.originProblem(req);
    if (problem !== null) return this.#csrfRefused(req, res, problem);
    const caller = await this.#o.keyAuth(req, res);
    if (caller === null) return null;
    const record = await this.#o.store.get(caller.actor);
    if (record === null) {
      sendProblem(res, 'invalid_key', 'the admin key is not valid');
      return null;
    }
    const now = this.#now();
    // A session never outlives its key: not its expiry, not its rotation's end.
    const max = Math.min(now + this.#o.config.sessionMaxMs, keyEndsAt(record) ?? Infinity);
    const payload: SessionPayload = { sid: newSessionId(), kid: record.id, ten: caller.tenant, iat: now, exp: Math.min(now + this.#o.config.sessionIdleMs, max), max };
    // Audited first: if that fails, the error answer must not carry a working cookie.
    await this.#o.events.audit('console.sign_in', record.id, record.tenant, record.id, { ip: req.socket.remoteAddress ?? '' });
    this.#setCookie(req, res, this.#tokens.sign(payload), payload.exp - now);
    return { payload, record, caller };
  }

  /**
   * Sign-out: the session is recorded as ended in the store (until it would have expired)
   * and the cookie cleared. A cookie that is already invalid is just cleared.
   */
  async end(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    res.setHeader('x-content-type-options', 'nosniff');
    const values = cookieValues(req.headers.cookie, this.#cookieName(req));
    const payload = values.length === 1 ? this.#tokens.verify(values[0]!, this.#now()) : null;
    if (payload === null) {
      this.clearCookie(req, res);
      return true;
    }
    const problem = this.originProblem(req) ?? this.#csrfProblem(req, payload.sid);
    if (problem !== null) return this.#csrfRefused(req, res, problem) ?? false;
    await this.#o.store.endSession(payload.sid, payload.max);
    this.clearCookie(req, res);
    await this.#o.events.audit('console.sign_out', payload.kid, payload.ten ?? this.#o.systemTenant, payload.kid, {});
    return true;
  }

  csrfToken(session: Session): string {
    return this.#tokens.csrfToken(session.payload.sid);
  }

  /**
   * The admin API's authenticator with sessions: a request that carries a key (or no
   * console cookie) is handled by `keyAuth` exactly as before; one that carries only the
   * console cookie by `resolve`.
   */
  authenticator(): Authenticate {
    const keyAuth = this.#o.keyAuth;
    return async (req, res) => {
      if (!this.carriesSession(req)) return keyAuth(req, res);
      return (await this.resolve(req, res))?.caller ?? null;
    };
  }
}

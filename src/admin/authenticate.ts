/**
 * Who is calling the admin listener: the keygate key in `X-Api-Key` (or `Authorization:
 * Bearer`), verified like any other key, and what it may manage (KeyService.callerFor).
 * Answers the request itself (401/403/429/503, problem+json) when the caller is refused, and
 * audits failed logins — at most 60 a minute per instance, so a flood cannot fill the log.
 *
 * Unknown keys count against the client's address exactly as on the proxy
 * (`limits.failedAuth`, auth/failure-limiter.ts; a limiter of its own, so a flood on one
 * listener does not lock the other): past the limit a key this instance has never seen gets
 * 429 before it is hashed or looked up, so a flood of made-up admin keys cannot turn into a
 * flood of store lookups, while an admin key that works is still served. The address is the
 * socket's: the admin listener trusts no X-Forwarded-For.
 *
 * The admin API uses it directly; the web console signs people in with it and wraps it
 * so that a session cookie can stand in for the key (console/session-auth.ts).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extractCredential, CONFLICT } from '../auth/extract.ts';
import type { FailureLimiter } from '../auth/failure-limiter.ts';
import { LOOKUP_REFUSED, type Verifier } from '../auth/verify.ts';
import type { EventSink } from '../events/event-sink.ts';
import { KeyService, type Caller } from '../keys/service.ts';
import { rateLimited } from '../auth/refusals.ts';
import { sendProblem, type ProblemCode } from '../http/problem.ts';

/** The caller, or null when the request was refused (and already answered). */
export type Authenticate = (req: IncomingMessage, res: ServerResponse) => Promise<Caller | null>;

export interface KeyAuthOptions {
  verifier: Verifier;
  events: EventSink;
  systemTenant: string;
  /** Failed authentications per address; null: no limit (limits.failedAuth.max 0). */
  failures?: FailureLimiter | null;
}

/** Failed admin logins are audited, but a flood of them must not flood the audit log. */
class FailureBudget {
  #windowStart = 0;
  #count = 0;
  take(now: number): boolean {
    if (now - this.#windowStart >= 60_000) {
      this.#windowStart = now;
      this.#count = 0;
    }
    return ++this.#count <= 60;
  }
}

export function createKeyAuthenticator({ verifier, events, systemTenant, failures = null }: KeyAuthOptions): Authenticate {
  const budget = new FailureBudget();
  return async function authenticate(req, res) {
    const credential = extractCredential(req.headers);
    const denied = async (code: ProblemCode, detail: string, reason: string) => {
      if (code !== 'auth_unavailable' && budget.take(Date.now())) {
        await events.audit('admin.login_failed', null, null, null, { reason, method: req.method ?? '', path: (req.url ?? '').split('?')[0]!, ip: req.socket.remoteAddress ?? '' }).catch(() => {});
      }
      sendProblem(res, code, detail, code === 'auth_unavailable' ? { 'retry-after': '1' } : { 'www-authenticate': 'Bearer realm="keygate-admin"' });
      return null;
    };
    if (credential === CONFLICT) return denied('conflicting_credentials', 'X-Api-Key and Authorization: Bearer carry different keys', 'conflicting');
    if (credential === null) return denied('missing_credentials', 'send an admin key in X-Api-Key', 'missing');
    // Over the limit, only keys the store has vouched for are verified (auth/failure-limiter.ts).
    const wait = failures?.retryAfter(req, false) ?? 0;
    const verified = wait > 0 ? verifier.verifyKnown(credential.key) : verifier.verify(credential.key);
    if (verified === LOOKUP_REFUSED) {
      const limited = rateLimited(wait);
      sendProblem(res, limited.code, limited.detail, limited.headers);
      return null;
    }
    const result = await verified;
    if (typeof result === 'string') {
      if (verifier.isGuess(credential.key, result)) failures?.failed(req, false);
      const code: ProblemCode = result === 'auth_unavailable' ? 'auth_unavailable' : result;
      return denied(code, 'the admin key is not valid', result);
    }
    const caller = KeyService.callerFor(result.record, result.permissionSet, systemTenant);
    if (caller === null) {
      if (budget.take(Date.now())) {
        await events.audit('admin.login_failed', result.record.id, result.record.tenant, null, { reason: 'not an admin key', path: (req.url ?? '').split('?')[0]! }).catch(() => {});
      }
      sendProblem(res, 'forbidden', `this key may not use the admin API (it needs role admin on tenant "${systemTenant}", or the keys:manage permission)`);
      return null;
    }
    return caller;
  };
}

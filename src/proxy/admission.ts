/**
 * Who gets in: a route's credential check, the same for plain requests (gateway.ts) and
 * WebSocket upgrades (websocket.ts).
 *
 *   failed-auth limit of the client address → API key (verify: cache, store) or OAuth access
 *   token (routes with auth.issuers) → route policy (authorize) → the Identity, or the
 *   Refusal to answer with (a credential that does not work counts against the address)
 *
 * Synchronous when the key or token is cached; a Promise only when the store or a JWKS must
 * be asked. Nothing is allocated on the accepted, cached path.
 *
 * @example
 *   const door = new Door(verifier, FailureLimiter.create(config.limits.failedAuth));
 *   const admission = door.admit(route, req, credential, target.path, policy.trustForwarded);
 */
import type { IncomingMessage } from 'node:http';
import { authorize } from '../auth/authorize.ts';
import type { Credential } from '../auth/extract.ts';
import type { FailureLimiter } from '../auth/failure-limiter.ts';
import type { Identity } from '../auth/identity.ts';
import type { Verifier, VerifyResult } from '../auth/verify.ts';
import type { TokenResult } from '../auth/access-token.ts';
import { forbidden, isFailedAuthentication, isRefusal, keyRefused, rateLimited, tokenRefused, type Refusal } from './auth-answers.ts';
import type { Route } from './router.ts';

export { isRefusal };

export type Admission = Identity | Refusal;

function judge(route: Route, path: string, identity: Identity): Admission {
  const denied = authorize(route, identity, path);
  return denied === null ? identity : { ...forbidden(route, denied), identity };
}

function afterKey(route: Route, path: string, result: VerifyResult): Admission {
  return typeof result === 'string' ? keyRefused(route, result) : judge(route, path, result);
}

function afterToken(route: Route, path: string, result: TokenResult): Admission {
  return typeof result === 'string' ? tokenRefused(route, result) : judge(route, path, result);
}

export class Door {
  readonly #verifier: Verifier;
  readonly #failures: FailureLimiter | null;

  /** @param failures null: no limit on failed authentications (limits.failedAuth.max 0). */
  constructor(verifier: Verifier, failures: FailureLimiter | null) {
    this.#verifier = verifier;
    this.#failures = failures;
  }

  /** `path` is the normalised request path (for `tenantFromPath`). */
  admit(route: Route, req: IncomingMessage, credential: Credential, path: string, trustForwarded: boolean): Admission | Promise<Admission> {
    const failures = this.#failures;
    if (failures === null) return this.#check(route, credential, path);
    // Before any hashing or lookup: a blocked flood costs nothing.
    const wait = failures.retryAfter(req, trustForwarded);
    if (wait > 0) return rateLimited(wait);
    const admission = this.#check(route, credential, path);
    if (admission instanceof Promise) return admission.then((settled) => this.#count(failures, settled, req, trustForwarded));
    return this.#count(failures, admission, req, trustForwarded);
  }

  #count(failures: FailureLimiter, admission: Admission, req: IncomingMessage, trustForwarded: boolean): Admission {
    if (isRefusal(admission) && isFailedAuthentication(admission)) failures.failed(req, trustForwarded);
    return admission;
  }

  #check(route: Route, credential: Credential, path: string): Admission | Promise<Admission> {
    const tokens = route.tokens;
    if (tokens !== null && !credential.inApiKey && !tokens.isKey(credential.key)) {
      const verified = tokens.verify(credential.key);
      return verified instanceof Promise ? verified.then((v) => afterToken(route, path, v)) : afterToken(route, path, verified);
    }
    const result = this.#verifier.verify(credential.key);
    return result instanceof Promise ? result.then((v) => afterKey(route, path, v)) : afterKey(route, path, result);
  }
}

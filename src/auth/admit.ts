/**
 * Who gets in: a route's credential check, the same for plain requests (transports/http.ts) and
 * WebSocket upgrades (websocket.ts).
 *
 *   API key (verify: cache, store — only keys already known while the client address is
 *   over the failed-auth limit) or OAuth access token (routes with auth.issuers) → route
 *   policy (authorize) → the Identity, or the Refusal to answer with (an unknown key counts
 *   against the address)
 *
 * Synchronous when the key or token is cached; a Promise only when the store or a JWKS must
 * be asked. Nothing is allocated on the accepted, cached path.
 *
 * @example
 *   const door = new Door(verifier, FailureLimiter.create(config.limits.failedAuth));
 *   const admission = door.admit(route, req, credential, target.path, policy.trustForwarded);
 */
import type { LastUsed } from '../events/last-used.ts';
import type { Current } from '../pipeline/current.ts';
import type { Exchange } from '../pipeline/exchange.ts';
import type { Stage } from '../pipeline/pipeline.ts';
import type { IncomingMessage } from 'node:http';
import { authorize } from './authorize.ts';
import { CONFLICT, extractCredential, type Credential } from './extract.ts';
import type { FailureLimiter } from './failure-limiter.ts';
import type { Identity } from './identity.ts';
import { LOOKUP_REFUSED, type Verifier, type VerifyResult } from './verify.ts';
import type { TokenResult } from './access-token.ts';
import { CONFLICTING_CREDENTIALS, missingCredentials, forbidden, isRefusal, keyRefused, rateLimited, tokenRefused, type Refusal } from './refusals.ts';
import type { Route } from '../routing/router.ts';


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
    if (failures === null) return this.#check(route, credential, path, false);
    // Over the limit, only keys the store has vouched for are verified (auth/failure-limiter.ts).
    const wait = failures.retryAfter(req, trustForwarded);
    const admission = this.#check(route, credential, path, wait > 0);
    if (admission === LOOKUP_REFUSED) return rateLimited(wait);
    if (admission instanceof Promise) return admission.then((settled) => this.#count(failures, settled, req, credential, trustForwarded));
    return this.#count(failures, admission, req, credential, trustForwarded);
  }

  /**
   * Only a well-formed key the store did not know counts against the address: that is the
   * lookup a flood of made-up keys would cost. A revoked or expired key is no guess; its
   * refusal carries its identity, so the access log names the key still being used.
   */
  #count(failures: FailureLimiter, admission: Admission, req: IncomingMessage, credential: Credential, trustForwarded: boolean): Admission {
    if (!isRefusal(admission) || admission.identity !== undefined) return admission;
    const code = admission.code;
    if (admission.guess === true || this.#verifier.isGuess(credential.key, code)) failures.failed(req, trustForwarded);
    else if (code === 'key_revoked' || code === 'key_expired' || code === 'user_disabled') {
      const identity = this.#verifier.cachedIdentity(credential.key);
      if (identity !== undefined) return { ...admission, identity };
    }
    return admission;
  }

  #check(route: Route, credential: Credential, path: string, knownOnly: false): Admission | Promise<Admission>;
  #check(route: Route, credential: Credential, path: string, knownOnly: boolean): Admission | Promise<Admission> | typeof LOOKUP_REFUSED;
  #check(route: Route, credential: Credential, path: string, knownOnly: boolean): Admission | Promise<Admission> | typeof LOOKUP_REFUSED {
    const tokens = route.tokens;
    if (tokens !== null && !credential.inApiKey && !tokens.isKey(credential.key)) {
      // JWTs are checked against cached issuer keys, never the key store: never limited. A token
      // that would be introspected is, like an unknown key (the lookup is at the issuer).
      const verified = tokens.verify(credential.key, knownOnly);
      if (verified === LOOKUP_REFUSED) return verified;
      return verified instanceof Promise ? verified.then((v) => afterToken(route, path, v)) : afterToken(route, path, verified);
    }
    const result = knownOnly ? this.#verifier.verifyKnown(credential.key) : this.#verifier.verify(credential.key);
    if (result === LOOKUP_REFUSED) return result;
    return result instanceof Promise ? result.then((v) => afterKey(route, path, v)) : afterKey(route, path, result);
  }
}

/**
 * The credential stage (routes that need one): the key or token of X-Api-Key / Authorization:
 * Bearer (extract.ts); none, or two that differ, is refused here.
 */
export const credentialStage: Stage<Exchange> = {
  name: 'credential',
  applies: (route) => route.authRequired,
  run(exchange) {
    const credential = extractCredential(exchange.req.headers);
    if (credential === CONFLICT) return CONFLICTING_CREDENTIALS;
    if (credential === null) return missingCredentials(exchange.route!);
    exchange.credential = credential;
    return undefined;
  },
};

/** Once the Door has answered: the identity goes on the exchange, a refusal is handed back. */
function admitted(exchange: Exchange, admission: Admission, lastUsed: LastUsed | null): Refusal | undefined {
  if (isRefusal(admission)) {
    if (admission.identity !== undefined) exchange.identity = admission.identity;
    return admission;
  }
  exchange.identity = admission;
  exchange.outcome = 'ok';
  // Keys only: an access token has no record in the store to note the use on.
  if (admission.issuer === undefined) lastUsed?.mark(admission.record.id, Date.now());
  return undefined;
}

/**
 * The admit stage: verify (key or token), the failed-auth limit and the route's policy, in
 * one step (Door.admit). Synchronous on a cache hit; a Promise only on a store lookup.
 */
export function admitStage(door: Door, current: Current, lastUsed: LastUsed | null): Stage<Exchange> {
  return {
    name: 'admit',
    applies: (route) => route.authRequired,
    run(exchange) {
      const admission = door.admit(exchange.route!, exchange.req, exchange.credential!, exchange.target!.path, current.state.headers.trustForwarded);
      // Not settle(): its closure would be made on every (cached, synchronous) request.
      return admission instanceof Promise ? admission.then((settled) => admitted(exchange, settled, lastUsed)) : admitted(exchange, admission, lastUsed);
    },
  };
}

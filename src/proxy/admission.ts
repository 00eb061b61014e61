/**
 * Who gets in: a route's credential check, the same for plain requests (gateway.ts) and
 * WebSocket upgrades (websocket.ts).
 *
 *   credential → API key (verify: cache, store) or OAuth access token (routes with
 *   auth.issuers) → route policy (authorize) → the Identity, or the Refusal to answer with
 *
 * Synchronous when the key or token is cached; a Promise only when the store or a JWKS must
 * be asked. Nothing is allocated on the accepted, cached path.
 */
import { authorize } from '../auth/authorize.ts';
import type { Credential } from '../auth/extract.ts';
import type { Identity } from '../auth/identity.ts';
import type { Verifier, VerifyResult } from '../auth/verify.ts';
import type { TokenResult } from '../auth/access-token.ts';
import { forbidden, keyRefused, tokenRefused, type Refusal } from './auth-answers.ts';
import type { Route } from './router.ts';

export type Admission = Identity | Refusal;

export function isRefusal(admission: Admission): admission is Refusal {
  return (admission as Partial<Refusal>).code !== undefined;
}

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

/** `path` is the normalised request path (for `tenantFromPath`). */
export function admit(verifier: Verifier, route: Route, credential: Credential, path: string): Admission | Promise<Admission> {
  const tokens = route.tokens;
  if (tokens !== null && !credential.inApiKey && !tokens.isKey(credential.key)) {
    const verified = tokens.verify(credential.key);
    return verified instanceof Promise ? verified.then((v) => afterToken(route, path, v)) : afterToken(route, path, verified);
  }
  const result = verifier.verify(credential.key);
  return result instanceof Promise ? result.then((v) => afterKey(route, path, v)) : afterKey(route, path, result);
}

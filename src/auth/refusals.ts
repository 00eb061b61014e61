/**
 * What keygate answers when a request is refused at the door: the problem code, the
 * access-log outcome, the detail and the `WWW-Authenticate` challenge (RFC 6750; on MCP
 * routes with `resource_metadata`, route-features.ts). One set of answers for every way in —
 * plain requests (transports/http.ts) and WebSocket upgrades (websocket.ts) — so a client sees the
 * same refusal whichever it tried. Only refusals are built here: the accepted path never
 * calls into this file.
 */
import type { TokenResult } from './access-token.ts';
import { TOKEN_FAILURE_DETAIL } from './access-token.ts';
import type { AuthorizeFailure } from './authorize.ts';
import type { Identity } from './identity.ts';
import type { VerifyFailure } from './verify.ts';
import type { AuthOutcome } from '../pipeline/exchange.ts';
import type { ProblemCode } from '../http/problem.ts';
import type { Route } from '../routing/router.ts';

export interface Refusal {
  code: ProblemCode;
  outcome: AuthOutcome;
  detail: string;
  headers: Record<string, string> | undefined;
  /** Who was refused, when it is known (a 403): for the access log. */
  identity?: Identity;
  /** A made-up credential that cost a lookup elsewhere (an opaque token the issuer says is inactive): counts against the address (admit.ts). */
  guess?: true;
}

/** For refusals that are nobody's fault (the store or an issuer cannot be reached): ask again in a second. */
export const RETRY: Readonly<Record<string, string>> = { 'retry-after': '1' };

/** Tells a Refusal from what was asked for (an Identity, a Route, a verified delivery): only refusals have a `code`. */
export function isRefusal<T extends object>(value: T | Refusal): value is Refusal {
  return (value as Partial<Refusal>).code !== undefined;
}

export function rateLimited(waitSeconds: number): Refusal {
  return { code: 'rate_limited', outcome: 'limited', detail: `too many unknown keys or inactive tokens from this address; try again in ${waitSeconds} s (keys and tokens that work are still served)`, headers: { 'retry-after': String(waitSeconds) } };
}

const VERIFY: Record<VerifyFailure, [ProblemCode, AuthOutcome, string]> = {
  invalid_key: ['invalid_key', 'invalid', 'the API key is not valid'],
  key_revoked: ['key_revoked', 'revoked', 'the API key has been revoked'],
  key_expired: ['key_expired', 'expired', 'the API key has expired'],
  user_disabled: ['user_disabled', 'disabled', 'the user this API key acts as is disabled'],
  auth_unavailable: ['auth_unavailable', 'unavailable', 'the key store cannot be reached; try again shortly'],
};

/** RFC 6750 §3: error_description is %x20-21 / %x23-5B / %x5D-7E — no quote or backslash inside the quoted string. */
function description(detail: string): string {
  return detail.replace(/["\\]/g, "'");
}

function invalidToken(route: Route, code: ProblemCode, outcome: AuthOutcome, detail: string): Refusal {
  return { code, outcome, detail, headers: { 'www-authenticate': `${route.challenge}, error="invalid_token", error_description="${description(detail)}"` } };
}

export function missingCredentials(route: Route): Refusal {
  const detail = route.tokens === null ? 'send the API key in X-Api-Key or Authorization: Bearer' : 'send an API key (X-Api-Key or Authorization: Bearer) or an OAuth access token (Authorization: Bearer)';
  return { code: 'missing_credentials', outcome: 'missing', detail, headers: { 'www-authenticate': route.challenge } };
}

export const CONFLICTING_CREDENTIALS: Refusal = {
  code: 'conflicting_credentials',
  outcome: 'bad_request',
  detail: 'X-Api-Key and Authorization: Bearer carry different keys; send one',
  headers: undefined,
};

export function keyRefused(route: Route, failure: VerifyFailure): Refusal {
  const [code, outcome, detail] = VERIFY[failure];
  if (failure === 'auth_unavailable') return { code, outcome, detail, headers: RETRY };
  return invalidToken(route, code, outcome, detail);
}

export function tokenRefused(route: Route, failure: Exclude<TokenResult, Identity>): Refusal {
  if (failure === 'auth_unavailable' || failure === 'introspection_unavailable' || failure === 'introspection_busy') {
    return { code: 'auth_unavailable', outcome: 'unavailable', detail: TOKEN_FAILURE_DETAIL[failure], headers: RETRY };
  }
  const refusal = invalidToken(route, 'invalid_token', failure === 'token_expired' ? 'expired' : 'invalid', TOKEN_FAILURE_DETAIL[failure]);
  if (failure === 'token_inactive') refusal.guess = true;
  return refusal;
}

export function forbidden(route: Route, denied: AuthorizeFailure): Refusal {
  if (denied === 'forbidden_permission') {
    return { code: denied, outcome: 'forbidden', detail: `this route needs the permissions: ${route.permissions.join(', ')}`, headers: { 'www-authenticate': route.scopeChallenge } };
  }
  if (denied === 'forbidden_environment') return { code: denied, outcome: 'forbidden', detail: `this route has no sandbox upstream, so it does not accept sandbox keys; use a live key`, headers: undefined };
  const detail = denied === 'forbidden_client' ? "this route does not accept keys of this key's client" : "the tenant in the path is not the key's tenant";
  return { code: denied, outcome: 'forbidden', detail, headers: undefined };
}

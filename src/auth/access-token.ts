/**
 * OAuth 2.0 access tokens, for clients that sign in (username and password at an
 * authorization server) instead of holding an API key. A route that names issuers in
 * `auth.issuers` accepts, besides keygate keys, a Bearer JWT that:
 *
 *  - is signed by a key of the issuer's JWKS (jose's createRemoteJWKSet: fetched on first
 *    use, cached `jwks.cacheMaxAgeMs`, fetched again on an unknown `kid` at most once per
 *    `jwks.cooldownMs`, each fetch bounded by `jwks.timeoutMs`) with one of the issuer's
 *    asymmetric `algorithms` (never HS* or none);
 *  - has `iss` equal to the issuer, `aud` equal to (or, as an array, containing) the
 *    route's `mcp.resource` or one of its `mcp.audiences`, an `exp` in the future and no
 *    `nbf` in the future (both with `clockToleranceSeconds`);
 *  - maps to a tenant (a fixed one, or a claim), a user (`sub`), permissions (`scope`,
 *    space-separated, or an array claim) and a client (`client_id`), each of the shape a
 *    key's would have: TENANT_PATTERN, PERMISSION_PATTERN (no comma, no space: permissions
 *    are sent upstream comma-separated), USER_PATTERN, CLIENT_PATTERN. A claim of another
 *    shape refuses the token (401 `invalid_token`, the claim and the reason logged — never
 *    its value); it is never rewritten into something that fits.
 *
 * An opaque token (not a JWT), or a JWT of an issuer without `jwksUri`, is asked about at the
 * issuer's RFC 7662 introspection endpoint instead (introspection.ts; a route names at most
 * one issuer with introspection, the one an opaque token goes to): only `"active": true` with
 * the same aud, exp, nbf and iss checks counts, and its claims are mapped as a JWT's. Such an
 * answer is cached until min(exp, `introspection.cacheMaxAgeMs`): that max age is how long a
 * token revoked at the issuer may still be accepted. An inactive token is remembered for 5 s
 * and counts against the client address like an unknown key (admit.ts); an endpoint that
 * cannot be reached in `timeoutMs`, or too many introspections at once, is 503.
 *
 * The token becomes an Identity like a key's, so route policy (permissions, clients,
 * tenantFromPath) applies unchanged; it is never forwarded (the gateway drops the
 * Authorization header that carried it).
 *
 * A verified token is remembered by its SHA-256 (never the token itself) in a bounded LRU,
 * until min(exp, `oauth.tokenCache.maxAgeMs`), so a client reusing its token costs one hash,
 * synchronously; concurrent first uses share one verification. Failures that cannot change
 * (bad signature, malformed, expired, …) are remembered for 5 s, so a flood of one bad
 * token costs a hash each. A JWKS that cannot be fetched is `auth_unavailable` (503, fail
 * closed), never a pass.
 *
 * @example
 *   const tokens = new AccessTokens(config.oauth, { keyPrefix: 'kg', logger });
 *   const route = tokens.forRoute(routeConfig);        // null: the route takes keys only
 *   const result = route?.verify(bearer);              // Identity | TokenFailure | Promise<…>
 */
import { hash as digest } from 'node:crypto';
import { LOOKUP_REFUSED } from './verify.ts';
import { Introspector, introspectionSecret, type ActiveClaims } from './introspection.ts';
import { createRemoteJWKSet, decodeJwt, errors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { LRUCache } from 'lru-cache';
import type { IssuerConfig, OAuthConfig } from '../config/mcp.ts';
import type { RouteConfig } from '../config/schema.ts';
import { TENANT_PATTERN } from '../keys/format.ts';
import { CLIENT_PATTERN, PERMISSION_PATTERN, USER_PATTERN } from '../keys/patterns.ts';
import type { KeyRecord } from '../keys/record.ts';
import type { Logger } from '../observability/logger.ts';
import type { Identity } from './identity.ts';

export type TokenFailure =
  | 'token_malformed'
  | 'token_issuer'
  | 'token_audience'
  | 'token_expired'
  | 'token_not_yet_valid'
  | 'token_signature'
  | 'token_algorithm'
  | 'token_key'
  | 'token_claims'
  | 'token_tenant'
  | 'token_inactive'
  | 'auth_unavailable'
  | 'introspection_unavailable'
  | 'introspection_busy';

/** Failures that are nobody's fault: 503 auth_unavailable with Retry-After. */
export type TokenUnavailable = 'auth_unavailable' | 'introspection_unavailable' | 'introspection_busy';

export type TokenResult = Identity | TokenFailure;

/**
 * The `error_description` (and problem detail) of each failure: fixed text, never anything
 * taken from the token (it goes into a header, and the token is a credential).
 */
export const TOKEN_FAILURE_DETAIL: Record<TokenFailure, string> = {
  token_malformed: 'the bearer token is neither an API key nor a well-formed JWT',
  token_issuer: 'the token was not issued by an issuer this route accepts',
  token_audience: 'the token audience (aud) is not this resource: it names neither its resource identifier nor another name this route accepts',
  token_expired: 'the token has expired',
  token_not_yet_valid: 'the token is not valid yet (nbf)',
  token_signature: 'the token signature is not valid',
  token_algorithm: 'the token is signed with an algorithm this route does not accept',
  token_key: "no key of the issuer's JWKS matches the token",
  token_claims: 'the token lacks a required claim (exp), or its user, client or scope claims are not usable (a scope must be a permission name: letters, digits, "_", ".", ":", "/", "*" or "-")',
  token_tenant: 'the token carries no usable tenant',
  token_inactive: 'the token is not active at its issuer (revoked, expired or unknown)',
  auth_unavailable: "the token issuer's keys (JWKS) cannot be fetched; try again shortly",
  introspection_unavailable: "the token issuer's introspection endpoint cannot be reached; try again shortly",
  introspection_busy: 'too many new tokens are being checked with the token issuer at once; try again shortly',
};

/** Not cached: they depend on time or on the issuer's key set, which may change any moment. */
const RETRYABLE = new Set<TokenFailure>(['token_not_yet_valid', 'token_key', 'auth_unavailable', 'introspection_unavailable', 'introspection_busy']);
const NEGATIVE_TTL_MS = 5000;
/** Larger than any sane access token; over it, not even a hash is spent. */
const MAX_TOKEN_LENGTH = 16 * 1024;
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
/** RFC 6750 §2.1 b64token: what an opaque token may be, and all that is ever sent to an introspection endpoint. */
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;
/** At most this many permissions from one token. */
const MAX_PERMISSIONS = 256;

/** The JWKS could not be fetched or parsed (as opposed to a token that matches no key in it). */
class JwksUnavailable extends Error {
  override name = 'JwksUnavailable';
}

/** One configured issuer: its JWKS (created once, kept across reloads while its config is unchanged) and claim mapping. */
export class Issuer {
  readonly name: string;
  readonly issuer: string;
  readonly config: IssuerConfig;
  /** Serialised config, to tell an unchanged issuer at reload. */
  readonly fingerprint: string;
  /** null: the issuer has no jwksUri, its JWTs are introspected. */
  readonly getKey: JWTVerifyGetKey | null;
  /** null: the issuer has no introspection endpoint. */
  readonly introspector: Introspector | null;
  readonly #jwks: ReturnType<typeof createRemoteJWKSet> | null;
  readonly #logger: Logger;
  #warmed = false;
  #lastWarning = 0;
  #suppressed = 0;

  /** @param secret the introspection client's secret (introspection.ts), when the issuer has introspection. */
  constructor(config: IssuerConfig, logger: Logger, secret: string | null = null) {
    this.name = config.name;
    this.issuer = config.issuer;
    this.config = config;
    this.fingerprint = JSON.stringify(config);
    this.#logger = logger;
    this.introspector = config.introspection !== undefined && secret !== null ? new Introspector(config.introspection, secret, config.name, logger) : null;
    if (config.jwksUri === undefined) {
      this.#jwks = null;
      this.getKey = null;
      return;
    }
    const jwks = (this.#jwks = createRemoteJWKSet(new URL(config.jwksUri), {
      cacheMaxAge: config.jwks.cacheMaxAgeMs,
      cooldownDuration: config.jwks.cooldownMs,
      timeoutDuration: config.jwks.timeoutMs,
    }));
    this.getKey = async (header, token) => {
      try {
        return await jwks(header, token);
      } catch (error) {
        // A key set that was fetched but has no key for this token is the token's fault;
        // anything else (network, timeout, non-200, not a JWKS) is the issuer being unavailable.
        if (error instanceof errors.JWKSNoMatchingKey || error instanceof errors.JWKSMultipleMatchingKeys || error instanceof errors.JOSENotSupported) throw error;
        this.#warnUnavailable(error);
        throw new JwksUnavailable('JWKS unavailable', { cause: error });
      }
    };
  }

  /** One warning per 5 s with a count, not one per request, while the issuer is unreachable. */
  #warnUnavailable(error: unknown): void {
    const now = Date.now();
    if (now - this.#lastWarning < 5000) {
      this.#suppressed++;
      return;
    }
    this.#logger.warn({ issuer: this.name, err: { message: (error as Error).message }, failuresSinceLast: this.#suppressed }, 'JWKS fetch failed: tokens of this issuer get 503');
    this.#lastWarning = now;
    this.#suppressed = 0;
  }

  /** Fetches the key set ahead of the first token (once, at start or at the reload that added it), so that token does not wait. */
  warm(): void {
    if (this.#warmed || this.#jwks === null) return;
    this.#warmed = true;
    this.#jwks.reload().catch((error: unknown) => this.#logger.warn({ issuer: this.name, err: { message: (error as Error).message } }, 'JWKS not reachable yet; tokens of this issuer get 503 until it is'));
  }
}

interface Verified {
  readonly issuer: Issuer;
  readonly identity: Identity;
  readonly aud: unknown;
  /** Epoch ms after which the entry must not be used (exp + tolerance). */
  readonly until: number;
}

/** `aud` (a string or a list, RFC 7519 §4.1.3) names one of the route's audiences. */
function hasAudience(aud: unknown, audiences: readonly string[]): boolean {
  if (typeof aud === 'string') return audiences.includes(aud);
  if (!Array.isArray(aud)) return false;
  for (const a of aud) if (typeof a === 'string' && audiences.includes(a)) return true;
  return false;
}

/** A claim by name; a name with dots that is not itself a claim is walked as a path (`realm_access.roles`). */
function claim(payload: JWTPayload, name: string): unknown {
  if (Object.hasOwn(payload, name) || !name.includes('.')) return payload[name];
  let value: unknown = payload;
  for (const part of name.split('.')) {
    if (value === null || typeof value !== 'object' || !Object.hasOwn(value, part)) return undefined;
    value = (value as Record<string, unknown>)[part];
  }
  return value;
}

/** Why a verified token cannot stand for an identity: for the log (never a claim value), and the failure to answer with. */
export interface ClaimProblem {
  readonly failure: 'token_tenant' | 'token_claims';
  /** The configured claim name (or `tenant` for a fixed tenant). */
  readonly claim: string;
  readonly reason: string;
}

/** An optional string claim of the given shape: the value, null when absent, or why it is unusable. */
function optionalString(value: unknown, pattern: RegExp, shape: string): string | null | { reason: string } {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'string') return { reason: `is a ${Array.isArray(value) ? 'list' : typeof value}, not a string` };
  return pattern.test(value) ? value : { reason: `is not ${shape}` };
}

/** Permissions: a space-separated string (OAuth `scope`) or a list of strings, each a permission name as a key's. */
function permissionsOf(value: unknown): string[] | { reason: string } {
  if (value === undefined || value === null) return [];
  const list = typeof value === 'string' ? value.split(' ').filter((s) => s !== '') : value;
  if (!Array.isArray(list)) return { reason: `is a ${typeof value}, not a space-separated string or a list` };
  if (list.length > MAX_PERMISSIONS) return { reason: `has more than ${MAX_PERMISSIONS} items` };
  for (const p of list) {
    if (typeof p !== 'string') return { reason: 'has an item that is not a string' };
    // A comma here would make one scope several permissions upstream ("read,billing:admin").
    if (!PERMISSION_PATTERN.test(p)) return { reason: `has an item that is not a permission name (${PERMISSION_PATTERN.source})` };
  }
  return [...new Set(list as string[])];
}

/** The Identity a verified token stands for, or why it cannot stand for one. */
export function tokenIdentity(issuer: Issuer, payload: JWTPayload): Identity | ClaimProblem {
  const c = issuer.config;
  const tenantClaim = c.claims.tenant ?? 'tenant';
  const tenant = c.tenant ?? claim(payload, tenantClaim);
  if (typeof tenant !== 'string') return { failure: 'token_tenant', claim: tenantClaim, reason: tenant === undefined || tenant === null ? 'is missing' : 'is not a string' };
  if (!TENANT_PATTERN.test(tenant)) return { failure: 'token_tenant', claim: tenantClaim, reason: `is not a tenant id (${TENANT_PATTERN.source})` };
  const user = optionalString(claim(payload, c.claims.user), USER_PATTERN, 'a user: 1-256 printable ASCII characters');
  if (user !== null && typeof user === 'object') return { failure: 'token_claims', claim: c.claims.user, reason: user.reason };
  const client = optionalString(claim(payload, c.claims.client), CLIENT_PATTERN, 'a client: 1-64 printable ASCII characters');
  if (client !== null && typeof client === 'object') return { failure: 'token_claims', claim: c.claims.client, reason: client.reason };
  const permissions = permissionsOf(claim(payload, c.claims.permissions));
  if (!Array.isArray(permissions)) return { failure: 'token_claims', claim: c.claims.permissions, reason: permissions.reason };
  const record: KeyRecord = {
    id: '',
    tenant,
    name: issuer.name,
    role: 'api-user',
    permissions,
    group: null,
    user,
    permissionsFrom: 'key',
    // Tokens come from an authorization server for the live service; sandbox access is by sandbox key.
    environment: 'live',
    client,
    rateLimits: [],
    quota: null,
    status: 'active',
    prefix: '',
    createdAt: typeof payload.iat === 'number' ? payload.iat * 1000 : 0,
    expiresAt: (payload.exp as number) * 1000,
    revokedAt: null,
    revokesAt: null,
    lastUsedAt: null,
  };
  return { record, permissions, permissionSet: new Set(permissions), permissionsHeader: permissions.join(','), issuer: issuer.name };
}

function isClaimProblem(value: Identity | ClaimProblem): value is ClaimProblem {
  return 'failure' in value;
}

function classify(error: unknown): TokenFailure {
  if (error instanceof JwksUnavailable) return 'auth_unavailable';
  if (error instanceof errors.JWTExpired) return 'token_expired';
  if (error instanceof errors.JWTClaimValidationFailed) {
    if (error.claim === 'nbf') return 'token_not_yet_valid';
    if (error.claim === 'iss') return 'token_issuer';
    return 'token_claims';
  }
  if (error instanceof errors.JWSSignatureVerificationFailed) return 'token_signature';
  if (error instanceof errors.JOSEAlgNotAllowed || error instanceof errors.JOSENotSupported) return 'token_algorithm';
  if (error instanceof errors.JWKSNoMatchingKey || error instanceof errors.JWKSMultipleMatchingKeys) return 'token_key';
  return 'token_malformed';
}

export interface AccessTokensOptions {
  /** Bearer values starting `<prefix>_` are keygate keys, never tokens. */
  keyPrefix: string;
  logger: Logger;
  /** Where introspection client secrets are read (`clientSecretEnv`); process.env in production. */
  env?: NodeJS.ProcessEnv;
  now?: () => number;
}

/** A result that is not final yet: `LOOKUP_REFUSED` when only known tokens may be checked and this one would need the issuer. */
export type TokenCheck = TokenResult | Promise<TokenResult> | typeof LOOKUP_REFUSED;

/** The issuers, the cache of verified tokens, and the per-route views of both. */
export class AccessTokens {
  #issuers = new Map<string, Issuer>();
  readonly #keyPrefix: string;
  readonly #logger: Logger;
  readonly #env: NodeJS.ProcessEnv;
  readonly #now: () => number;
  #maxAgeMs: number;
  readonly #verified: LRUCache<string, Verified>;
  readonly #failed: LRUCache<string, TokenFailure>;
  readonly #inflight = new Map<string, Promise<Verified | TokenFailure>>();

  constructor(config: OAuthConfig, options: AccessTokensOptions) {
    this.#keyPrefix = `${options.keyPrefix}_`;
    this.#logger = options.logger;
    this.#env = options.env ?? {};
    this.#now = options.now ?? Date.now;
    this.#maxAgeMs = config.tokenCache.maxAgeMs;
    this.#verified = new LRUCache({ max: config.tokenCache.max, ttl: config.tokenCache.maxAgeMs, updateAgeOnGet: false });
    this.#failed = new LRUCache({ max: config.tokenCache.max, ttl: NEGATIVE_TTL_MS, updateAgeOnGet: false });
    this.update(config);
  }

  /**
   * Applies a (re)loaded `oauth` section. Issuers whose config is unchanged keep their object
   * (and with it the fetched key set and the tokens verified with it); changed or new ones
   * are created and their key sets fetched in the background. An introspection secret that
   * is not in the environment throws a ConfigError before anything changes.
   */
  update(config: OAuthConfig): void {
    const next = new Map<string, Issuer>();
    config.issuers.forEach((c, i) => {
      const current = this.#issuers.get(c.name);
      if (current !== undefined && current.fingerprint === JSON.stringify(c)) {
        next.set(c.name, current);
        return;
      }
      const secret = c.introspection === undefined ? null : introspectionSecret(c, i, this.#env);
      next.set(c.name, new Issuer(c, this.#logger, secret));
    });
    for (const [name, issuer] of this.#issuers) if (next.get(name) !== issuer) void issuer.introspector?.close();
    this.#issuers = next;
    this.#maxAgeMs = config.tokenCache.maxAgeMs;
  }

  /** Fetches the key sets of the issuers that routes use, so the first token does not wait for it. */
  warm(routes: readonly RouteConfig[]): void {
    const used = new Set(routes.flatMap((r) => r.auth.issuers ?? []));
    for (const name of used) this.#issuers.get(name)?.warm();
  }

  /** The route's view, or null when it accepts keys only. Built with the route table. */
  forRoute(config: RouteConfig): RouteTokens | null {
    const names = config.auth.issuers;
    if (names === undefined || config.mcp === undefined) return null;
    const byIss = new Map<string, Issuer>();
    let introspecting: Issuer | null = null;
    for (const name of names) {
      const issuer = this.#issuers.get(name);
      // The schema makes sure every name exists; a stale reference simply accepts nothing.
      if (issuer === undefined) continue;
      byIss.set(issuer.issuer, issuer);
      // The schema allows one per route: the issuer an opaque token is sent to.
      if (issuer.introspector !== null) introspecting ??= issuer;
    }
    return new RouteTokens(this, [config.mcp.resource, ...(config.mcp.audiences ?? [])], byIss, introspecting);
  }

  /** Issuer URLs of a route's issuers, for the metadata's default `authorization_servers`. */
  issuerUrls(names: readonly string[]): string[] {
    return names.flatMap((name) => {
      const issuer = this.#issuers.get(name);
      return issuer === undefined ? [] : [issuer.issuer];
    });
  }

  isKey(bearer: string): boolean {
    return bearer.startsWith(this.#keyPrefix);
  }

  /**
   * Sync on a cache hit; a Promise only when the token must be verified. With `knownOnly`
   * (the client address is over the failed-authentication limit, admit.ts), a token that
   * would have to be introspected gets LOOKUP_REFUSED instead: a flood of made-up opaque
   * tokens costs the issuer nothing once its sender is limited. JWTs are checked locally
   * and never refused that way.
   */
  verify(token: string, route: RouteTokens, knownOnly = false): TokenCheck {
    if (token.length > MAX_TOKEN_LENGTH) return 'token_malformed';
    const jws = COMPACT_JWS.test(token);
    if (!jws && (route.introspector === null || !B64TOKEN.test(token))) return 'token_malformed';
    const hash = digest('sha256', token, 'base64url');
    const hit = this.#verified.get(hash);
    if (hit !== undefined) {
      if (hit.until <= this.#now()) this.#verified.delete(hash);
      // Verified under an issuer object this route does not hold (a reload replaced it, or
      // another route's issuer): verify again rather than trust the old mapping.
      else if (route.issuers.get(hit.issuer.issuer) === hit.issuer) return this.#judge(hit, route);
    }
    const failed = this.#failed.get(hash);
    if (failed !== undefined) return failed;
    return this.#verifyNew(token, hash, jws, route, knownOnly);
  }

  #judge(verified: Verified, route: RouteTokens): TokenResult {
    if (route.issuers.get(verified.issuer.issuer) !== verified.issuer) return 'token_issuer';
    if (!hasAudience(verified.aud, route.audiences)) return 'token_audience';
    return verified.identity;
  }

  #verifyNew(token: string, hash: string, jws: boolean, route: RouteTokens, knownOnly: boolean): TokenCheck {
    // Route checks on the unverified claims first, so a token meant for elsewhere costs no
    // signature check, no JWKS fetch and no introspection; they are repeated on the verified result.
    let unverified: JWTPayload | null = null;
    if (jws) {
      try {
        unverified = decodeJwt(token);
      } catch {
        // Shaped like a JWS but not a JWT: an opaque token after all, if the route has an endpoint to ask.
        if (route.introspector === null) return 'token_malformed';
      }
    }
    let issuer: Issuer;
    if (unverified !== null) {
      const named = typeof unverified.iss === 'string' ? route.issuers.get(unverified.iss) : undefined;
      if (named === undefined) return 'token_issuer';
      if (!hasAudience(unverified.aud, route.audiences)) return 'token_audience';
      issuer = named;
    } else {
      issuer = route.introspector!;
    }
    const local = unverified !== null && issuer.getKey !== null;
    if (!local && issuer.introspector === null) return 'token_issuer';
    if (!local && knownOnly) return LOOKUP_REFUSED;
    let pending = this.#inflight.get(hash);
    if (pending === undefined) {
      pending = (local ? this.#check(token, hash, issuer) : this.#introspect(token, hash, issuer)).finally(() => this.#inflight.delete(hash));
      this.#inflight.set(hash, pending);
    }
    return pending.then((result) => (typeof result === 'string' ? result : this.#judge(result, route)));
  }

  async #check(token: string, hash: string, issuer: Issuer): Promise<Verified | TokenFailure> {
    const config = issuer.config;
    let failure: TokenFailure;
    try {
      const { payload } = await jwtVerify(token, issuer.getKey!, {
        issuer: issuer.issuer,
        algorithms: config.algorithms,
        clockTolerance: config.clockToleranceSeconds,
        requiredClaims: ['exp'],
      });
      const identity = tokenIdentity(issuer, payload);
      if (!isClaimProblem(identity)) return this.#remember(hash, issuer, identity, payload, this.#maxAgeMs);
      this.#claimRefused(issuer, identity);
      failure = identity.failure;
    } catch (error) {
      failure = classify(error);
    }
    if (!RETRYABLE.has(failure)) this.#failed.set(hash, failure);
    return failure;
  }

  /** RFC 7662: only an active answer whose claims pass the checks a JWT's would. */
  async #introspect(token: string, hash: string, issuer: Issuer): Promise<Verified | TokenFailure> {
    const answer = await issuer.introspector!.introspect(token);
    let failure: TokenFailure;
    if (answer === 'busy') failure = 'introspection_busy';
    else if (answer === 'unavailable') failure = 'introspection_unavailable';
    else if (answer === 'inactive') failure = 'token_inactive';
    else {
      const claims = this.#introspectedClaims(answer, issuer);
      if (typeof claims !== 'string') {
        const identity = tokenIdentity(issuer, claims);
        if (!isClaimProblem(identity)) return this.#remember(hash, issuer, identity, claims, issuer.config.introspection!.cacheMaxAgeMs);
        this.#claimRefused(issuer, identity);
        failure = identity.failure;
      } else failure = claims;
    }
    if (!RETRYABLE.has(failure)) this.#failed.set(hash, failure);
    return failure;
  }

  /** The checks jwtVerify makes, on an introspection answer: exp required and in the future, nbf, iss when given. */
  #introspectedClaims(claims: ActiveClaims, issuer: Issuer): JWTPayload | TokenFailure {
    const tolerance = issuer.config.clockToleranceSeconds;
    const now = this.#now() / 1000;
    const { exp, nbf, iss } = claims;
    if (typeof exp !== 'number' || !Number.isFinite(exp)) return 'token_claims';
    if (exp + tolerance <= now) return 'token_expired';
    if (nbf !== undefined && (typeof nbf !== 'number' || nbf - tolerance > now)) return typeof nbf === 'number' ? 'token_not_yet_valid' : 'token_claims';
    if (iss !== undefined && iss !== issuer.issuer) return 'token_issuer';
    // aud is judged per route (#judge); one that is missing fits no route.
    return claims as JWTPayload;
  }

  /** Caches a verified token until min(exp + tolerance, maxAgeMs from now). */
  #remember(hash: string, issuer: Issuer, identity: Identity, payload: JWTPayload, maxAgeMs: number): Verified {
    const until = ((payload.exp as number) + issuer.config.clockToleranceSeconds) * 1000;
    const verified: Verified = { issuer, identity, aud: payload.aud, until };
    const ttl = Math.min(until - this.#now(), maxAgeMs);
    if (ttl > 0) this.#verified.set(hash, verified, { ttl });
    return verified;
  }

  /**
   * Signed (or vouched for) by the issuer, so worth a line: the issuer maps a claim keygate
   * cannot send upstream. The claim's name and what is wrong with it, never its value or the
   * token. A refused token is remembered for NEGATIVE_TTL_MS, so one token logs at most once per 5 s.
   */
  #claimRefused(issuer: Issuer, problem: ClaimProblem): void {
    this.#logger.warn({ issuer: issuer.name, claim: problem.claim, reason: problem.reason, failure: problem.failure }, 'access token refused: a claim cannot become an identity header');
  }

  /** Ends the introspection endpoints' connections (shutdown). */
  async close(): Promise<void> {
    await Promise.all([...this.#issuers.values()].map((issuer) => issuer.introspector?.close()));
  }
}

/** What a route accepts: its audiences (mcp.resource first) and its issuers by `iss`. */
export class RouteTokens {
  readonly #owner: AccessTokens;
  readonly audiences: readonly string[];
  readonly issuers: ReadonlyMap<string, Issuer>;
  /** The one issuer whose endpoint opaque tokens are introspected at; null: opaque tokens are malformed here. */
  readonly introspector: Issuer | null;

  constructor(owner: AccessTokens, audiences: readonly string[], issuers: ReadonlyMap<string, Issuer>, introspector: Issuer | null = null) {
    this.#owner = owner;
    this.audiences = audiences;
    this.issuers = issuers;
    this.introspector = introspector;
  }

  /** A Bearer value of the keygate key shape goes to the key verifier instead. */
  isKey(bearer: string): boolean {
    return this.#owner.isKey(bearer);
  }

  verify(token: string, knownOnly = false): TokenCheck {
    return this.#owner.verify(token, this, knownOnly);
  }
}

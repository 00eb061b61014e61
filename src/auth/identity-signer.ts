/**
 * Signed identity: a compact JWS an upstream can verify with any JOSE library, for upstreams
 * that cannot be sure that only keygate reaches them (a shared network, a misconfigured
 * ingress). Routes opt in with `signedIdentity` (config/signed-identity.ts); the assertion
 * travels in its own header beside the plain identity headers.
 *
 * Keys: Ed25519 (EdDSA), the cheapest JOSE signature to make and to check. Each rotation
 * period has its own key pair, derived with HKDF from the pepper — the secret every instance
 * already shares — so every instance signs with the same key and publishes the same JWKS
 * without storing or exchanging anything, and rotation needs no coordination. The JWKS holds
 * the previous, current and next period's public keys: an assertion signed just before a
 * rotation stays verifiable for its whole lifetime, and a verifier that caches the JWKS
 * already knows the next key when the period turns. Knowing a public key (or the JWKS)
 * tells nothing about the pepper (HKDF is one-way).
 *
 * Cost: one Ed25519 signature is ~30 µs on the reference machine, a third of a whole cache-hit
 * request. So by default an assertion is made once per identity and audience and reused
 * until half its lifetime is gone; the cache is a WeakMap keyed by the Identity object, which
 * the verifier replaces whenever the key's record changes (revocation, rotation, a new group),
 * so a reused assertion never outlives the identity it describes. The request-unique id then
 * cannot be inside the signature: it goes in a separate header (`requestIdHeader`), for
 * correlation. Routes that need an assertion bound to the request (method, path, a unique
 * `jti`) set `perRequest: true` and pay the signature on every request.
 *
 * @example
 *   const signer = new IdentitySigner(pepper, { issuer: 'keygate', rotateSeconds: 86_400 });
 *   const jws = signer.assertion(identity, { audience: 'http://orders:3000', lifetimeSeconds: 60 });
 *   adminServer.get('/.well-known/jwks.json', () => signer.jwks());
 */
import { createHash, createPrivateKey, createPublicKey, hkdfSync, randomUUID, sign, type KeyObject } from 'node:crypto';
import type { Identity } from './identity.ts';

export interface SignerOptions {
  /** `iss` of every assertion. */
  issuer: string;
  /** Each signing key is used for this many seconds. */
  rotateSeconds: number;
  now?: () => number;
}

export interface AssertionSpec {
  /** `aud`: whom the assertion is for (by default the route's upstream origin). */
  audience: string;
  lifetimeSeconds: number;
}

export interface RequestBinding {
  /** `jti`: unique per request. */
  id: string;
  /** `htm` / `htu` (as in DPoP, RFC 9449): the method and the upstream path of this request. */
  method: string;
  path: string;
}

export interface PublicJwk {
  kty: 'OKP';
  crv: 'Ed25519';
  x: string;
  kid: string;
  use: 'sig';
  alg: 'EdDSA';
}

interface PeriodKey {
  period: number;
  privateKey: KeyObject;
  jwk: PublicJwk;
  /** The base64url JOSE header, fixed per key. */
  header: string;
}

interface Cached {
  jws: string;
  /** When to sign a fresh one (half the lifetime), ms. */
  renewAt: number;
}

/** PKCS#8 DER prefix of an Ed25519 private key: the 32-byte seed follows (RFC 8410). */
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

const b64 = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');

export class IdentitySigner {
  readonly #secret: Buffer;
  readonly #issuer: string;
  readonly #rotateMs: number;
  readonly #now: () => number;
  readonly #keys = new Map<number, PeriodKey>();
  /** Per audience: identity → its current assertion. */
  readonly #cache = new Map<string, WeakMap<Identity, Cached>>();

  constructor(secret: string | Buffer, options: SignerOptions) {
    this.#secret = Buffer.isBuffer(secret) ? secret : Buffer.from(secret, 'utf8');
    this.#issuer = options.issuer;
    this.#rotateMs = options.rotateSeconds * 1000;
    this.#now = options.now ?? Date.now;
  }

  /** The public keys of the previous, current and next period (RFC 7517). */
  jwks(): { keys: PublicJwk[] } {
    const current = this.#period(this.#now());
    return { keys: [current - 1, current, current + 1].map((p) => this.#key(p).jwk) };
  }

  /** The identity's assertion for `spec.audience`, reused until half its lifetime is gone. */
  assertion(identity: Identity, spec: AssertionSpec): string {
    let perIdentity = this.#cache.get(spec.audience);
    if (perIdentity === undefined) this.#cache.set(spec.audience, (perIdentity = new WeakMap()));
    const now = this.#now();
    const cached = perIdentity.get(identity);
    if (cached !== undefined && cached.renewAt > now) return cached.jws;
    const jws = this.#sign(identity, spec, now, randomUUID(), null);
    perIdentity.set(identity, { jws, renewAt: now + (spec.lifetimeSeconds * 1000) / 2 });
    return jws;
  }

  /** A fresh assertion bound to one request (`perRequest: true`): a signature every call. */
  requestAssertion(identity: Identity, spec: AssertionSpec, binding: RequestBinding): string {
    return this.#sign(identity, spec, this.#now(), binding.id, binding);
  }

  #sign(identity: Identity, spec: AssertionSpec, now: number, jti: string, binding: RequestBinding | null): string {
    const key = this.#key(this.#period(now));
    const record = identity.record;
    const iat = Math.floor(now / 1000);
    const claims: Record<string, unknown> = {
      iss: this.#issuer,
      aud: spec.audience,
      // The key id, or for an access token its subject's client (there is no key record).
      sub: identity.issuer === undefined ? record.id : `${identity.issuer}:${record.client ?? record.user ?? ''}`,
      iat,
      exp: iat + spec.lifetimeSeconds,
      jti,
      tenant: record.tenant,
      role: record.role,
      permissions: identity.permissions,
      // `live` or `sandbox` (an access token is live): an upstream that serves both can refuse the other.
      env: record.environment,
    };
    if (identity.issuer === undefined) claims.key_id = record.id;
    else claims.token_issuer = identity.issuer;
    if (record.user !== null) claims.user = record.user;
    if (record.client !== null) claims.client = record.client;
    if (binding !== null) {
      claims.htm = binding.method;
      claims.htu = binding.path;
    }
    const input = `${key.header}.${b64(claims)}`;
    return `${input}.${sign(null, Buffer.from(input), key.privateKey).toString('base64url')}`;
  }

  #period(now: number): number {
    return Math.floor(now / this.#rotateMs);
  }

  #key(period: number): PeriodKey {
    let key = this.#keys.get(period);
    if (key !== undefined) return key;
    const seed = Buffer.from(hkdfSync('sha256', this.#secret, 'keygate identity signing v1', `period ${period} of ${this.#rotateMs} ms`, 32));
    const privateKey = createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' });
    const { x } = createPublicKey(privateKey).export({ format: 'jwk' }) as { x: string };
    // RFC 7638 thumbprint: verifiers can tell keys apart without learning the period scheme.
    const kid = createHash('sha256').update(`{"crv":"Ed25519","kty":"OKP","x":"${x}"}`).digest('base64url');
    key = { period, privateKey, jwk: { kty: 'OKP', crv: 'Ed25519', x, kid, use: 'sig', alg: 'EdDSA' }, header: b64({ alg: 'EdDSA', kid, typ: 'kg-identity+jwt' }) };
    this.#keys.set(period, key);
    // Only the periods around now are ever asked for again.
    for (const old of this.#keys.keys()) if (old < period - 2) this.#keys.delete(old);
    return key;
  }
}

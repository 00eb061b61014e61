/**
 * The signed-identity stage of the rewrite (auth/identity-signer.ts): on routes with
 * `signedIdentity`, the assertion header (and, when assertions are reused per identity, a
 * request-unique id) joins the headers the route sets, which replace any client copy. Routes
 * without it pay one null check; requests without an identity (public routes) get nothing.
 */
import { randomUUID } from 'node:crypto';
import type { IdentitySigner, AssertionSpec } from '../auth/identity-signer.ts';
import type { Identity } from '../auth/identity.ts';
import type { RouteConfig } from '../config/schema.ts';

export interface SignedIdentityRoute {
  readonly header: string;
  readonly requestIdHeader: string;
  readonly perRequest: boolean;
  readonly spec: AssertionSpec;
  /** For sandbox keys: by default its `aud` is the sandbox upstream's origin (`spec` itself when the route has none or names an audience). */
  readonly sandboxSpec: AssertionSpec;
}

export function compileSignedIdentity(config: RouteConfig): SignedIdentityRoute | null {
  const signed = config.signedIdentity;
  if (signed === undefined) return null;
  const spec: AssertionSpec = { audience: signed.audience ?? new URL(config.upstream).origin, lifetimeSeconds: signed.lifetimeSeconds };
  const sandbox = config.sandbox === undefined || signed.audience !== undefined ? spec : { audience: new URL(config.sandbox.upstream).origin, lifetimeSeconds: signed.lifetimeSeconds };
  return { header: signed.header, requestIdHeader: signed.requestIdHeader, perRequest: signed.perRequest, spec, sandboxSpec: sandbox };
}

/**
 * The headers a route sets upstream (`extra`, e.g. its injected secret) plus the identity
 * assertion; `extra` itself when the route signs nothing.
 * @param path the path the upstream receives (`htu` of a per-request assertion)
 */
export function withAssertion(
  signed: SignedIdentityRoute | null,
  signer: IdentitySigner | null,
  identity: Identity | null,
  method: string,
  path: string,
  extra: readonly string[] | null,
): readonly string[] | null {
  if (signed === null || signer === null || identity === null) return extra;
  const id = randomUUID();
  const spec = identity.record.environment === 'sandbox' ? signed.sandboxSpec : signed.spec;
  const jws = signed.perRequest ? signer.requestAssertion(identity, spec, { id, method, path }) : signer.assertion(identity, spec);
  const out = extra === null ? [] : [...extra];
  out.push(signed.header, jws, signed.requestIdHeader, id);
  return out;
}

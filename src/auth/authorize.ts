/**
 * authorize: a route's policy against a verified identity. 403s only; who the caller is
 * was settled by verify.
 */
import type { Identity } from './identity.ts';

export type AuthorizeFailure = 'forbidden_environment' | 'forbidden_permission' | 'forbidden_client' | 'forbidden_tenant';

export interface RoutePolicy {
  readonly permissions: readonly string[];
  readonly clients: ReadonlySet<string> | null;
  readonly tenantFromPath: boolean;
  /** Route prefix, to find the tenant segment that follows it. */
  readonly pathPrefix: string;
  /** The route's sandbox upstream (routing/router.ts); null or absent: sandbox keys are refused here. */
  readonly sandbox?: object | null;
}

/** The path segment right after the route prefix: `/t/acme/x` with prefix `/t` → `acme`. */
export function tenantSegment(path: string, prefix: string): string | undefined {
  const start = prefix === '/' ? 1 : prefix.length + 1;
  if (path.length <= start) return undefined;
  const end = path.indexOf('/', start);
  const segment = end === -1 ? path.slice(start) : path.slice(start, end);
  return segment === '' ? undefined : segment;
}

export function authorize(policy: RoutePolicy, identity: Identity, path: string): AuthorizeFailure | null {
  const record = identity.record;
  // First: a sandbox key never reaches a live upstream, whatever else it may do (OAuth access tokens are live).
  if (record.environment === 'sandbox' && (policy.sandbox === null || policy.sandbox === undefined)) return 'forbidden_environment';
  if (policy.clients !== null && (record.client === null || !policy.clients.has(record.client))) return 'forbidden_client';
  for (let i = 0; i < policy.permissions.length; i++) {
    if (!identity.permissionSet.has(policy.permissions[i]!)) return 'forbidden_permission';
  }
  if (policy.tenantFromPath && tenantSegment(path, policy.pathPrefix) !== record.tenant) return 'forbidden_tenant';
  return null;
}

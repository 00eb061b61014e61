/**
 * What a verified key means on the request path: the record plus everything derived from
 * it once (resolved permissions, header values), so a cache hit allocates nothing.
 */
import type { KeyRecord } from '../keys/record.ts';
import { USER_DISABLED, type Directory } from '../users/directory.ts';
import { identityBuckets, identityQuotas, type QuotaSpec, type ScopedBucket } from '../limits/buckets.ts';

export type { PermissionGroups } from '../users/directory.ts';

export interface Identity {
  readonly record: KeyRecord;
  readonly permissions: readonly string[];
  readonly permissionSet: ReadonlySet<string>;
  /** Comma-separated, as injected upstream; '' when there are none. */
  readonly permissionsHeader: string;
  /**
   * Set only for an OAuth access token (auth/access-token.ts): the `oauth.issuers[].name`
   * that issued it. Its `record` is built from the token's claims and has `id` ''.
   */
  readonly issuer?: string;
  /** The key acts as a user who is disabled (or unknown): refused as user_disabled, whatever its status. */
  readonly userDisabled?: true;
  /** The rate-limit buckets of the key itself, its group and its tenant (limits/buckets.ts); null: none. */
  readonly limits?: readonly ScopedBucket[] | null;
  /** The budgets of the key and its tenant (limits/quota.ts); null: none. */
  readonly quotas?: readonly QuotaSpec[] | null;
}

const NO_PERMISSIONS: readonly string[] = Object.freeze([]);

/**
 * Groups and users are resolved here, at verification, so editing a group, moving a user to
 * another group or disabling a user changes what their keys may do (users/directory.ts).
 */
export function toIdentity(record: KeyRecord, directory: Directory): Identity {
  const permissions = directory.resolve(record);
  if (permissions === USER_DISABLED) return { record, permissions: NO_PERMISSIONS, permissionSet: new Set(), permissionsHeader: '', userDisabled: true };
  const limits = directory.limitsOf(record);
  return {
    record,
    permissions,
    permissionSet: new Set(permissions),
    permissionsHeader: permissions.join(','),
    limits: identityBuckets(record, limits),
    quotas: identityQuotas(record, limits.keyQuota, limits.tenantQuota),
  };
}

/** Whether two identities of one record grant the same (a directory change that left a key as it was need not re-check its exchanges). */
export function sameGrant(a: Identity, b: Identity): boolean {
  return a.userDisabled === b.userDisabled && a.permissionsHeader === b.permissionsHeader && limitIds(a) === limitIds(b);
}

function limitIds(identity: Identity): string {
  return `${identity.limits?.map((b) => b.id).join(' ') ?? ''}|${identity.quotas?.map((q) => `${q.id}=${q.quota.text}`).join(' ') ?? ''}`;
}

/**
 * What a verified key means on the request path: the record plus everything derived from
 * it once (resolved permissions, header values), so a cache hit allocates nothing.
 */
import type { KeyRecord } from '../keys/record.ts';

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
}

export type PermissionGroups = Readonly<Record<string, readonly string[]>>;

/** Groups are resolved here, at verification, so editing a group changes its keys' access. */
export function toIdentity(record: KeyRecord, groups: PermissionGroups): Identity {
  const permissions = record.group !== null ? (Object.hasOwn(groups, record.group) ? groups[record.group]! : []) : record.permissions;
  return { record, permissions, permissionSet: new Set(permissions), permissionsHeader: permissions.join(',') };
}

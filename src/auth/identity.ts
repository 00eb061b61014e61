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

/** The permissions a key with these attributes has now: a group counts as its members (an unknown group as none). */
export function permissionsOf(attributes: Pick<KeyRecord, 'permissions' | 'group'>, groups: PermissionGroups): readonly string[] {
  if (attributes.group === null) return attributes.permissions;
  return Object.hasOwn(groups, attributes.group) ? groups[attributes.group]! : [];
}

/** Groups are resolved here, at verification, so editing a group changes its keys' access. */
export function toIdentity(record: KeyRecord, groups: PermissionGroups): Identity {
  const permissions = permissionsOf(record, groups);
  return { record, permissions, permissionSet: new Set(permissions), permissionsHeader: permissions.join(',') };
}

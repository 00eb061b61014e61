/**
 * The store's role for users and tenant permission groups (users/records.ts). Every write is
 * pushed to every long-running process through the same feed and log as revocations
 * (StoreFeed.directory), so a changed group or a disabled user reaches every instance within
 * the revocation lag; the writing process applies it at once.
 */
import type { DirectoryChange, DirectoryKind, GroupRecord, TenantRecord, UserRecord } from '../users/records.ts';

export interface DirectorySnapshot {
  users: UserRecord[];
  groups: GroupRecord[];
  /** Tenants' own settings (rate limits); a tenant without any has none. */
  tenants?: TenantRecord[];
}

/** `create`: only if absent; `update`: only if present; `delete`: remove if present. */
export type DirectoryWrite =
  | { mode: 'create' | 'update'; kind: 'user'; value: UserRecord }
  | { mode: 'create' | 'update'; kind: 'group'; value: GroupRecord }
  | { mode: 'create' | 'update'; kind: 'tenant'; value: TenantRecord }
  | { mode: 'delete'; kind: DirectoryKind; tenant: string; name: string };

export interface DirectoryStore {
  /** Every tenant's users and groups, or one tenant's. */
  directory(tenant?: string): Promise<DirectorySnapshot>;
  /** Atomic; false when `create` found it present or `update`/`delete` found it absent (nothing written). */
  writeDirectory(write: DirectoryWrite): Promise<DirectoryChange | null>;
}

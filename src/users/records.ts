/**
 * A tenant's users and permission groups (README "Users and permission groups"). A user is a
 * named identity with a permission group; a key created for an existing user takes that
 * user's group at request time (keys/record.ts `permissionsFrom: 'user'`). A tenant's own
 * groups sit beside the global ones of the config (`permissionGroups`), which every tenant
 * sees; a tenant group may not take a global group's name.
 *
 * Stored as JSON, one value per user or group (store/directory-store.ts); times are epoch ms
 * here and ISO dates in the public shape.
 */
import { z } from 'zod';
import { PERMISSION_PATTERN, USER_PATTERN } from '../keys/patterns.ts';
import { TENANT_PATTERN } from '../keys/format.ts';

/** The same names as config's `permissionGroups`. */
export const GROUP_NAME_PATTERN = /^[A-Za-z0-9_.:-]{1,64}$/;
export const GROUP_NAME_RULE = 'must be 1-64 letters, digits, "_", ".", ":" or "-"';
/** A user's name is what a key's `user` holds and `x-auth-user` carries: the same shape. */
export const USER_NAME_RULE = 'must be 1-256 printable ASCII characters, without leading or trailing spaces';

const epochMs = z.number().int();

export const userRecordSchema = z.object({
  tenant: z.string().regex(TENANT_PATTERN),
  name: z.string().regex(USER_PATTERN),
  displayName: z.string().max(128),
  group: z.string().regex(GROUP_NAME_PATTERN),
  createdAt: epochMs,
  updatedAt: epochMs,
  /** Null while the user is enabled; a disabled user's keys are refused everywhere (401 user_disabled). */
  disabledAt: epochMs.nullable(),
});
export type UserRecord = z.infer<typeof userRecordSchema>;

export const groupRecordSchema = z.object({
  tenant: z.string().regex(TENANT_PATTERN),
  name: z.string().regex(GROUP_NAME_PATTERN),
  permissions: z.array(z.string().regex(PERMISSION_PATTERN)),
  /** Rate limits of each key of the group (limits/rate.ts), on every route; written before limits existed: none. */
  rateLimits: z.array(z.string()).default([]),
  createdAt: epochMs,
  updatedAt: epochMs,
});
export type GroupRecord = z.infer<typeof groupRecordSchema>;

/** A tenant's own settings (its `name` is the tenant): rate limits shared by all its keys together. */
export const tenantRecordSchema = z.object({
  tenant: z.string().regex(TENANT_PATTERN),
  name: z.string().regex(TENANT_PATTERN),
  rateLimits: z.array(z.string()).default([]),
  /** The tenant's budget, all its keys together (limits/quota.ts); null: none. */
  quota: z.string().nullable().default(null),
  createdAt: epochMs,
  updatedAt: epochMs,
});
export type TenantRecord = z.infer<typeof tenantRecordSchema>;

export type DirectoryKind = 'user' | 'group' | 'tenant';
export const DIRECTORY_KINDS: readonly DirectoryKind[] = ['user', 'group', 'tenant'];
const SCHEMAS = { user: userRecordSchema, group: groupRecordSchema, tenant: tenantRecordSchema } as const;

/** One user, group or tenant's settings as it is now (value null: it was deleted). */
export type DirectoryChange =
  | { tenant: string; kind: 'user'; name: string; value: UserRecord | null }
  | { tenant: string; kind: 'group'; name: string; value: GroupRecord | null }
  | { tenant: string; kind: 'tenant'; name: string; value: TenantRecord | null };

export type DirectoryEntry = UserRecord | GroupRecord | TenantRecord;

/** A stored value (JSON text) as a record of its kind, or null if it cannot be read. */
export function decodeEntry(kind: DirectoryKind, text: string): DirectoryEntry | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  const parsed = SCHEMAS[kind].safeParse(value);
  return parsed.success ? parsed.data : null;
}

/** A change from its parts as stored or carried by a feed message, or null if they cannot be read. */
export function directoryChange(tenant: unknown, kind: unknown, name: unknown, text: unknown): DirectoryChange | null {
  if (typeof tenant !== 'string' || typeof name !== 'string' || !DIRECTORY_KINDS.includes(kind as DirectoryKind)) return null;
  if (text === null || text === undefined || text === false || text === '') return { tenant, kind, name, value: null } as DirectoryChange;
  if (typeof text !== 'string') return null;
  const value = decodeEntry(kind as DirectoryKind, text);
  if (value === null || value.tenant !== tenant || value.name !== name) return null;
  return { tenant, kind, name, value } as DirectoryChange;
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

export function toPublicUser(user: UserRecord) {
  return { tenant: user.tenant, name: user.name, displayName: user.displayName, group: user.group, disabled: user.disabledAt !== null, createdAt: iso(user.createdAt)!, updatedAt: iso(user.updatedAt)!, disabledAt: iso(user.disabledAt) };
}
export type PublicUser = ReturnType<typeof toPublicUser>;

/** `tenant: null` and `source: 'config'` for a global group (config `permissionGroups`, read-only here). */
export function toPublicGroup(group: GroupRecord | { tenant: null; name: string; permissions: readonly string[] }) {
  if (group.tenant === null) return { tenant: null, name: group.name, permissions: [...group.permissions], rateLimits: [] as string[], source: 'config' as const, createdAt: null, updatedAt: null };
  const g = group as GroupRecord;
  return { tenant: g.tenant, name: g.name, permissions: g.permissions, rateLimits: g.rateLimits, source: 'tenant' as const, createdAt: iso(g.createdAt), updatedAt: iso(g.updatedAt) };
}

/**
 * What every process knows of the users and tenant permission groups, in memory, so a key's
 * permissions are resolved without I/O on the request path: loaded from the store when the
 * process subscribes to its feed, kept current by the changes the feed pushes (or, in a
 * process that does not subscribe — the CLI — read fresh from the store for each command).
 *
 * Resolution (`resolve`), for a key record:
 *  - `permissionsFrom: 'user'` → its user's group; a disabled or unknown user → refused;
 *  - a `group` → the tenant's group of that name, else the config's, else none;
 *  - otherwise the key's own permissions.
 */
import type { KeyRecord } from '../keys/record.ts';
import type { DirectorySnapshot } from '../store/directory-store.ts';
import type { DirectoryChange, GroupRecord, TenantRecord, UserRecord } from './records.ts';

export type PermissionGroups = Readonly<Record<string, readonly string[]>>;

/** `resolve`'s answer for a key whose user is disabled or unknown: the key is refused (user_disabled). */
export const USER_DISABLED = null;

const NONE: readonly string[] = Object.freeze([]);

export class Directory {
  #global: PermissionGroups;
  readonly #users = new Map<string, Map<string, UserRecord>>();
  readonly #groups = new Map<string, Map<string, GroupRecord>>();
  readonly #tenants = new Map<string, Map<string, TenantRecord>>();
  /**
   * False until the store's users and groups have been read once (a serving process whose
   * store was unreachable at start): keys that need them are not resolved meanwhile.
   */
  #ready = false;

  constructor(global: PermissionGroups = {}, snapshot?: DirectorySnapshot) {
    this.#global = global;
    if (snapshot) this.load(snapshot);
  }

  /** The config's groups (a reload). */
  setGlobal(groups: PermissionGroups): void {
    this.#global = groups;
  }

  get global(): PermissionGroups {
    return this.#global;
  }

  get ready(): boolean {
    return this.#ready;
  }

  /** Whether resolving this key needs the users and groups (not only its own permissions). */
  static needed(record: Pick<KeyRecord, 'group' | 'permissionsFrom'>): boolean {
    return record.permissionsFrom === 'user' || record.group !== null;
  }

  /** Replaces everything known with the store's snapshot. */
  load(snapshot: DirectorySnapshot): void {
    this.#ready = true;
    this.#users.clear();
    this.#groups.clear();
    this.#tenants.clear();
    for (const tenant of snapshot.tenants ?? []) Directory.#put(this.#tenants, tenant.tenant, tenant.name, tenant);
    for (const user of snapshot.users) Directory.#put(this.#users, user.tenant, user.name, user);
    for (const group of snapshot.groups) Directory.#put(this.#groups, group.tenant, group.name, group);
  }

  /** Applies one pushed change; returns whether anything changed. */
  apply(change: DirectoryChange): boolean {
    const table = change.kind === 'user' ? this.#users : change.kind === 'group' ? this.#groups : this.#tenants;
    const before = table.get(change.tenant)?.get(change.name);
    if (change.value === null) {
      if (before === undefined) return false;
      table.get(change.tenant)!.delete(change.name);
      return true;
    }
    if (before !== undefined && JSON.stringify(before) === JSON.stringify(change.value)) return false;
    Directory.#put(table as Map<string, Map<string, UserRecord | GroupRecord | TenantRecord>>, change.tenant, change.name, change.value);
    return true;
  }

  static #put<T>(table: Map<string, Map<string, T>>, tenant: string, name: string, value: T): void {
    let byName = table.get(tenant);
    if (byName === undefined) table.set(tenant, (byName = new Map()));
    byName.set(name, value);
  }

  user(tenant: string, name: string): UserRecord | undefined {
    return this.#users.get(tenant)?.get(name);
  }

  /** A group's members as a tenant sees it: its own group of that name, else the config's; undefined if neither exists. */
  group(tenant: string, name: string): readonly string[] | undefined {
    const own = this.#groups.get(tenant)?.get(name);
    if (own !== undefined) return own.permissions;
    return Object.hasOwn(this.#global, name) ? this.#global[name] : undefined;
  }

  /** The tenant's groups with the global ones, own first (a tenant group shadows nothing: names are unique). */
  groupsOf(tenant: string): PermissionGroups {
    const out: Record<string, readonly string[]> = { ...this.#global };
    for (const [name, group] of this.#groups.get(tenant) ?? []) out[name] = group.permissions;
    return out;
  }

  /** A tenant's own settings, if it has any. */
  tenant(tenant: string): TenantRecord | undefined {
    return this.#tenants.get(tenant)?.get(tenant);
  }

  /**
   * The rate limits a key is counted against besides its route's: its own and its group's
   * (each per key), and its tenant's (shared by the tenant's keys). Unchecked text: the
   * limit stage parses it once per identity and skips what cannot be read.
   */
  limitsOf(record: Pick<KeyRecord, 'tenant' | 'group' | 'user' | 'permissionsFrom' | 'rateLimits' | 'quota'>): { key: readonly string[]; tenant: readonly string[]; keyQuota: string | null; tenantQuota: string | null } {
    let groupName = record.group;
    if (record.permissionsFrom === 'user' && record.user !== null) groupName = this.user(record.tenant, record.user)?.group ?? null;
    const group = groupName === null ? undefined : this.#groups.get(record.tenant)?.get(groupName);
    // A record built by hand (tests, tokens) may lack the field: none.
    const own = record.rateLimits ?? NONE;
    const key = group === undefined || group.rateLimits.length === 0 ? own : [...own, ...group.rateLimits];
    const settings = this.tenant(record.tenant);
    return { key, tenant: settings?.rateLimits ?? NONE, keyQuota: record.quota ?? null, tenantQuota: settings?.quota ?? null };
  }

  /** What a key with these attributes may do now, or USER_DISABLED (its user is disabled or unknown). */
  resolve(record: Pick<KeyRecord, 'tenant' | 'permissions' | 'group' | 'user' | 'permissionsFrom'>): readonly string[] | typeof USER_DISABLED {
    if (record.permissionsFrom === 'user') {
      const user = record.user === null ? undefined : this.user(record.tenant, record.user);
      if (user === undefined || user.disabledAt !== null) return USER_DISABLED;
      return this.group(record.tenant, user.group) ?? NONE;
    }
    if (record.group === null) return record.permissions;
    return this.group(record.tenant, record.group) ?? NONE;
  }
}

/**
 * The rules for users and tenant permission groups, one place for the CLI and the admin API
 * (as keys/service.ts is for keys): who may see and change which, what a valid one is, and
 * the audit line every change leaves. A tenant-scoped caller manages its own tenant only and
 * sees nothing of others (404); it gives no user or group a permission it does not hold
 * itself (403). Changes reach every instance through the store's feed (store/directory-store.ts).
 */
import type { Config } from '../config/schema.ts';
import type { EventSink } from '../events/event-sink.ts';
import { invalidField, KeygateError } from '../http/problem.ts';
import { TENANT_PATTERN } from '../keys/format.ts';
import { PERMISSION_PATTERN, USER_PATTERN } from '../keys/patterns.ts';
import type { KeyRecord } from '../keys/record.ts';
import { checkQuota, checkRates, KeyService, type Caller } from '../keys/service.ts';
import { keyState } from '../keys/key-state.ts';
import type { DirectoryStore } from '../store/directory-store.ts';
import type { KeyStore } from '../store/key-store.ts';
import { Directory } from './directory.ts';
import { GROUP_NAME_PATTERN, GROUP_NAME_RULE, USER_NAME_RULE, type GroupRecord, type TenantRecord, type UserRecord } from './records.ts';

/** A display name is shown, never sent upstream: any printable text, no control characters. */
const DISPLAY_NAME = /^[^\x00-\x1f\x7f]{0,128}$/u;

export interface CreateUserInput {
  tenant: string;
  name: string;
  displayName?: string;
  group: string;
}

export interface UpdateUserInput {
  displayName?: string;
  group?: string;
  disabled?: boolean;
}

export interface GroupList {
  /** The config's groups, which every tenant sees (read-only here). */
  global: Readonly<Record<string, readonly string[]>>;
  groups: GroupRecord[];
}

/** Users and groups are listed by tenant, then name. */
const byTenantAndName = (a: { tenant: string; name: string }, b: { tenant: string; name: string }): number =>
  a.tenant === b.tenant ? (a.name < b.name ? -1 : 1) : a.tenant < b.tenant ? -1 : 1;

type UsersStore = DirectoryStore & Pick<KeyStore, 'list'>;

export class UserService {
  readonly #store: UsersStore;
  readonly #config: Pick<Config, 'permissionGroups'>;
  readonly #events: EventSink | null;
  readonly #now: () => number;

  constructor(store: UsersStore, config: Pick<Config, 'permissionGroups'>, events: EventSink | null = null, now: () => number = Date.now) {
    this.#store = store;
    this.#config = config;
    this.#events = events;
    this.#now = now;
  }

  /** The tenant a write is for: a tenant-scoped caller writes to its own only (403 otherwise). */
  static #writable(caller: Caller, tenant: string): void {
    if (!TENANT_PATTERN.test(tenant)) throw invalidField('tenant', 'must match [a-z0-9][a-z0-9-]{0,62}');
    if (caller.tenant !== null && caller.tenant !== tenant) throw new KeygateError('forbidden', `this key manages tenant "${caller.tenant}" only`);
  }

  /** A user or group the caller may see, or not_found (the same answer for another tenant's). */
  static #visible(caller: Caller, tenant: string, what: string): void {
    if (!TENANT_PATTERN.test(tenant) || (caller.tenant !== null && caller.tenant !== tenant)) throw new KeygateError('not_found', `no such ${what}`);
  }

  async #directory(tenant: string): Promise<Directory> {
    return new Directory(this.#config.permissionGroups, await this.#store.directory(tenant));
  }

  /** The members of the group a user would have, or validation_failed naming the field. */
  static #groupMembers(directory: Directory, tenant: string, group: string): readonly string[] {
    if (!GROUP_NAME_PATTERN.test(group)) throw invalidField('group', GROUP_NAME_RULE);
    const members = directory.group(tenant, group);
    if (members === undefined) throw invalidField('group', `"${group}" is neither a group of tenant "${tenant}" nor defined in permissionGroups`);
    return members;
  }

  // ---- users ----------------------------------------------------------------------------

  /** By tenant and name. A tenant-scoped caller sees its own tenant only, whatever it asks for. */
  async listUsers(caller: Caller, tenant?: string): Promise<UserRecord[]> {
    if (caller.tenant !== null && tenant !== undefined && tenant !== caller.tenant) return [];
    const { users } = await this.#store.directory(caller.tenant ?? tenant);
    return users.sort(byTenantAndName);
  }

  /** A user and the keys that name it (acting as it, or labelled with its name), newest first. */
  async getUser(caller: Caller, tenant: string, name: string): Promise<{ user: UserRecord; keys: KeyRecord[] }> {
    UserService.#visible(caller, tenant, 'user');
    const user = (await this.#directory(tenant)).user(tenant, name);
    if (user === undefined) throw new KeygateError('not_found', 'no such user');
    const keys = (await this.#store.list({ tenant, includeRevoked: true })).filter((k) => k.user === name);
    return { user, keys };
  }

  async createUser(caller: Caller, input: CreateUserInput): Promise<UserRecord> {
    UserService.#writable(caller, input.tenant);
    if (!USER_PATTERN.test(input.name)) throw invalidField('name', USER_NAME_RULE);
    const displayName = (input.displayName ?? input.name).trim();
    if (!DISPLAY_NAME.test(displayName)) throw invalidField('displayName', 'must be at most 128 characters, without control characters');
    const directory = await this.#directory(input.tenant);
    const members = UserService.#groupMembers(directory, input.tenant, input.group);
    KeyService.mayGrant(caller, members, 'create users', ` (through group "${input.group}")`);
    const now = this.#now();
    const user: UserRecord = { tenant: input.tenant, name: input.name, displayName: displayName || input.name, group: input.group, createdAt: now, updatedAt: now, disabledAt: null };
    if ((await this.#store.writeDirectory({ mode: 'create', kind: 'user', value: user })) === null) {
      throw new KeygateError('conflict', `tenant "${input.tenant}" already has a user "${input.name}"`);
    }
    await this.#events?.audit('user.create', caller.actor, user.tenant, `user:${user.name}`, { group: user.group, displayName: user.displayName });
    return user;
  }

  /**
   * Display name, group, enabled or disabled. Moving a user to a group, or enabling one,
   * grants its keys that group: the caller must hold it. Disabling only takes away.
   */
  async updateUser(caller: Caller, tenant: string, name: string, input: UpdateUserInput): Promise<UserRecord> {
    UserService.#visible(caller, tenant, 'user');
    const directory = await this.#directory(tenant);
    const before = directory.user(tenant, name);
    if (before === undefined) throw new KeygateError('not_found', 'no such user');
    const after: UserRecord = { ...before };
    // Audit details are flat: `<field>From` / `<field>To` for each change.
    const changes: Record<string, string | boolean> = {};
    if (input.displayName !== undefined) {
      const displayName = input.displayName.trim();
      if (!DISPLAY_NAME.test(displayName)) throw invalidField('displayName', 'must be at most 128 characters, without control characters');
      after.displayName = displayName || name;
    }
    if (input.group !== undefined) after.group = input.group;
    if (input.disabled !== undefined) after.disabledAt = input.disabled ? (before.disabledAt ?? this.#now()) : null;
    const grants = after.disabledAt === null && (after.group !== before.group || before.disabledAt !== null);
    if (input.group !== undefined || grants) {
      const members = UserService.#groupMembers(directory, tenant, after.group);
      if (grants) KeyService.mayGrant(caller, members, input.group !== undefined ? 'move users to a group' : 'enable users', ` (through group "${after.group}")`);
    }
    for (const field of ['displayName', 'group'] as const) {
      if (after[field] === before[field]) continue;
      changes[`${field}From`] = before[field];
      changes[`${field}To`] = after[field];
    }
    if ((after.disabledAt === null) !== (before.disabledAt === null)) changes.disabled = after.disabledAt !== null;
    if (Object.keys(changes).length === 0) return before;
    after.updatedAt = this.#now();
    if ((await this.#store.writeDirectory({ mode: 'update', kind: 'user', value: after })) === null) throw new KeygateError('not_found', 'no such user');
    await this.#events?.audit('user.update', caller.actor, tenant, `user:${name}`, changes);
    return after;
  }

  // ---- groups ---------------------------------------------------------------------------

  /** The config's groups and the tenant's own (every tenant's, for a platform admin who names none). */
  async listGroups(caller: Caller, tenant?: string): Promise<GroupList> {
    const global = this.#config.permissionGroups;
    if (caller.tenant !== null && tenant !== undefined && tenant !== caller.tenant) return { global, groups: [] };
    const { groups } = await this.#store.directory(caller.tenant ?? tenant);
    return { global, groups: groups.sort(byTenantAndName) };
  }

  static #permissions(permissions: readonly string[]): string[] {
    for (const p of permissions) if (typeof p !== 'string' || !PERMISSION_PATTERN.test(p)) throw invalidField('permissions', `"${String(p)}" is not a valid permission name`);
    return [...new Set(permissions)].sort();
  }

  async createGroup(caller: Caller, input: { tenant: string; name: string; permissions: readonly string[]; rateLimits?: readonly string[] }): Promise<GroupRecord> {
    UserService.#writable(caller, input.tenant);
    if (!GROUP_NAME_PATTERN.test(input.name)) throw invalidField('name', GROUP_NAME_RULE);
    // One name, one meaning: a tenant group never shadows one every tenant sees.
    if (Object.hasOwn(this.#config.permissionGroups, input.name)) throw new KeygateError('conflict', `"${input.name}" is a group of the configuration (permissionGroups); choose another name`);
    const permissions = UserService.#permissions(input.permissions);
    KeyService.mayGrant(caller, permissions, 'create groups');
    const now = this.#now();
    const group: GroupRecord = { tenant: input.tenant, name: input.name, permissions, rateLimits: checkRates(input.rateLimits ?? [], 'rateLimits'), createdAt: now, updatedAt: now };
    if ((await this.#store.writeDirectory({ mode: 'create', kind: 'group', value: group })) === null) {
      throw new KeygateError('conflict', `tenant "${input.tenant}" already has a group "${input.name}"`);
    }
    await this.#events?.audit('group.create', caller.actor, group.tenant, `group:${group.name}`, { permissions: permissions.join(',') });
    return group;
  }

  /** Replaces a group's permissions and/or rate limits: every key of every user in it has the new ones on its next request. */
  async updateGroup(caller: Caller, tenant: string, name: string, input: { permissions?: readonly string[]; rateLimits?: readonly string[] }): Promise<GroupRecord> {
    UserService.#visible(caller, tenant, 'group');
    const before = (await this.#store.directory(tenant)).groups.find((g) => g.name === name);
    if (before === undefined) throw new KeygateError('not_found', Object.hasOwn(this.#config.permissionGroups, name) ? `"${name}" is a group of the configuration: change it there` : 'no such group');
    const permissions = input.permissions === undefined ? before.permissions : UserService.#permissions(input.permissions);
    KeyService.mayGrant(caller, permissions, 'give groups permissions');
    // Loosening a group's limits gives its keys more: a tenant-scoped caller may only add limits, not remove them.
    const rateLimits = input.rateLimits === undefined ? before.rateLimits : checkRates(input.rateLimits, 'rateLimits');
    if (caller.tenant !== null && before.rateLimits.some((r) => !rateLimits.includes(r))) throw new KeygateError('forbidden', "only a platform admin may remove a group's rate limits");
    if (permissions.join(',') === before.permissions.join(',') && rateLimits.join(',') === before.rateLimits.join(',')) return before;
    const after: GroupRecord = { ...before, permissions, rateLimits, updatedAt: this.#now() };
    if ((await this.#store.writeDirectory({ mode: 'update', kind: 'group', value: after })) === null) throw new KeygateError('not_found', 'no such group');
    await this.#events?.audit('group.update', caller.actor, tenant, `group:${name}`, {
      permissionsFrom: before.permissions.join(','),
      permissionsTo: permissions.join(','),
      rateLimitsFrom: before.rateLimits.join(','),
      rateLimitsTo: rateLimits.join(','),
    });
    return after;
  }

  /** Refused (409, naming them) while users or working keys of the tenant use the group. */
  async deleteGroup(caller: Caller, tenant: string, name: string): Promise<GroupRecord> {
    UserService.#visible(caller, tenant, 'group');
    const snapshot = await this.#store.directory(tenant);
    const group = snapshot.groups.find((g) => g.name === name);
    if (group === undefined) throw new KeygateError('not_found', 'no such group');
    KeyService.mayGrant(caller, group.permissions, 'delete groups');
    const users = snapshot.users.filter((u) => u.group === name).map((u) => u.name);
    const now = this.#now();
    const keys = (await this.#store.list({ tenant, includeRevoked: false })).filter((k) => k.group === name && keyState(k, now) !== 'revoked').map((k) => k.id);
    if (users.length || keys.length) {
      const uses = [users.length ? `users ${users.join(', ')}` : '', keys.length ? `keys ${keys.join(', ')}` : ''].filter(Boolean).join(' and ');
      throw new KeygateError('conflict', `group "${name}" is used by ${uses}: move them to another group (or revoke the keys) first`);
    }
    if ((await this.#store.writeDirectory({ mode: 'delete', kind: 'group', tenant, name })) === null) throw new KeygateError('not_found', 'no such group');
    await this.#events?.audit('group.delete', caller.actor, tenant, `group:${name}`, { permissions: group.permissions.join(',') });
    return group;
  }

  // ---- tenants' own settings --------------------------------------------------------------

  /** A tenant's rate limits (shared by all its keys); none when it has no settings. */
  async tenantLimits(caller: Caller, tenant: string): Promise<TenantRecord> {
    UserService.#visible(caller, tenant, 'tenant');
    const own = (await this.#store.directory(tenant)).tenants?.find((t) => t.name === tenant);
    return own ?? { tenant, name: tenant, rateLimits: [], quota: null, createdAt: 0, updatedAt: 0 };
  }

  /**
   * Sets a tenant's rate limits, on every instance within the revocation lag. Platform admins
   * only: a tenant's limits bound what the tenant's own admins can do.
   */
  async setTenantLimits(caller: Caller, tenant: string, rates: readonly string[], quotaText?: string | null): Promise<TenantRecord> {
    if (caller.tenant !== null) {
      UserService.#visible(caller, tenant, 'tenant');
      throw new KeygateError('forbidden', "only a platform admin may set a tenant's rate limits");
    }
    if (!TENANT_PATTERN.test(tenant)) throw invalidField('tenant', 'must match [a-z0-9][a-z0-9-]{0,62}');
    const rateLimits = checkRates(rates, 'rateLimits');
    const now = this.#now();
    const before = (await this.#store.directory(tenant)).tenants?.find((t) => t.name === tenant);
    const quota = quotaText === undefined ? (before?.quota ?? null) : checkQuota(quotaText, 'quota');
    const after: TenantRecord = { tenant, name: tenant, rateLimits, quota, createdAt: before?.createdAt ?? now, updatedAt: now };
    if ((await this.#store.writeDirectory({ mode: before === undefined ? 'create' : 'update', kind: 'tenant', value: after })) === null) {
      throw new KeygateError('conflict', 'the tenant settings changed meanwhile; try again');
    }
    await this.#events?.audit('tenant.limits', caller.actor, tenant, `tenant:${tenant}`, {
      rateLimitsFrom: (before?.rateLimits ?? []).join(','),
      rateLimitsTo: rateLimits.join(','),
      quotaFrom: before?.quota ?? '',
      quotaTo: quota ?? '',
    });
    return after;
  }
}

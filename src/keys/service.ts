/**
 * The rules for keys, in one place for the CLI and the admin API: who may see and manage
 * which keys, what a valid key is, and the audit line and notification every change leaves.
 * Returns the full key only from `create` and `rotate`; nothing else ever sees it.
 */
import { Directory } from '../users/directory.ts';
import { isRate, parseRate } from '../limits/rate.ts';
import { isQuota, parseQuota } from '../limits/quota.ts';
import type { DirectoryStore } from '../store/directory-store.ts';
import type { Config } from '../config/schema.ts';
import type { EventSink } from '../events/event-sink.ts';
import type { KeyStore } from '../store/key-store.ts';
import type { AuditPage, LifecycleStore } from '../store/lifecycle-store.ts';
import { displayPrefix, generateKey, TENANT_PATTERN, type Environment } from './format.ts';
import type { KeyHasher } from './hash.ts';
import { newKeyId } from './ids.ts';
import { parseExpiry } from './expiry.ts';
import { CLIENT_PATTERN, PERMISSION_PATTERN, USER_PATTERN } from './patterns.ts';
import { keyState } from './key-state.ts';
import type { KeyRecord, Role } from './record.ts';
import { invalidField, isKeygateError, KeygateError } from '../http/problem.ts';

export const MANAGE_PERMISSION = 'keys:manage';

/** A quota as given: null (none), or one that parses (422 naming the field otherwise). */
export function checkQuota(text: string | null, field: string): string | null {
  if (text === null) return null;
  const quota = parseQuota(text);
  if (!isQuota(quota)) throw invalidField(field, `"${text}": ${quota}`);
  return quota.text;
}

/** Rate limits as given (admin API, CLI, console): each must parse; duplicates are dropped. 422 naming the field otherwise. */
export function checkRates(rates: readonly string[], field: string): string[] {
  if (rates.length > 10) throw invalidField(field, 'at most 10 rate limits');
  const out: string[] = [];
  for (const text of rates) {
    const rate = parseRate(text);
    if (!isRate(rate)) throw invalidField(field, `"${String(text)}": ${rate}`);
    if (!out.includes(rate.text)) out.push(rate.text);
  }
  return out;
}
export const MAX_OVERLAP_SECONDS = 30 * 86_400;

/**
 * Errors are KeygateErrors (http/problem.ts), by code: bad input is validation_failed with
 * the field at fault (422, exit 2 in the CLI); a key that does not exist or belongs to a
 * tenant the caller cannot see is not_found (404 either way); a caller that is known but may
 * not do this — including granting permissions it does not hold itself — is forbidden (403);
 * a request at odds with the key's state, e.g. rotating a revoked key, is conflict (409).
 */

/** `work`'s result, or null when it failed with not_found (the CLI's "no such id", exit 1). */
export async function orNullIfNotFound<T>(work: Promise<T>): Promise<T | null> {
  try {
    return await work;
  } catch (error) {
    if (isKeygateError(error, 'not_found')) return null;
    throw error;
  }
}

/**
 * Who is asking. `tenant: null` is a platform admin (every tenant, every permission, the
 * only one who manages admin-role keys); the CLI is one, since whoever runs it is the
 * operator and already holds the store.
 */
export interface Caller {
  actor: string;
  tenant: string | null;
  /**
   * What the caller's key holds now, groups resolved: a tenant-scoped caller grants no
   * permission outside it (create, rotate); absent counts as nothing. Not consulted for a
   * platform admin.
   */
  permissions?: ReadonlySet<string>;
}

export const CLI_CALLER: Caller = { actor: 'cli', tenant: null, permissions: new Set() };

export interface CreateKeyInput {
  tenant: string;
  name: string;
  role?: Role;
  permissions?: string[];
  group?: string | null;
  user?: string | null;
  client?: string | null;
  /** Rate limits of the key on every route (limits/rate.ts), e.g. `["20/s", "50000/1d"]`. */
  rateLimits?: string[];
  /** The key's budget (limits/quota.ts), e.g. `10000/day` or `5000 credits`. */
  quota?: string | null;
  /** Default `live`; a `sandbox` key reaches only routes' sandbox upstreams. */
  environment?: Environment;
  /** `30d`…`365d`, `never`, or an ISO date; default `never`. */
  expires?: string;
}

export interface CreatedKey {
  key: string;
  record: KeyRecord;
}

export interface TenantSummary {
  tenant: string;
  active: number;
  expired: number;
  revoked: number;
}

export type ServiceStore = KeyStore & LifecycleStore & DirectoryStore;
type ServiceConfig = Pick<Config, 'keys' | 'tenants' | 'permissionGroups'>;

export class KeyService {
  readonly #store: ServiceStore;
  readonly #hasher: KeyHasher;
  readonly #config: ServiceConfig;
  readonly #events: EventSink | null;
  readonly #now: () => number;

  constructor(store: ServiceStore, hasher: KeyHasher, config: ServiceConfig, events: EventSink | null = null, now: () => number = Date.now) {
    this.#store = store;
    this.#hasher = hasher;
    this.#config = config;
    this.#events = events;
    this.#now = now;
  }

  /** Whether a caller with this key may use the admin API, and over which tenants. */
  static callerFor(record: KeyRecord, permissions: ReadonlySet<string>, systemTenant: string): Caller | null {
    if (record.role === 'admin' && record.tenant === systemTenant) return { actor: record.id, tenant: null, permissions };
    if (permissions.has(MANAGE_PERMISSION)) return { actor: record.id, tenant: record.tenant, permissions };
    return null;
  }

  /**
   * A tenant's users and groups as the store holds them now, with the config's groups: the
   * CLI and the admin API decide by what is stored, not by a process's copy of it.
   */
  async directoryFor(tenant: string): Promise<Directory> {
    return new Directory(this.#config.permissionGroups, await this.#store.directory(tenant));
  }

  /**
   * A caller grants only what it holds: refuses (403) a key, user or group that would get a
   * permission the caller lacks. Platform admins (and the CLI, the operator) are exempt.
   * `through` says where the permissions come from, for the message.
   */
  static mayGrant(caller: Caller, permissions: readonly string[], action: string, through = ''): void {
    if (caller.tenant === null) return;
    const missing = [...new Set(permissions)].filter((p) => !caller.permissions?.has(p)).sort();
    if (missing.length === 0) return;
    throw new KeygateError('forbidden', `this key may ${action} only with permissions it holds itself; it lacks ${missing.join(', ')}${through}`);
  }

  /** What a key with these attributes would hold now; a disabled user's key is a conflict. */
  static #grantOf(directory: Directory, attributes: Pick<KeyRecord, 'tenant' | 'permissions' | 'group' | 'user' | 'permissionsFrom'>): { permissions: readonly string[]; through: string } {
    const permissions = directory.resolve(attributes);
    if (permissions === null) throw new KeygateError('conflict', `the user "${attributes.user}" is disabled (or no longer exists): enable the user first`);
    if (attributes.permissionsFrom === 'user') return { permissions, through: ` (through user "${attributes.user}" and its group "${directory.user(attributes.tenant, attributes.user!)!.group}")` };
    return { permissions, through: attributes.group === null ? '' : ` (through group "${attributes.group}")` };
  }

  /** Admin-role keys are managed by platform admins only (403 for anyone else). */
  static #adminKeyRule(caller: Caller, record: KeyRecord, action: string): void {
    if (record.role === 'admin' && caller.tenant !== null) throw new KeygateError('forbidden', `only a platform admin may ${action} admin keys`);
  }

  #visible(caller: Caller, record: KeyRecord | null): KeyRecord {
    if (record === null || (caller.tenant !== null && caller.tenant !== record.tenant)) throw new KeygateError('not_found', 'no such key');
    return record;
  }

  async create(caller: Caller, input: CreateKeyInput): Promise<CreatedKey> {
    const now = this.#now();
    if (!TENANT_PATTERN.test(input.tenant)) throw invalidField('tenant', 'must match [a-z0-9][a-z0-9-]{0,62}');
    if (caller.tenant !== null && caller.tenant !== input.tenant) throw new KeygateError('forbidden', `this key manages tenant "${caller.tenant}" only`);
    const name = input.name.trim();
    if (name === '' || name.length > 128) throw invalidField('name', 'must be 1-128 characters');
    const role = input.role ?? 'api-user';
    if (role !== 'api-user' && role !== 'admin') throw invalidField('role', 'must be "api-user" or "admin"');
    if (role === 'admin') {
      if (input.tenant !== this.#config.tenants.system) {
        throw invalidField('role', `"admin" keys belong to the system tenant "${this.#config.tenants.system}"; tenant keys are always "api-user"`);
      }
      if (caller.tenant !== null) throw new KeygateError('forbidden', 'only a platform admin may create admin keys');
    }
    const permissions = input.permissions ?? [];
    for (const p of permissions) if (!PERMISSION_PATTERN.test(p)) throw invalidField('permissions', `"${p}" is not a valid permission name`);
    // Both become upstream header values: the same shapes an access token's claims must have.
    if (input.user && !USER_PATTERN.test(input.user)) throw invalidField('user', 'must be 1-256 printable ASCII characters, without leading or trailing spaces');
    if (input.client && !CLIENT_PATTERN.test(input.client)) throw invalidField('client', 'must be 1-64 printable ASCII characters, without leading or trailing spaces');
    const group = input.group ?? null;
    const directory = await this.directoryFor(input.tenant);
    // A key for an existing user of the tenant acts as that user: it takes the user's group
    // at request time (users/directory.ts). Any other name is only a label, as before.
    const user = input.user ? directory.user(input.tenant, input.user) : undefined;
    const permissionsFrom = user === undefined ? 'key' : 'user';
    if (user !== undefined) {
      if (permissions.length || group !== null) {
        throw invalidField(permissions.length ? 'permissions' : 'group', `"${user.name}" is a user of tenant "${input.tenant}": a key created for it takes its permissions from the user's group ("${user.group}"); leave permissions and group out`);
      }
      if (user.disabledAt !== null) throw new KeygateError('conflict', `the user "${user.name}" is disabled: enable it before creating keys for it`);
    }
    if (group !== null) {
      if (permissions.length) throw invalidField('group', 'give either permissions or a group, not both');
      if (directory.group(input.tenant, group) === undefined) throw invalidField('group', `"${group}" is neither a group of tenant "${input.tenant}" nor defined in permissionGroups`);
    }
    const grant = KeyService.#grantOf(directory, { tenant: input.tenant, permissions, group, user: input.user || null, permissionsFrom });
    KeyService.mayGrant(caller, grant.permissions, 'create keys', grant.through);
    let expiresAt: number | null;
    try {
      expiresAt = parseExpiry(input.expires ?? 'never', now);
    } catch (error) {
      throw invalidField('expires', (error as Error).message);
    }
    const created = await this.#insert(
      {
        tenant: input.tenant,
        name,
        role,
        permissions: [...new Set(permissions)],
        group,
        user: input.user || null,
        permissionsFrom,
        environment: input.environment ?? 'live',
        client: input.client || null,
        rateLimits: checkRates(input.rateLimits ?? [], 'rateLimits'),
        quota: checkQuota(input.quota ?? null, 'quota'),
        expiresAt,
      },
      now,
    );
    await this.#events?.key('key.create', caller.actor, created.record, { role, expiresAt });
    return created;
  }

  async #insert(attributes: Pick<KeyRecord, 'tenant' | 'name' | 'role' | 'permissions' | 'group' | 'user' | 'permissionsFrom' | 'environment' | 'client' | 'rateLimits' | 'quota' | 'expiresAt'>, now: number): Promise<CreatedKey> {
    const key = generateKey(this.#config.keys.prefix, attributes.tenant, attributes.environment);
    const record: KeyRecord = {
      id: newKeyId(),
      ...attributes,
      status: 'active',
      prefix: displayPrefix(key),
      createdAt: now,
      revokedAt: null,
      revokesAt: null,
      lastUsedAt: null,
    };
    await this.#store.create(record, this.#hasher(key));
    return { key, record };
  }

  /**
   * Newest first. A tenant-scoped caller sees its own tenant only, whatever it asks for.
   * Without `includeRevoked`, keys that keyState calls revoked are left out — including a
   * rotated key past its `revokesAt` that no sweep has revoked in the store yet. With
   * `environment`, only keys of that environment (records written before environments are live).
   */
  /**
   * `unusedDays`: only keys not used for that many days — last used before then, or never
   * used and created before then (docs/usage.md); a whole number of 1 or more (422 naming
   * `unusedDays` otherwise).
   */
  async list(caller: Caller, query: { tenant?: string; includeRevoked?: boolean; prefix?: string; environment?: Environment; unusedDays?: number }): Promise<KeyRecord[]> {
    const unusedDays = query.unusedDays;
    if (unusedDays !== undefined && (!Number.isSafeInteger(unusedDays) || unusedDays < 1 || unusedDays > 36_500)) throw invalidField('unusedDays', 'must be a whole number of days from 1 to 36500');
    if (caller.tenant !== null && query.tenant !== undefined && query.tenant !== caller.tenant) return [];
    const includeRevoked = query.includeRevoked ?? false;
    const records = await this.#store.list({ tenant: caller.tenant ?? query.tenant, includeRevoked });
    const now = this.#now();
    const prefix = query.prefix?.replace(/…$/, '');
    const environment = query.environment;
    const usedSince = unusedDays === undefined ? -Infinity : now - unusedDays * 86_400_000;
    return records.filter(
      (r) =>
        (includeRevoked || keyState(r, now) !== 'revoked') &&
        (!prefix || r.prefix.startsWith(prefix)) &&
        (environment === undefined || r.environment === environment) &&
        (unusedDays === undefined || (r.lastUsedAt ?? r.createdAt) < usedSince),
    );
  }

  /**
   * The tenants that have keys, with how many are active, expired and revoked, by name. A
   * tenant-scoped caller gets its own tenant only. Derived from the key list: there is no
   * tenant registry (a tenant exists once it has a key).
   */
  async tenants(caller: Caller): Promise<TenantSummary[]> {
    const now = this.#now();
    const byTenant = new Map<string, TenantSummary>();
    for (const record of await this.#store.list({ tenant: caller.tenant ?? undefined, includeRevoked: true })) {
      let summary = byTenant.get(record.tenant);
      if (summary === undefined) byTenant.set(record.tenant, (summary = { tenant: record.tenant, active: 0, expired: 0, revoked: 0 }));
      summary[keyState(record, now)]++;
    }
    return [...byTenant.values()].sort((a, b) => (a.tenant < b.tenant ? -1 : a.tenant > b.tenant ? 1 : 0));
  }

  async get(caller: Caller, id: string): Promise<KeyRecord> {
    return this.#visible(caller, await this.#store.get(id));
  }

  /** The only edit there is: the name (nothing permission-like can change). */
  async rename(caller: Caller, id: string, name: string): Promise<KeyRecord> {
    const before = this.#visible(caller, await this.#store.get(id));
    KeyService.#adminKeyRule(caller, before, 'rename');
    const trimmed = name.trim();
    if (trimmed === '' || trimmed.length > 128) throw invalidField('name', 'must be 1-128 characters');
    const after = this.#visible(caller, await this.#store.rename(id, trimmed));
    await this.#events?.key('key.rename', caller.actor, after, { from: before.name });
    return after;
  }

  /**
   * Replaces the key's own rate limits, on every instance within the revocation lag (the
   * record change is pushed). A tenant-scoped caller may add or keep limits, not remove one:
   * that would give the key more than it had.
   */
  async setRateLimits(caller: Caller, id: string, rates: readonly string[]): Promise<KeyRecord> {
    const before = this.#visible(caller, await this.#store.get(id));
    KeyService.#adminKeyRule(caller, before, 'change');
    const rateLimits = checkRates(rates, 'rateLimits');
    if (caller.tenant !== null && before.rateLimits.some((r) => !rateLimits.includes(r))) throw new KeygateError('forbidden', "only a platform admin may remove a key's rate limits");
    if (rateLimits.join(',') === before.rateLimits.join(',')) return before;
    const after = this.#visible(caller, await this.#store.setRateLimits(id, rateLimits));
    await this.#events?.key('key.limits', caller.actor, after, { rateLimitsFrom: before.rateLimits.join(','), rateLimitsTo: rateLimits.join(',') });
    return after;
  }

  /**
   * Sets, replaces or removes (null) the key's quota, on every instance within the revocation
   * lag. A tenant-scoped caller may give a key without one a quota; changing or removing one
   * gives the key more and is for platform admins.
   */
  async setQuota(caller: Caller, id: string, text: string | null): Promise<KeyRecord> {
    const before = this.#visible(caller, await this.#store.get(id));
    KeyService.#adminKeyRule(caller, before, 'change');
    const quota = checkQuota(text, 'quota');
    if (quota === before.quota) return before;
    if (caller.tenant !== null && before.quota !== null) throw new KeygateError('forbidden', "only a platform admin may change or remove a key's quota");
    const after = this.#visible(caller, await this.#store.setQuota(id, quota));
    await this.#events?.key('key.limits', caller.actor, after, { quotaFrom: before.quota ?? '', quotaTo: quota ?? '' });
    return after;
  }

  /**
   * Permanent. Revoking a revoked key changes nothing and is not an error. This asks the
   * stored status, not keyState, on purpose: a rotated key past its `revokesAt` (already
   * refused everywhere) is still written revoked now rather than at the next sweep.
   */
  async revoke(caller: Caller, id: string): Promise<{ record: KeyRecord; changed: boolean }> {
    const before = this.#visible(caller, await this.#store.get(id));
    KeyService.#adminKeyRule(caller, before, 'revoke');
    if (before.status === 'revoked') return { record: before, changed: false };
    const after = this.#visible(caller, await this.#store.revoke(id, this.#now()));
    await this.#events?.key('key.revoke', caller.actor, after);
    return { record: after, changed: true };
  }

  /**
   * Revokes every key of the tenant, or nothing: a caller that is not a platform admin is
   * refused (403, nothing revoked) when the tenant holds admin-role keys the call would
   * revoke, rather than revoking the rest and leaving those — an answer that cannot be
   * misread as "the tenant is clean", and the store revokes a tenant in one atomic step.
   */
  async revokeTenant(caller: Caller, tenant: string): Promise<string[]> {
    if (!TENANT_PATTERN.test(tenant)) throw invalidField('tenant', 'must match [a-z0-9][a-z0-9-]{0,62}');
    if (caller.tenant !== null && caller.tenant !== tenant) throw new KeygateError('not_found', 'no such tenant');
    if (caller.tenant !== null) {
      // The stored status, not keyState: any record the store would write revoked counts.
      const admins = (await this.#store.list({ tenant, includeRevoked: false })).filter((r) => r.role === 'admin' && r.status === 'active');
      if (admins.length) {
        throw new KeygateError(
          'forbidden',
          `tenant "${tenant}" holds admin keys (${admins.map((r) => r.id).join(', ')}), which only a platform admin may revoke; nothing was revoked — revoke the other keys one by one, or ask a platform admin`,
        );
      }
    }
    const ids = await this.#store.revokeTenant(tenant, this.#now());
    await this.#events?.audit('key.revoke_all', caller.actor, tenant, null, { count: ids.length });
    return ids;
  }

  /**
   * A successor with the same attributes (and expiry, unless `expires` is given). The old
   * key works for `overlapSeconds` more (0: revoked now): every instance refuses it from its
   * `revokesAt` on, and whichever instance's sweeper gets there first revokes it.
   */
  async rotate(caller: Caller, id: string, overlapSeconds: number, expires?: string): Promise<CreatedKey & { previous: KeyRecord }> {
    const old = this.#visible(caller, await this.#store.get(id));
    const now = this.#now();
    // Rotating mints a key with the old one's role: the same rule as creating an admin key.
    KeyService.#adminKeyRule(caller, old, 'rotate');
    // …and with its permissions: the successor gets no more than its predecessor (the same
    // attributes) and, like any key the caller creates, no more than the caller holds.
    const grant = KeyService.#grantOf(await this.directoryFor(old.tenant), old);
    KeyService.mayGrant(caller, grant.permissions, 'rotate keys', grant.through);
    if (!Number.isInteger(overlapSeconds) || overlapSeconds < 0 || overlapSeconds > MAX_OVERLAP_SECONDS) {
      throw invalidField('overlapSeconds', `must be a whole number from 0 to ${MAX_OVERLAP_SECONDS}`);
    }
    // Revoked includes a rotated key past its revokesAt that no sweep has revoked yet.
    const state = keyState(old, now);
    if (state === 'revoked') throw new KeygateError('conflict', 'a revoked key cannot be rotated');
    // An expired key's own expiry would make its successor expired at birth.
    if (state === 'expired' && expires === undefined) throw invalidField('expires', 'the key has expired: give its successor an expiry');
    let expiresAt = old.expiresAt;
    if (expires !== undefined) {
      try {
        expiresAt = parseExpiry(expires, now);
      } catch (error) {
        throw invalidField('expires', (error as Error).message);
      }
    }
    const { tenant, name, role, permissions, group, user, permissionsFrom, environment, client, rateLimits, quota } = old;
    const created = await this.#insert({ tenant, name, role, permissions, group, user, permissionsFrom, environment, client, rateLimits, quota, expiresAt }, now);
    const previous =
      (overlapSeconds === 0 ? await this.#store.revoke(old.id, now) : await this.#store.scheduleRevocation(old.id, now + overlapSeconds * 1000)) ?? old;
    await this.#events?.key('key.rotate', caller.actor, previous, { successor: created.record.id, overlapSeconds });
    await this.#events?.key('key.create', caller.actor, created.record, { rotatedFrom: old.id });
    if (overlapSeconds === 0) await this.#events?.key('key.revoke', caller.actor, previous, { reason: 'rotated' });
    return { ...created, previous };
  }

  audit(caller: Caller, query: { before?: string; limit: number }): Promise<AuditPage> {
    return this.#store.listAudit({ ...query, tenant: caller.tenant ?? undefined });
  }
}

/**
 * The rules for creating and revoking keys, in one place for the CLI and the admin API.
 * Returns the full key only from `create`; nothing else ever sees it.
 */
import type { Config } from '../config/schema.ts';
import type { KeyStore } from '../store/key-store.ts';
import { displayPrefix, generateKey, TENANT_PATTERN } from './format.ts';
import type { KeyHasher } from './hash.ts';
import { newKeyId } from './ids.ts';
import { parseExpiry } from './expiry.ts';
import type { KeyRecord, Role } from './record.ts';

export const PERMISSION_PATTERN = /^[A-Za-z0-9_.:*-]{1,128}$/;

export class KeyRuleError extends Error {
  override name = 'KeyRuleError';
  /** The input field at fault (`tenant`, `role`, …), for messages and problem details. */
  readonly field: string;
  constructor(field: string, message: string) {
    super(`${field}: ${message}`);
    this.field = field;
  }
}

export interface CreateKeyInput {
  tenant: string;
  name: string;
  role?: Role;
  permissions?: string[];
  group?: string | null;
  user?: string | null;
  client?: string | null;
  /** `30d`…`365d`, `never`, or an ISO date; default `never`. */
  expires?: string;
}

export interface CreatedKey {
  key: string;
  record: KeyRecord;
}

export class KeyService {
  readonly #store: KeyStore;
  readonly #hasher: KeyHasher;
  readonly #config: Pick<Config, 'keys' | 'tenants' | 'permissionGroups'>;
  readonly #now: () => number;

  constructor(store: KeyStore, hasher: KeyHasher, config: Pick<Config, 'keys' | 'tenants' | 'permissionGroups'>, now: () => number = Date.now) {
    this.#store = store;
    this.#hasher = hasher;
    this.#config = config;
    this.#now = now;
  }

  async create(input: CreateKeyInput): Promise<CreatedKey> {
    const now = this.#now();
    if (!TENANT_PATTERN.test(input.tenant)) throw new KeyRuleError('tenant', 'must match [a-z0-9][a-z0-9-]{0,62}');
    const name = input.name.trim();
    if (name === '' || name.length > 128) throw new KeyRuleError('name', 'must be 1-128 characters');
    const role = input.role ?? 'api-user';
    if (role !== 'api-user' && role !== 'admin') throw new KeyRuleError('role', 'must be "api-user" or "admin"');
    if (role === 'admin' && input.tenant !== this.#config.tenants.system) {
      throw new KeyRuleError('role', `"admin" keys belong to the system tenant "${this.#config.tenants.system}"; tenant keys are always "api-user"`);
    }
    const permissions = input.permissions ?? [];
    for (const p of permissions) if (!PERMISSION_PATTERN.test(p)) throw new KeyRuleError('permissions', `"${p}" is not a valid permission name`);
    const group = input.group ?? null;
    if (group !== null) {
      if (permissions.length) throw new KeyRuleError('group', 'give either permissions or a group, not both');
      if (!(group in this.#config.permissionGroups)) throw new KeyRuleError('group', `"${group}" is not defined in permissionGroups`);
    }
    let expiresAt: number | null;
    try {
      expiresAt = parseExpiry(input.expires ?? 'never', now);
    } catch (error) {
      throw new KeyRuleError('expires', (error as Error).message);
    }
    const key = generateKey(this.#config.keys.prefix, input.tenant);
    const record: KeyRecord = {
      id: newKeyId(),
      tenant: input.tenant,
      name,
      role,
      permissions: [...new Set(permissions)],
      group,
      user: input.user || null,
      client: input.client || null,
      status: 'active',
      prefix: displayPrefix(key),
      createdAt: now,
      expiresAt,
      revokedAt: null,
      lastUsedAt: null,
    };
    await this.#store.create(record, this.#hasher(key));
    return { key, record };
  }

  list(query: { tenant?: string; includeRevoked?: boolean }): Promise<KeyRecord[]> {
    return this.#store.list(query);
  }

  get(id: string): Promise<KeyRecord | null> {
    return this.#store.get(id);
  }

  /** Permanent. Returns null for an unknown id; a revoked key stays revoked. */
  revoke(id: string): Promise<KeyRecord | null> {
    return this.#store.revoke(id, this.#now());
  }

  revokeTenant(tenant: string): Promise<string[]> {
    if (!TENANT_PATTERN.test(tenant)) throw new KeyRuleError('tenant', 'must match [a-z0-9][a-z0-9-]{0,62}');
    return this.#store.revokeTenant(tenant, this.#now());
  }
}

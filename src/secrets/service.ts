/**
 * The rules for upstream secrets, shared by the CLI and the admin API:
 *
 *  - only platform admins manage secrets (they are platform-wide, and routes are global
 *    configuration); anyone else gets 403 on every secrets endpoint;
 *  - a value is written once — encrypted here, before it reaches the store — and never
 *    returned: every method answers with metadata only (id, name, times, key version);
 *  - a secret cannot change its value; the name and the id can change (a new id means
 *    re-encrypting, since the id is the ciphertext's associated data);
 *  - every change leaves an audit line (and a notification where configured) built from
 *    the id and name only.
 *
 *  - a secret the configuration in force names (usages.ts) is not removed unless the removal
 *    is forced; a forced removal is audited with the usages it broke.
 *
 * Errors are KeygateErrors with the key service's codes: validation_failed 422 (with the
 * field), not_found 404, forbidden 403, conflict 409 (a missing master key is a conflict with
 * field KEYGATE_MASTER_KEY, which the CLI reports as bad configuration; a secret in use is a
 * SecretInUseError).
 */
import type { EventSink } from '../events/event-sink.ts';
import type { Caller } from '../keys/service.ts';
import { invalidField, isKeygateError, KeygateError } from '../http/problem.ts';
import { decryptSecret, encryptSecret, MASTER_KEY_ENV, type Keyring } from './crypto.ts';
import { SECRET_ID_PATTERN, SECRET_ID_RULE, type SecretMeta, type SecretStore } from './secret-store.ts';
import { describeUsages, secretUsages, type SecretReferencingConfig, type SecretUsage } from './usages.ts';

/** Largest value accepted, in bytes. */
export const MAX_SECRET_BYTES = 8192;
/** A value keygate can put in an HTTP header: visible ASCII and inner spaces/tabs. */
const HEADER_SAFE = /^[\x21-\x7e](?:[\t\x20-\x7e]*[\x21-\x7e])?$/;

/**
 * Why a value is refused, or null if it is fine. Never quotes the value.
 */
export function secretValueProblem(value: string): string | null {
  if (value.length === 0) return 'must not be empty';
  if (Buffer.byteLength(value, 'utf8') > MAX_SECRET_BYTES) return `must be at most ${MAX_SECRET_BYTES} bytes`;
  if (!HEADER_SAFE.test(value)) return 'must be printable ASCII (it is sent in an HTTP header), without leading or trailing whitespace or line breaks';
  return null;
}

export interface AddSecretInput {
  id: string;
  name: string;
  value: string;
}

/** Where the configuration in force names a secret, and whether it is stored. */
export interface SecretUsageReport {
  id: string;
  /** The stored secret's name; null when it is not stored (a dangling reference). */
  name: string | null;
  stored: boolean;
  usages: SecretUsage[];
}

/**
 * The configuration in force names the secret: removing it would break `usages` (409
 * conflict). The message names every usage; the API and the CLI add how to force it.
 */
export class SecretInUseError extends KeygateError {
  override name = 'SecretInUseError';
  readonly usages: SecretUsage[];
  constructor(id: string, usages: SecretUsage[]) {
    super('conflict', `secret "${id}" is in use by the configuration in force: ${describeUsages(usages)}; point ${usages.length === 1 ? 'it' : 'them'} at another secret and reload before removing it, or force the removal`);
    this.usages = usages;
  }
}

export interface RewrapResult {
  /** Master key version everything is now under. */
  version: string;
  rewrapped: string[];
  alreadyCurrent: number;
  /** Secrets that could not be decrypted with the keys given, with the reason (never a value). */
  failed: { id: string; reason: string }[];
}

function checkName(name: string): string {
  const trimmed = name.trim();
  if (trimmed === '' || trimmed.length > 128) throw invalidField('name', 'must be 1-128 characters');
  return trimmed;
}

function checkId(id: string, field = 'id'): string {
  if (!SECRET_ID_PATTERN.test(id)) throw invalidField(field, SECRET_ID_RULE);
  return id;
}

export class SecretService {
  readonly #store: SecretStore;
  readonly #keyring: Keyring | null;
  readonly #events: EventSink | null;
  readonly #systemTenant: string;
  readonly #now: () => number;
  readonly #config: () => SecretReferencingConfig;

  /**
   * @param config the configuration in force, asked at each call (a server's follows its
   *   reloads; the CLI's is the file it was given). Without it, no secret is in use.
   */
  constructor(store: SecretStore, keyring: Keyring | null, events: EventSink | null, systemTenant: string, now: () => number = Date.now, config: () => SecretReferencingConfig = () => ({ routes: [] })) {
    this.#store = store;
    this.#keyring = keyring;
    this.#events = events;
    this.#systemTenant = systemTenant;
    this.#now = now;
    this.#config = config;
  }

  get keyring(): Keyring | null {
    return this.#keyring;
  }

  #admin(caller: Caller): void {
    if (caller.tenant !== null) throw new KeygateError('forbidden', 'only a platform admin may manage upstream secrets');
  }

  #keys(): Keyring {
    if (this.#keyring === null) throw new KeygateError('conflict', `${MASTER_KEY_ENV} is not set: keygate cannot encrypt secrets without a master key`, { field: MASTER_KEY_ENV });
    return this.#keyring;
  }

  async add(caller: Caller, input: AddSecretInput): Promise<SecretMeta> {
    this.#admin(caller);
    const id = checkId(input.id);
    const name = checkName(input.name);
    const problem = secretValueProblem(input.value);
    if (problem !== null) throw invalidField('value', problem);
    const keyring = this.#keys();
    const createdAt = this.#now();
    const envelope = encryptSecret(keyring, id, input.value);
    const meta: SecretMeta = { id, name, createdAt, lastUsedAt: null, keyVersion: envelope.v };
    try {
      await this.#store.addSecret({ ...meta, envelope });
    } catch (error) {
      if (isKeygateError(error, 'conflict')) throw new KeygateError('conflict', `a secret with id "${id}" exists; its value cannot be replaced (add one under a new id and repoint the routes)`);
      throw error;
    }
    await this.#events?.secret('secret.create', caller.actor, meta, this.#systemTenant, { keyVersion: meta.keyVersion });
    return meta;
  }

  async list(caller: Caller): Promise<SecretMeta[]> {
    this.#admin(caller);
    return this.#store.listSecrets();
  }

  /**
   * Renames (`name`) and/or moves to a new id (`id`). The value stays as it is. Routes that
   * name the old id stop resolving (`keygate config check` lists them).
   */
  async rename(caller: Caller, id: string, change: { name?: string; id?: string }): Promise<SecretMeta> {
    this.#admin(caller);
    if (change.name === undefined && change.id === undefined) throw invalidField('name', 'give a new name, a new id, or both');
    const name = change.name === undefined ? undefined : checkName(change.name);
    const to = change.id === undefined ? id : checkId(change.id);
    if (to === id) {
      const before = await this.#store.getSecret(id);
      if (before === null) throw new KeygateError('not_found', 'no such secret');
      if (name === undefined) return stripEnvelope(before);
      const after = await this.#store.renameSecret(id, name);
      if (after === null) throw new KeygateError('not_found', 'no such secret');
      await this.#events?.secret('secret.rename', caller.actor, after, this.#systemTenant, { from: before.name });
      return after;
    }
    const keyring = this.#keys();
    const before = await this.#store.getSecret(id);
    if (before === null) throw new KeygateError('not_found', 'no such secret');
    let value: string;
    try {
      value = decryptSecret(keyring, id, before.envelope);
    } catch (error) {
      if (isKeygateError(error, 'upstream_unavailable')) throw new KeygateError('conflict', `secret "${id}" cannot be decrypted, so it cannot be moved: ${error.message}`);
      throw error;
    }
    const envelope = encryptSecret(keyring, to, value);
    let after: SecretMeta | null;
    try {
      after = await this.#store.moveSecret(id, to, name ?? before.name, envelope);
    } catch (error) {
      if (isKeygateError(error, 'conflict')) throw new KeygateError('conflict', `a secret with id "${to}" exists`);
      throw error;
    }
    if (after === null) throw new KeygateError('not_found', 'no such secret');
    await this.#events?.secret('secret.rename', caller.actor, after, this.#systemTenant, { fromId: id, from: before.name });
    return after;
  }

  /** Where the configuration in force names `id` (no store access, no caller check: see `usages`). */
  usagesOf(id: string): SecretUsage[] {
    return secretUsages(this.#config(), id);
  }

  /**
   * Where the configuration in force names the secret. A secret that is neither stored nor
   * named is not_found; one that is named but not stored is answered (`stored: false`), so a
   * dangling reference shows.
   */
  async usages(caller: Caller, id: string): Promise<SecretUsageReport> {
    this.#admin(caller);
    checkId(id);
    const usages = this.usagesOf(id);
    const stored = await this.#store.getSecret(id);
    if (stored === null && usages.length === 0) throw new KeygateError('not_found', 'no such secret, and the configuration names none by this id');
    return { id, name: stored?.name ?? null, stored: stored !== null, usages };
  }

  /**
   * Removes a secret, unless the configuration in force names it (SecretInUseError) and
   * `force` is not set. A forced removal that broke usages is audited with them.
   */
  async remove(caller: Caller, id: string, options: { force?: boolean } = {}): Promise<SecretMeta> {
    this.#admin(caller);
    checkId(id);
    const usages = this.usagesOf(id);
    if (usages.length && !options.force) {
      // Nothing stored: there is nothing to remove, whatever names it.
      if ((await this.#store.getSecret(id)) === null) throw new KeygateError('not_found', 'no such secret');
      throw new SecretInUseError(id, usages);
    }
    const removed = await this.#store.removeSecret(id);
    if (removed === null) throw new KeygateError('not_found', 'no such secret');
    await this.#events?.secret('secret.remove', caller.actor, removed, this.#systemTenant, usages.length ? { forced: true, brokenUsages: describeUsages(usages) } : {});
    return removed;
  }

  /**
   * Re-encrypts every secret that is not under the current master key (rotation: the old
   * key in KEYGATE_MASTER_KEY_PREVIOUS, the new one in KEYGATE_MASTER_KEY). Idempotent; a
   * secret removed or changed meanwhile is left as it is.
   */
  async rewrap(caller: Caller): Promise<RewrapResult> {
    this.#admin(caller);
    const keyring = this.#keys();
    const version = keyring.current.version;
    const result: RewrapResult = { version, rewrapped: [], alreadyCurrent: 0, failed: [] };
    for (const meta of await this.#store.listSecrets()) {
      const stored = await this.#store.getSecret(meta.id);
      if (stored === null) continue;
      if (stored.envelope.v === version) {
        result.alreadyCurrent++;
        continue;
      }
      let value: string;
      try {
        value = decryptSecret(keyring, stored.id, stored.envelope);
      } catch (error) {
        if (!isKeygateError(error, 'upstream_unavailable')) throw error;
        result.failed.push({ id: stored.id, reason: error.message });
        continue;
      }
      if (await this.#store.replaceEnvelope(stored.id, stored.envelope, encryptSecret(keyring, stored.id, value))) result.rewrapped.push(stored.id);
    }
    if (result.rewrapped.length) await this.#events?.audit('secret.rewrap', caller.actor, null, null, { keyVersion: version, count: result.rewrapped.length });
    return result;
  }
}

function stripEnvelope(secret: SecretMeta): SecretMeta {
  return { id: secret.id, name: secret.name, createdAt: secret.createdAt, lastUsedAt: secret.lastUsedAt, keyVersion: secret.keyVersion };
}

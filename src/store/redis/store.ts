/**
 * The Redis store: the production key index, shared by any number of stateless keygate
 * instances. Key layout, message format and the staleness rules: docs/redis.md.
 *
 * One command connection (commands.ts) serves every role, each in its file: keys.ts
 * (KeyStore), lifecycle.ts, secrets.ts, sessions.ts, replay.ts; feed.ts is the revocation
 * feed (subscriber connection, log replay, resync). This class composes them into the one
 * object the rest of keygate uses.
 *
 * Usage:
 *   const store = await RedisStore.connect(config.store.redis, { allowUnavailable: true, logger });
 *   await store.subscribe(verifier);
 */
import type { KeyRecord } from '../../keys/record.ts';
import type { Logger } from '../../observability/logger.ts';
import type { Envelope } from '../../secrets/crypto.ts';
import type { SecretFeed, SecretMeta, SecretStore, StoredSecret } from '../../secrets/secret-store.ts';
import type { KeyQuery, KeyStore, StoreFeed } from '../key-store.ts';
import type { AuditEntry, AuditPage, AuditQuery, LifecycleStore, ReminderStage } from '../lifecycle-store.ts';
import type { ReplayStore } from '../replay-store.ts';
import type { SessionStore } from '../session-store.ts';
import { Commands, errorMessage } from './commands.ts';
import { modeOf, type RedisConfig } from './connection.ts';
import { RevocationFeed } from './feed.ts';
import { RedisKeys } from './keys.ts';
import { RedisLifecycle } from './lifecycle.ts';
import { RedisReplay } from './replay.ts';
import { RedisSecrets } from './secrets.ts';
import { RedisSessions } from './sessions.ts';

export interface RedisStoreOptions {
  /**
   * Return a store even if Redis cannot be reached yet (it keeps reconnecting): `serve`
   * starts degraded (readyz 503, unknown keys 503) and recovers by itself. Without it,
   * `connect` fails with a StoreUnavailableError that names the server (the CLI's case).
   */
  allowUnavailable?: boolean;
  logger?: Logger;
  /** How often the subscriber connection is PINGed (ms). */
  heartbeatMs?: number;
}

export class RedisStore implements KeyStore, LifecycleStore, SecretStore, SessionStore, ReplayStore {
  readonly kind = 'redis' as const;
  readonly #redis: Commands;
  readonly #feed: RevocationFeed;
  readonly #keys: RedisKeys;
  readonly #lifecycle: RedisLifecycle;
  readonly #secrets: RedisSecrets;
  readonly #sessions: RedisSessions;
  readonly #replay: RedisReplay;

  private constructor(config: RedisConfig, options: RedisStoreOptions) {
    this.#redis = new Commands(config, options.logger ?? null);
    this.#secrets = new RedisSecrets(this.#redis);
    this.#feed = new RevocationFeed(this.#redis, options.heartbeatMs ?? 1000, this.#secrets);
    this.#keys = new RedisKeys(this.#redis, this.#feed);
    this.#lifecycle = new RedisLifecycle(this.#redis, this.#feed);
    this.#sessions = new RedisSessions(this.#redis);
    this.#replay = new RedisReplay(this.#redis);
  }

  /**
   * Connects and waits (up to the connect timeout) for Redis to answer. If it does not: a
   * StoreUnavailableError, or with `allowUnavailable` a store that keeps reconnecting.
   */
  static async connect(config: RedisConfig, options: RedisStoreOptions = {}): Promise<RedisStore> {
    const store = new RedisStore(config, options);
    try {
      await store.#redis.untilReady();
    } catch (error) {
      if (!options.allowUnavailable) {
        await store.close();
        throw error;
      }
      options.logger?.warn({ redis: store.#redis.where, err: { message: errorMessage(error) } }, 'redis unreachable at start; serving degraded (unknown keys get 503) until it is back');
    }
    return store;
  }

  get feedHealthy(): boolean {
    return this.#feed.healthy;
  }

  // ---- KeyStore (keys.ts, feed.ts) ------------------------------------------------------

  findByHash(hash: string): Promise<KeyRecord | null> {
    return this.#keys.findByHash(hash);
  }
  get(id: string): Promise<KeyRecord | null> {
    return this.#keys.get(id);
  }
  create(record: KeyRecord, hash: string): Promise<void> {
    return this.#keys.create(record, hash);
  }
  list(query: KeyQuery): Promise<KeyRecord[]> {
    return this.#keys.list(query);
  }
  revoke(id: string, at: number): Promise<KeyRecord | null> {
    return this.#keys.revoke(id, at);
  }
  revokeTenant(tenant: string, at: number): Promise<string[]> {
    return this.#keys.revokeTenant(tenant, at);
  }
  subscribe(feed: StoreFeed): Promise<void> {
    return this.#feed.subscribe(feed);
  }
  async ping(): Promise<void> {
    await this.#redis.call('PING');
  }

  // ---- LifecycleStore (lifecycle.ts) ----------------------------------------------------

  rename(id: string, name: string): Promise<KeyRecord | null> {
    return this.#lifecycle.rename(id, name);
  }
  touch(lastUsed: ReadonlyMap<string, number>): Promise<void> {
    return this.#lifecycle.touch(lastUsed);
  }
  appendAudit(entry: AuditEntry): Promise<void> {
    return this.#lifecycle.appendAudit(entry);
  }
  listAudit(query: AuditQuery): Promise<AuditPage> {
    return this.#lifecycle.listAudit(query);
  }
  scheduleRevocation(id: string, at: number): Promise<KeyRecord | null> {
    return this.#lifecycle.scheduleRevocation(id, at);
  }
  revokeDue(now: number): Promise<string[]> {
    return this.#lifecycle.revokeDue(now);
  }
  listExpiring(from: number, until: number): Promise<KeyRecord[]> {
    return this.#lifecycle.listExpiring(from, until);
  }
  claimReminder(id: string, stage: ReminderStage): Promise<boolean> {
    return this.#lifecycle.claimReminder(id, stage);
  }

  // ---- SecretStore (secrets.ts) ---------------------------------------------------------

  subscribeSecrets(feed: SecretFeed): void {
    this.#secrets.subscribeSecrets(feed);
  }
  addSecret(secret: StoredSecret): Promise<void> {
    return this.#secrets.addSecret(secret);
  }
  listSecrets(): Promise<SecretMeta[]> {
    return this.#secrets.listSecrets();
  }
  getSecret(id: string): Promise<StoredSecret | null> {
    return this.#secrets.getSecret(id);
  }
  renameSecret(id: string, name: string): Promise<SecretMeta | null> {
    return this.#secrets.renameSecret(id, name);
  }
  moveSecret(from: string, to: string, name: string, envelope: Envelope): Promise<SecretMeta | null> {
    return this.#secrets.moveSecret(from, to, name, envelope);
  }
  replaceEnvelope(id: string, expected: Envelope, next: Envelope): Promise<boolean> {
    return this.#secrets.replaceEnvelope(id, expected, next);
  }
  removeSecret(id: string): Promise<SecretMeta | null> {
    return this.#secrets.removeSecret(id);
  }
  touchSecrets(lastUsed: ReadonlyMap<string, number>): Promise<void> {
    return this.#secrets.touchSecrets(lastUsed);
  }

  // ---- SessionStore (sessions.ts), ReplayStore (replay.ts) --------------------------------

  endSession(id: string, until: number): Promise<void> {
    return this.#sessions.endSession(id, until);
  }
  isSessionEnded(id: string): Promise<boolean> {
    return this.#sessions.isSessionEnded(id);
  }
  claimOnce(id: string, ttlMs: number): Promise<boolean> {
    return this.#replay.claimOnce(id, ttlMs);
  }

  // ---- shutdown -------------------------------------------------------------------------

  async close(): Promise<void> {
    if (this.#redis.closed) return;
    this.#redis.closed = true;
    this.#feed.close();
    this.#secrets.subscribeSecrets(null);
    await this.#redis.close();
  }

  /** For diagnostics and tests: how the store is connected and the names it uses. */
  get layout(): { mode: string; prefix: string; channel: string } {
    return { mode: modeOf(this.#redis.config), prefix: this.#redis.keys.prefix, channel: this.#redis.keys.channel };
  }

  /** For diagnostics and tests: the revocation log position this process has applied up to (-1: none yet). */
  get revocationLogPosition(): number {
    return this.#feed.position;
  }
}

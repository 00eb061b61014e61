/**
 * The embedded store: one SQLite file (database.ts) that several processes may open (a
 * running `keygate serve` and the CLI). Each role is a file: keys.ts (KeyStore),
 * lifecycle.ts, secrets.ts, sessions.ts, replay.ts; feed.ts polls what other processes
 * wrote (revocations, rotation changes, secret changes). This class composes them into the
 * one object the rest of keygate uses.
 *
 * SQLite calls are synchronous. An indexed lookup costs microseconds and only happens on a
 * cache miss; multi-instance production deployments use the Redis store.
 */
import type { KeyRecord } from '../../keys/record.ts';
import type { Envelope } from '../../secrets/crypto.ts';
import type { SecretFeed, SecretMeta, SecretStore, StoredSecret } from '../../secrets/secret-store.ts';
import type { KeyQuery, KeyStore, StoreFeed } from '../key-store.ts';
import type { AuditEntry, AuditPage, AuditQuery, LifecycleStore, ReminderStage } from '../lifecycle-store.ts';
import type { ReplayStore } from '../replay-store.ts';
import type { SessionStore } from '../session-store.ts';
import { Database } from './database.ts';
import { EmbeddedFeed } from './feed.ts';
import { EmbeddedKeys } from './keys.ts';
import { EmbeddedLifecycle } from './lifecycle.ts';
import { EmbeddedReplay } from './replay.ts';
import { EmbeddedSecrets } from './secrets.ts';
import { EmbeddedSessions } from './sessions.ts';

export interface EmbeddedStoreOptions {
  path: string;
  /** How often a serving process looks for revocations written by other processes. */
  pollMs?: number;
}

export class EmbeddedStore implements KeyStore, LifecycleStore, SecretStore, SessionStore, ReplayStore {
  readonly kind = 'embedded' as const;
  readonly feedHealthy = true;
  readonly #db: Database;
  readonly #feed: EmbeddedFeed;
  readonly #keys: EmbeddedKeys;
  readonly #lifecycle: EmbeddedLifecycle;
  readonly #secrets: EmbeddedSecrets;
  readonly #sessions: EmbeddedSessions;
  readonly #replay: EmbeddedReplay;

  constructor(options: EmbeddedStoreOptions) {
    this.#db = new Database(options.path);
    this.#feed = new EmbeddedFeed(this.#db, options.pollMs ?? 250);
    this.#keys = new EmbeddedKeys(this.#db, this.#feed);
    this.#lifecycle = new EmbeddedLifecycle(this.#db, this.#keys, this.#feed);
    this.#secrets = new EmbeddedSecrets(this.#db, this.#feed);
    this.#sessions = new EmbeddedSessions(this.#db);
    this.#replay = new EmbeddedReplay(options.path);
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
    this.#feed.ping();
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

  async close(): Promise<void> {
    this.#feed.close();
    this.#secrets.subscribeSecrets(null);
    this.#replay.close();
    this.#db.close();
  }
}

/**
 * The object the rest of keygate uses as its store, composed of one part per role: both
 * stores (redis/store.ts, embedded/store.ts) extend this with their parts and add what is
 * their own (the feed's health, subscribe, ping, close).
 */
import type { KeyRecord } from '../keys/record.ts';
import type { Envelope } from '../secrets/crypto.ts';
import type { SecretFeed, SecretMeta, SecretStore, StoredSecret } from '../secrets/secret-store.ts';
import type { KeyQuery, KeyStore, StoreFeed } from './key-store.ts';
import type { AuditEntry, AuditPage, AuditQuery, LifecycleStore, ReminderStage } from './lifecycle-store.ts';
import type { ReplayStore } from './replay-store.ts';
import type { SessionStore } from './session-store.ts';
import type { DirectorySnapshot, DirectoryStore, DirectoryWrite } from './directory-store.ts';
import type { DirectoryChange } from '../users/records.ts';
import type { QuotaDecision, QuotaStore } from './quota-store.ts';
import type { QuotaAnswer, QuotaCounter } from '../limits/quota.ts';
import type { UsageCounts, UsageScope, UsageStore } from './usage-store.ts';

export interface StoreParts {
  keys: Pick<KeyStore, 'findByHash' | 'get' | 'create' | 'list' | 'revoke' | 'revokeTenant'>;
  lifecycle: LifecycleStore;
  secrets: SecretStore;
  sessions: SessionStore;
  replay: ReplayStore;
  directory: DirectoryStore;
  quotas: QuotaStore;
  usage: UsageStore;
}

export abstract class ComposedStore implements KeyStore, LifecycleStore, SecretStore, SessionStore, ReplayStore, DirectoryStore, QuotaStore, UsageStore {
  abstract readonly kind: KeyStore['kind'];
  abstract readonly feedHealthy: boolean;
  abstract subscribe(feed: StoreFeed): Promise<void>;
  abstract ping(): Promise<void>;
  abstract close(): Promise<void>;
  readonly #parts: StoreParts;

  protected constructor(parts: StoreParts) {
    this.#parts = parts;
  }

  // ---- KeyStore -------------------------------------------------------------------------

  findByHash(hash: string): Promise<KeyRecord | null> {
    return this.#parts.keys.findByHash(hash);
  }
  get(id: string): Promise<KeyRecord | null> {
    return this.#parts.keys.get(id);
  }
  create(record: KeyRecord, hash: string): Promise<void> {
    return this.#parts.keys.create(record, hash);
  }
  list(query: KeyQuery): Promise<KeyRecord[]> {
    return this.#parts.keys.list(query);
  }
  revoke(id: string, at: number): Promise<KeyRecord | null> {
    return this.#parts.keys.revoke(id, at);
  }
  revokeTenant(tenant: string, at: number): Promise<string[]> {
    return this.#parts.keys.revokeTenant(tenant, at);
  }

  // ---- LifecycleStore -------------------------------------------------------------------

  rename(id: string, name: string): Promise<KeyRecord | null> {
    return this.#parts.lifecycle.rename(id, name);
  }
  setRateLimits(id: string, rateLimits: readonly string[]): Promise<KeyRecord | null> {
    return this.#parts.lifecycle.setRateLimits(id, rateLimits);
  }
  setQuota(id: string, quota: string | null): Promise<KeyRecord | null> {
    return this.#parts.lifecycle.setQuota(id, quota);
  }
  touch(lastUsed: ReadonlyMap<string, number>): Promise<void> {
    return this.#parts.lifecycle.touch(lastUsed);
  }
  appendAudit(entry: AuditEntry): Promise<void> {
    return this.#parts.lifecycle.appendAudit(entry);
  }
  listAudit(query: AuditQuery): Promise<AuditPage> {
    return this.#parts.lifecycle.listAudit(query);
  }
  scheduleRevocation(id: string, at: number): Promise<KeyRecord | null> {
    return this.#parts.lifecycle.scheduleRevocation(id, at);
  }
  revokeDue(now: number): Promise<string[]> {
    return this.#parts.lifecycle.revokeDue(now);
  }
  listExpiring(from: number, until: number): Promise<KeyRecord[]> {
    return this.#parts.lifecycle.listExpiring(from, until);
  }
  claimReminder(id: string, stage: ReminderStage): Promise<boolean> {
    return this.#parts.lifecycle.claimReminder(id, stage);
  }

  // ---- SecretStore ----------------------------------------------------------------------

  subscribeSecrets(feed: SecretFeed): void {
    this.#parts.secrets.subscribeSecrets(feed);
  }
  addSecret(secret: StoredSecret): Promise<void> {
    return this.#parts.secrets.addSecret(secret);
  }
  listSecrets(): Promise<SecretMeta[]> {
    return this.#parts.secrets.listSecrets();
  }
  getSecret(id: string): Promise<StoredSecret | null> {
    return this.#parts.secrets.getSecret(id);
  }
  renameSecret(id: string, name: string): Promise<SecretMeta | null> {
    return this.#parts.secrets.renameSecret(id, name);
  }
  moveSecret(from: string, to: string, name: string, envelope: Envelope): Promise<SecretMeta | null> {
    return this.#parts.secrets.moveSecret(from, to, name, envelope);
  }
  replaceEnvelope(id: string, expected: Envelope, next: Envelope): Promise<boolean> {
    return this.#parts.secrets.replaceEnvelope(id, expected, next);
  }
  removeSecret(id: string): Promise<SecretMeta | null> {
    return this.#parts.secrets.removeSecret(id);
  }
  touchSecrets(lastUsed: ReadonlyMap<string, number>): Promise<void> {
    return this.#parts.secrets.touchSecrets(lastUsed);
  }

  // ---- SessionStore, ReplayStore --------------------------------------------------------

  endSession(id: string, until: number): Promise<void> {
    return this.#parts.sessions.endSession(id, until);
  }
  isSessionEnded(id: string): Promise<boolean> {
    return this.#parts.sessions.isSessionEnded(id);
  }
  claimOnce(id: string, ttlMs: number): Promise<boolean> {
    return this.#parts.replay.claimOnce(id, ttlMs);
  }

  releaseClaim(id: string): Promise<void> {
    return this.#parts.replay.releaseClaim(id);
  }

  // ---- DirectoryStore -------------------------------------------------------------------

  directory(tenant?: string): Promise<DirectorySnapshot> {
    return this.#parts.directory.directory(tenant);
  }
  writeDirectory(write: DirectoryWrite): Promise<DirectoryChange | null> {
    return this.#parts.directory.writeDirectory(write);
  }

  // ---- QuotaStore -----------------------------------------------------------------------

  chargeQuotas(counters: readonly QuotaCounter[], weight: number): Promise<QuotaDecision> {
    return this.#parts.quotas.chargeQuotas(counters, weight);
  }
  quotaStatus(counter: QuotaCounter): Promise<QuotaAnswer> {
    return this.#parts.quotas.quotaStatus(counter);
  }
  topUpQuota(counter: QuotaCounter, amount: number): Promise<QuotaAnswer> {
    return this.#parts.quotas.topUpQuota(counter, amount);
  }

  // ---- UsageStore -----------------------------------------------------------------------

  addUsage(batch: readonly UsageCounts[], now: number): Promise<void> {
    return this.#parts.usage.addUsage(batch, now);
  }
  readUsage(scope: UsageScope, id: string, days: readonly string[]): Promise<Record<string, number>[]> {
    return this.#parts.usage.readUsage(scope, id, days);
  }
}

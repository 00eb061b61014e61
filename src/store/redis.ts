/**
 * The Redis store: the production key index, shared by any number of stateless keygate
 * instances. Key layout, message format and the staleness rules: docs/redis.md.
 *
 *  - A lookup by key hash is one HGETALL (the record lives under its hash), auto-pipelined.
 *  - create, revoke and revoke-all are single Lua scripts: the unique indexes are checked
 *    and the record, its indexes and (for revocations) the PUBLISH happen together or not
 *    at all.
 *  - Long-running processes `subscribe`: a dedicated connection listens on the revocation
 *    channel. `feedHealthy` is true only while it is subscribed; when it comes back after a
 *    disconnect the feed is told to `resync` (flush) only once the SUBSCRIBE is confirmed,
 *    so no revocation published during the gap can be missed. A PING on that connection
 *    every `heartbeatMs` catches a connection that died silently.
 *  - Upstream secrets (encrypted envelopes only) are one hash each; every change publishes
 *    the ids on a second channel that the same subscriber connection listens on, so every
 *    instance drops its cached value, and a resync flushes that cache too.
 *  - Every command error becomes a StoreUnavailableError (the request path answers 503 or
 *    falls back to a recent cached answer); messages never carry a key name or a hash.
 *
 * Usage:
 *   const store = await RedisStore.connect(config.store.redis, { allowUnavailable: true, logger });
 *   await store.subscribe(verifier);
 */
import type { Redis } from 'ioredis';
import type { KeyRecord, KeyStatus, Role } from '../keys/record.ts';
import type { Logger } from '../observability/logger.ts';
import { DuplicateKeyError, StoreUnavailableError, type KeyQuery, type KeyStore, type RevocationEvent, type StoreFeed } from './key-store.ts';
import type { AuditEntry, AuditPage, AuditQuery, LifecycleStore, ReminderStage } from './lifecycle-store.ts';
import {
  createCommandConnection,
  createSubscriberConnection,
  describe,
  keyPrefixFor,
  modeOf,
  type Connection,
  type RedisConfig,
} from './redis-connection.ts';
import * as scripts from './redis-scripts.ts';
import type { LuaScript } from './redis-scripts.ts';
import { envelopeText, parseEnvelope, type Envelope } from '../secrets/crypto.ts';
import { DuplicateSecretError, type SecretFeed, type SecretMeta, type SecretStore, type StoredSecret } from '../secrets/secret-store.ts';
import type { SessionStore } from './session-store.ts';
import type { ReplayStore } from './replay-store.ts';

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

/** Redis key names under one prefix (docs/redis.md, "Key layout"). */
class KeyNames {
  readonly prefix: string;
  readonly all: string;
  readonly expiring: string;
  readonly scheduled: string;
  readonly reminders: string;
  readonly audit: string;
  readonly auditSeq: string;
  readonly channel: string;
  readonly secrets: string;
  readonly secretsChannel: string;
  constructor(prefix: string) {
    this.prefix = prefix;
    this.all = `${prefix}keys`;
    this.expiring = `${prefix}expiring`;
    this.scheduled = `${prefix}scheduled`;
    this.reminders = `${prefix}reminders`;
    this.audit = `${prefix}audit`;
    this.auditSeq = `${prefix}audit:seq`;
    this.channel = `${prefix}revocations`;
    this.secrets = `${prefix}secrets`;
    this.secretsChannel = `${prefix}secrets:changes`;
  }
  secret(id: string): string {
    return `${this.prefix}secret:${id}`;
  }
  hash(h: string): string {
    return `${this.prefix}hash:${h}`;
  }
  id(id: string): string {
    return `${this.prefix}id:${id}`;
  }
  tenant(tenant: string): string {
    return `${this.prefix}tenant:${tenant}`;
  }
  auditTenant(tenant: string): string {
    return `${this.prefix}audit:tenant:${tenant}`;
  }
  endedSession(id: string): string {
    return `${this.prefix}session:ended:${id}`;
  }

  replay(id: string): string {
    return `${this.prefix}replay:${id}`;
  }
}

/** The record as the field/value list of its Redis hash; null fields are left out. */
function toFields(r: KeyRecord): string[] {
  const fields = [
    'id', r.id,
    'tenant', r.tenant,
    'name', r.name,
    'role', r.role,
    'permissions', JSON.stringify(r.permissions),
    'status', r.status,
    'prefix', r.prefix,
    'createdAt', String(r.createdAt),
  ];
  const optional: [string, string | number | null][] = [
    ['group', r.group],
    ['user', r.user],
    ['client', r.client],
    ['expiresAt', r.expiresAt],
    ['revokedAt', r.revokedAt],
    ['revokesAt', r.revokesAt],
    ['lastUsedAt', r.lastUsedAt],
  ];
  for (const [name, value] of optional) if (value !== null) fields.push(name, String(value));
  return fields;
}

/** A flat [field, value, …] reply (or a RESP3 map) as a plain object. */
function pairs(reply: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (Array.isArray(reply)) {
    for (let i = 0; i + 1 < reply.length; i += 2) out[String(reply[i])] = String(reply[i + 1]);
  } else if (reply !== null && typeof reply === 'object') {
    for (const [k, v] of Object.entries(reply)) out[k] = String(v);
  }
  return out;
}

function num(value: string | undefined): number | null {
  if (value === undefined || value === '') return null;
  const n = Number(value);
  return Number.isFinite(n) ? n : null;
}

function parsePermissions(value: string | undefined): string[] {
  try {
    const parsed: unknown = JSON.parse(value ?? '[]');
    return Array.isArray(parsed) ? parsed.map(String) : [];
  } catch {
    return [];
  }
}

function fromFields(reply: unknown): KeyRecord | null {
  const f = pairs(reply);
  if (f.id === undefined || f.tenant === undefined) return null;
  return {
    id: f.id,
    tenant: f.tenant,
    name: f.name ?? '',
    role: (f.role ?? 'api-user') as Role,
    permissions: parsePermissions(f.permissions),
    group: f.group ?? null,
    user: f.user ?? null,
    client: f.client ?? null,
    // Anything but a well-formed "active" is treated as revoked: fail closed.
    status: (f.status === 'active' ? 'active' : 'revoked') as KeyStatus,
    prefix: f.prefix ?? '',
    createdAt: num(f.createdAt) ?? 0,
    expiresAt: num(f.expiresAt),
    revokedAt: num(f.revokedAt),
    revokesAt: num(f.revokesAt),
    lastUsedAt: num(f.lastUsedAt),
  };
}

function records(reply: unknown): KeyRecord[] {
  if (!Array.isArray(reply)) return [];
  const out: KeyRecord[] = [];
  for (const item of reply) {
    const record = fromFields(item);
    if (record) out.push(record);
  }
  return out;
}

function strings(value: unknown): string[] {
  return Array.isArray(value) ? value.map(String) : [];
}

/** What the key channel carries: a revocation, or records that changed and stay active. */
export type KeyChannelMessage = { revoked: RevocationEvent } | { changed: string[] };

/** A message from the key channel, or null if it is neither kind. */
export function parseKeyMessage(message: string): KeyChannelMessage | null {
  let value: unknown;
  try {
    value = JSON.parse(message);
  } catch {
    return null;
  }
  if (value === null || typeof value !== 'object') return null;
  const { ids, hashes, at, changed } = value as Record<string, unknown>;
  const isStrings = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');
  if (isStrings(changed)) return { changed };
  if (!isStrings(ids) || !isStrings(hashes) || typeof at !== 'number' || !Number.isFinite(at)) return null;
  return { revoked: { ids, hashes, at } };
}

/** [id, name, createdAt, lastUsedAt, keyVersion] (an HMGET reply) as metadata, or null. */
function secretMeta(reply: unknown): SecretMeta | null {
  if (!Array.isArray(reply) || reply[0] === null || reply[0] === undefined) return null;
  const [id, name, createdAt, lastUsedAt, keyVersion] = reply.map((v) => (v === null || v === undefined ? undefined : String(v)));
  return { id: id!, name: name ?? '', createdAt: num(createdAt) ?? 0, lastUsedAt: num(lastUsedAt), keyVersion: keyVersion ?? '' };
}

/** A secrets-channel message's ids, or null if it is not one. */
export function parseSecretChange(message: string): string[] | null {
  try {
    const value = JSON.parse(message) as { ids?: unknown };
    if (Array.isArray(value.ids) && value.ids.every((x) => typeof x === 'string')) return value.ids as string[];
  } catch {
    // fall through
  }
  return null;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export class RedisStore implements KeyStore, LifecycleStore, SecretStore, SessionStore, ReplayStore {
  readonly kind = 'redis' as const;
  readonly #config: RedisConfig;
  readonly #keys: KeyNames;
  readonly #client: Connection;
  readonly #cluster: boolean;
  readonly #where: string;
  readonly #logger: Logger | null;
  readonly #heartbeatMs: number;
  readonly #timeoutMs: number;
  #closed = false;
  #connectedOnce = false;
  #commandsUp = false;

  #feed: StoreFeed | null = null;
  #secretFeed: SecretFeed | null = null;
  #sub: Redis | null = null;
  #subAttempt = 0;
  /** Bumped on every subscriber (re)connect and disconnect: stale SUBSCRIBE replies are ignored. */
  #subEpoch = 0;
  #subscribed = false;
  #heartbeat: NodeJS.Timeout | null = null;
  #beating = false;
  #firstSubscription: { resolve: () => void } | null = null;
  /**
   * Revocations this process has applied, by signature, so the copy that comes back over
   * the channel (or the local copy, whichever is second) is not applied and counted twice.
   */
  readonly #seen = new Map<string, number>();

  private constructor(config: RedisConfig, options: RedisStoreOptions) {
    this.#config = config;
    this.#keys = new KeyNames(keyPrefixFor(config));
    this.#cluster = modeOf(config) === 'cluster';
    this.#where = describe(config);
    this.#logger = options.logger ?? null;
    this.#heartbeatMs = options.heartbeatMs ?? 1000;
    this.#timeoutMs = config.commandTimeoutMs;
    this.#client = createCommandConnection(config);
    this.#client.on('error', (error: Error) => this.#logger?.debug({ err: { message: error.message } }, 'redis connection error'));
    this.#client.on('ready', () => {
      this.#commandsUp = true;
      if (this.#connectedOnce) this.#logger?.info({ redis: this.#where }, 'redis connection restored');
      this.#connectedOnce = true;
    });
    this.#client.on('close', () => {
      if (this.#commandsUp && !this.#closed) this.#logger?.warn({ redis: this.#where }, 'redis connection lost; reconnecting');
      this.#commandsUp = false;
    });
  }

  /**
   * Connects and waits (up to the connect timeout) for Redis to answer. If it does not: a
   * StoreUnavailableError, or with `allowUnavailable` a store that keeps reconnecting.
   */
  static async connect(config: RedisConfig, options: RedisStoreOptions = {}): Promise<RedisStore> {
    const store = new RedisStore(config, options);
    try {
      await store.#untilReady();
    } catch (error) {
      if (!options.allowUnavailable) {
        await store.close();
        throw error;
      }
      options.logger?.warn({ redis: store.#where, err: { message: errorMessage(error) } }, 'redis unreachable at start; serving degraded (unknown keys get 503) until it is back');
    }
    return store;
  }

  #untilReady(): Promise<void> {
    if (this.#client.status === 'ready') return Promise.resolve();
    const configured = (this.#config as { connectTimeout?: unknown }).connectTimeout;
    const limitMs = (typeof configured === 'number' && configured > 0 ? configured : 3000) + 500;
    return new Promise((resolve, reject) => {
      const done = (error?: Error) => {
        clearTimeout(timer);
        this.#client.off('ready', onReady);
        this.#client.off('error', onError);
        if (error) reject(new StoreUnavailableError(`cannot reach ${this.#where}: ${error.message}`));
        else resolve();
      };
      const onReady = () => done();
      const onError = (error: Error) => done(error);
      const timer = setTimeout(() => done(new Error(`no answer within ${limitMs} ms`)), limitMs);
      this.#client.on('ready', onReady);
      this.#client.on('error', onError);
    });
  }

  get feedHealthy(): boolean {
    return this.#subscribed;
  }

  // ---- commands -------------------------------------------------------------------------

  #unavailable(error: unknown): StoreUnavailableError {
    if (error instanceof StoreUnavailableError) return error;
    const message = errorMessage(error);
    if (/timed out/i.test(message)) return new StoreUnavailableError(`Redis did not answer within ${this.#timeoutMs} ms`);
    if (/writeable|Connection is closed|MaxRetriesPerRequest|Cluster isn't ready|None of startup nodes/i.test(message)) {
      return new StoreUnavailableError(`${this.#where} is not connected`);
    }
    return new StoreUnavailableError(`Redis error: ${message.split('\n')[0]!.slice(0, 200)}`);
  }

  /**
   * Cluster mode only: ioredis may hold a command while it (re)discovers the slots, beyond
   * commandTimeout, so a timer bounds the whole call. Standalone and Sentinel connections
   * fail at once when disconnected and time out per command otherwise.
   */
  #bounded<T>(promise: Promise<T>): Promise<T> {
    if (!this.#cluster) return promise;
    let timer: NodeJS.Timeout;
    const limit = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new StoreUnavailableError(`Redis did not answer within ${this.#timeoutMs} ms`)), this.#timeoutMs + 50);
    });
    return Promise.race([promise, limit]).finally(() => clearTimeout(timer));
  }

  async #call(command: string, ...args: (string | number)[]): Promise<unknown> {
    if (this.#closed) throw new StoreUnavailableError('the Redis store is closed');
    try {
      return await this.#bounded(this.#client.call(command, ...args));
    } catch (error) {
      throw this.#unavailable(error);
    }
  }

  /** EVALSHA, loading the script with EVAL when Redis does not have it (first use, restart, failover). */
  async #script(script: LuaScript, keys: string[], args: (string | number)[]): Promise<unknown> {
    try {
      return await this.#call('EVALSHA', script.sha, keys.length, ...keys, ...args);
    } catch (error) {
      if (!(error instanceof StoreUnavailableError) || !error.message.includes('NOSCRIPT')) throw error;
      return this.#call('EVAL', script.lua, keys.length, ...keys, ...args);
    }
  }

  // ---- KeyStore -------------------------------------------------------------------------

  async findByHash(hash: string): Promise<KeyRecord | null> {
    return fromFields(await this.#call('HGETALL', this.#keys.hash(hash)));
  }

  async get(id: string): Promise<KeyRecord | null> {
    return fromFields(await this.#script(scripts.GET, [this.#keys.id(id)], [this.#keys.prefix]));
  }

  async create(record: KeyRecord, hash: string): Promise<void> {
    const k = this.#keys;
    const expiring = record.status === 'active' && record.expiresAt !== null ? String(record.expiresAt) : '';
    const created = await this.#script(
      scripts.CREATE,
      [k.hash(hash), k.id(record.id), k.tenant(record.tenant), k.all, k.expiring],
      [k.prefix, hash, record.id, String(record.createdAt), expiring, ...toFields(record)],
    );
    if (Number(created) !== 1) throw new DuplicateKeyError('a key with this id or hash exists');
  }

  async list(query: KeyQuery): Promise<KeyRecord[]> {
    const set = query.tenant !== undefined ? this.#keys.tenant(query.tenant) : this.#keys.all;
    const found = records(await this.#script(scripts.LIST, [set], [this.#keys.prefix, query.includeRevoked ? '1' : '0']));
    return found.sort((a, b) => b.createdAt - a.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  async revoke(id: string, at: number): Promise<KeyRecord | null> {
    const k = this.#keys;
    const reply = await this.#script(scripts.REVOKE, [k.id(id), k.expiring], [k.prefix, id, String(at), k.channel]);
    if (!Array.isArray(reply)) return null;
    this.#applyLocally(reply);
    return fromFields(reply[3]);
  }

  async revokeTenant(tenant: string, at: number): Promise<string[]> {
    const k = this.#keys;
    const reply = await this.#script(scripts.REVOKE_TENANT, [k.tenant(tenant), k.expiring], [k.prefix, String(at), k.channel]);
    return this.#applyLocally(reply);
  }

  async ping(): Promise<void> {
    await this.#call('PING');
  }

  // ---- LifecycleStore -------------------------------------------------------------------

  async rename(id: string, name: string): Promise<KeyRecord | null> {
    return fromFields(await this.#script(scripts.RENAME, [this.#keys.id(id)], [this.#keys.prefix, name]));
  }

  async touch(lastUsed: ReadonlyMap<string, number>): Promise<void> {
    const entries = [...lastUsed];
    for (let i = 0; i < entries.length; i += 500) {
      const args: (string | number)[] = [this.#keys.prefix];
      for (const [id, at] of entries.slice(i, i + 500)) args.push(id, String(at));
      await this.#script(scripts.TOUCH, [this.#keys.all], args);
    }
  }

  async appendAudit(entry: AuditEntry): Promise<void> {
    const k = this.#keys;
    await this.#script(scripts.APPEND_AUDIT, [k.auditSeq, k.audit, entry.tenant !== null ? k.auditTenant(entry.tenant) : k.audit], [JSON.stringify(entry)]);
  }

  async listAudit(query: AuditQuery): Promise<AuditPage> {
    const set = query.tenant !== undefined ? this.#keys.auditTenant(query.tenant) : this.#keys.audit;
    const max = query.before !== undefined && /^\d+$/.test(query.before) ? `(${query.before}` : '+inf';
    // RESP2 answers member, score, member, …; RESP3 [member, score] pairs.
    const reply = await this.#call('ZREVRANGEBYSCORE', set, max, '-inf', 'WITHSCORES', 'LIMIT', 0, query.limit + 1);
    const flat = Array.isArray(reply) ? reply.flat().map(String) : [];
    const rows: { entry: AuditEntry; seq: string }[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) rows.push({ entry: JSON.parse(flat[i]!) as AuditEntry, seq: String(Number(flat[i + 1])) });
    const page = rows.slice(0, query.limit);
    return { entries: page.map((r) => r.entry), next: rows.length > query.limit ? page[page.length - 1]!.seq : null };
  }

  async scheduleRevocation(id: string, at: number): Promise<KeyRecord | null> {
    const k = this.#keys;
    const reply = await this.#script(scripts.SCHEDULE_REVOCATION, [k.id(id), k.scheduled], [k.prefix, id, String(at), k.channel]);
    if (!Array.isArray(reply)) return null;
    // This instance drops its copy at once, without waiting for its own message.
    const changed = String(reply[0]);
    if (changed !== '') this.#feed?.changed([changed]);
    return fromFields(reply[1]);
  }

  async revokeDue(now: number): Promise<string[]> {
    const k = this.#keys;
    const reply = await this.#script(scripts.REVOKE_DUE, [k.scheduled, k.expiring], [k.prefix, String(now), k.channel]);
    return this.#applyLocally(reply);
  }

  async listExpiring(from: number, until: number): Promise<KeyRecord[]> {
    return records(await this.#script(scripts.LIST_EXPIRING, [this.#keys.expiring], [this.#keys.prefix, String(from), String(until)]));
  }

  async claimReminder(id: string, stage: ReminderStage): Promise<boolean> {
    return Number(await this.#call('HSETNX', this.#keys.reminders, `${id}:${stage}`, '1')) === 1;
  }

  // ---- revocation feed ------------------------------------------------------------------

  /**
   * A revocation script's {at, ids, hashes}: applied to this process's feed at once, so the
   * revoking instance refuses the key as soon as the call returns, even before the message
   * comes back over the channel. Returns the revoked ids.
   */
  #applyLocally(reply: unknown): string[] {
    if (!Array.isArray(reply)) return [];
    const ids = strings(reply[1]);
    const hashes = strings(reply[2]);
    const at = Number(reply[0]);
    if (ids.length && this.#feed && this.#firstSighting({ ids, hashes, at })) this.#feed.revoked({ ids, hashes, at });
    return ids;
  }

  #firstSighting(event: RevocationEvent): boolean {
    const signature = `${event.at}:${event.ids.length}:${event.ids[0] ?? ''}`;
    if (this.#seen.delete(signature)) return false;
    const now = Date.now();
    this.#seen.set(signature, now + 10_000);
    for (const [key, expires] of this.#seen) {
      if (expires > now && this.#seen.size <= 10_000) break;
      this.#seen.delete(key);
    }
    return true;
  }

  #onMessage(message: string): void {
    const feed = this.#feed;
    if (!feed) return;
    const parsed = parseKeyMessage(message);
    if (parsed === null) {
      // Something unreadable on our channel may have been a revocation: trust nothing cached.
      this.#logger?.warn({ channel: this.#keys.channel }, 'unreadable revocation message; flushing the key cache');
      feed.resync();
      return;
    }
    if ('changed' in parsed) feed.changed(parsed.changed);
    else if (this.#firstSighting(parsed.revoked)) feed.revoked(parsed.revoked);
  }

  async subscribe(feed: StoreFeed): Promise<void> {
    if (this.#closed) throw new StoreUnavailableError('the Redis store is closed');
    this.#feed = feed;
    if (this.#sub) return;
    const first = new Promise<void>((resolve) => (this.#firstSubscription = { resolve }));
    this.#openSubscriber();
    this.#heartbeat = setInterval(() => this.#beat(), this.#heartbeatMs);
    this.#heartbeat.unref();
    // Start with a working feed when Redis is up; never hold up a degraded start.
    if (this.#client.status === 'ready') {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([first, new Promise<void>((resolve) => (timer = setTimeout(resolve, 2000)))]);
      clearTimeout(timer);
    }
  }

  #openSubscriber(): void {
    const sub = createSubscriberConnection(this.#config, this.#client, this.#subAttempt++);
    this.#sub = sub;
    sub.on('error', (error: Error) => this.#logger?.debug({ err: { message: error.message } }, 'redis subscriber connection error'));
    sub.on('message', (channel: string, message: string) => {
      if (this.#sub !== sub) return;
      if (channel === this.#keys.channel) this.#onMessage(message);
      else if (channel === this.#keys.secretsChannel) this.#onSecretMessage(message);
    });
    sub.on('ready', () => {
      if (this.#sub !== sub) return;
      const epoch = ++this.#subEpoch;
      sub.subscribe(this.#keys.channel, this.#keys.secretsChannel).then(
        () => {
          if (this.#sub !== sub || epoch !== this.#subEpoch || this.#closed) return;
          // Subscribed first, then flushed: a revocation written during the gap is either
          // in Redis before the flush (the next lookup sees it) or arrives as a message.
          this.#feed?.resync();
          this.#secretFeed?.secretsResync();
          this.#subscribed = true;
          this.#logger?.info({ channel: this.#keys.channel }, 'revocation feed subscribed');
          this.#firstSubscription?.resolve();
          this.#firstSubscription = null;
        },
        (error: unknown) => {
          if (this.#sub !== sub || epoch !== this.#subEpoch || this.#closed) return;
          this.#logger?.warn({ err: { message: errorMessage(error) } }, 'revocation feed: SUBSCRIBE failed; reconnecting');
          sub.disconnect(true);
        },
      );
    });
    sub.on('close', () => {
      if (this.#sub === sub) this.#feedLost();
    });
    sub.on('end', () => {
      // Gave up reconnecting (Cluster: this node); try the next one.
      if (this.#sub === sub && !this.#closed) this.#openSubscriber();
    });
  }

  #feedLost(): void {
    this.#subEpoch++;
    if (!this.#subscribed) return;
    this.#subscribed = false;
    if (!this.#closed) this.#logger?.warn({ channel: this.#keys.channel }, 'revocation feed disconnected; verifying every request in Redis until it is back');
  }

  /** A subscriber that stops answering PING is treated as gone, and reconnected. */
  #beat(): void {
    const sub = this.#sub;
    if (!sub || !this.#subscribed || this.#beating) return;
    this.#beating = true;
    const epoch = this.#subEpoch;
    sub
      .ping()
      .then(
        () => {},
        () => {
          if (this.#sub !== sub || epoch !== this.#subEpoch || this.#closed) return;
          this.#feedLost();
          sub.disconnect(true);
        },
      )
      .finally(() => (this.#beating = false));
  }

  // ---- upstream secrets -----------------------------------------------------------------

  #secretsChanged(ids: string[]): void {
    this.#secretFeed?.secretsChanged(ids);
  }

  #onSecretMessage(message: string): void {
    const feed = this.#secretFeed;
    if (!feed) return;
    const ids = parseSecretChange(message);
    if (ids === null) {
      this.#logger?.warn({ channel: this.#keys.secretsChannel }, 'unreadable secrets message; flushing the secret cache');
      feed.secretsResync();
    } else feed.secretsChanged(ids);
  }

  subscribeSecrets(feed: SecretFeed): void {
    this.#secretFeed = feed;
  }

  async addSecret(secret: StoredSecret): Promise<void> {
    const k = this.#keys;
    const text = envelopeText(secret.envelope);
    const fields = ['id', secret.id, 'name', secret.name, 'createdAt', String(secret.createdAt), 'keyVersion', secret.envelope.v, 'envelope', text];
    if (secret.lastUsedAt !== null) fields.push('lastUsedAt', String(secret.lastUsedAt));
    const added = await this.#script(scripts.SECRET_ADD, [k.secret(secret.id), k.secrets], [secret.id, String(secret.createdAt), k.secretsChannel, text, ...fields]);
    if (Number(added) !== 1) throw new DuplicateSecretError(`a secret with id "${secret.id}" exists`);
    this.#secretsChanged([secret.id]);
  }

  async listSecrets(): Promise<SecretMeta[]> {
    const reply = await this.#script(scripts.SECRET_LIST, [this.#keys.secrets], [this.#keys.prefix]);
    const out: SecretMeta[] = [];
    if (Array.isArray(reply)) {
      for (const item of reply) {
        const meta = secretMeta(item);
        if (meta) out.push(meta);
      }
    }
    return out.sort((a, b) => b.createdAt - a.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  async getSecret(id: string): Promise<StoredSecret | null> {
    const f = pairs(await this.#call('HGETALL', this.#keys.secret(id)));
    if (f.id === undefined) return null;
    const meta: SecretMeta = { id: f.id, name: f.name ?? '', createdAt: num(f.createdAt) ?? 0, lastUsedAt: num(f.lastUsedAt), keyVersion: f.keyVersion ?? '' };
    // An unreadable envelope is kept as one that can never decrypt: refused, not skipped.
    return { ...meta, envelope: parseEnvelope(f.envelope ?? '') ?? { v: meta.keyVersion, nonce: '', ct: '', tag: '' } };
  }

  async renameSecret(id: string, name: string): Promise<SecretMeta | null> {
    const meta = secretMeta(await this.#script(scripts.SECRET_RENAME, [this.#keys.secret(id)], [id, name, this.#keys.secretsChannel]));
    if (meta) this.#secretsChanged([id]);
    return meta;
  }

  async moveSecret(from: string, to: string, name: string, envelope: Envelope): Promise<SecretMeta | null> {
    const k = this.#keys;
    const reply = await this.#script(scripts.SECRET_MOVE, [k.secret(from), k.secret(to), k.secrets], [from, to, name, envelope.v, envelopeText(envelope), k.secretsChannel]);
    if (typeof reply === 'number' || reply === '0') throw new DuplicateSecretError(`a secret with id "${to}" exists`);
    const meta = secretMeta(reply);
    if (meta) this.#secretsChanged([from, to]);
    return meta;
  }

  async replaceEnvelope(id: string, expected: Envelope, next: Envelope): Promise<boolean> {
    return Number(await this.#script(scripts.SECRET_REPLACE, [this.#keys.secret(id)], [envelopeText(expected), envelopeText(next), next.v])) === 1;
  }

  async removeSecret(id: string): Promise<SecretMeta | null> {
    const k = this.#keys;
    const meta = secretMeta(await this.#script(scripts.SECRET_REMOVE, [k.secret(id), k.secrets], [id, k.secretsChannel]));
    if (meta) this.#secretsChanged([id]);
    return meta;
  }

  async touchSecrets(lastUsed: ReadonlyMap<string, number>): Promise<void> {
    const entries = [...lastUsed];
    for (let i = 0; i < entries.length; i += 500) {
      const args: (string | number)[] = [this.#keys.prefix];
      for (const [id, at] of entries.slice(i, i + 500)) args.push(id, String(at));
      await this.#script(scripts.SECRET_TOUCH, [this.#keys.secrets], args);
    }
  }

  // ---- SessionStore (console sign-outs) ---------------------------------------------------

  async endSession(id: string, until: number): Promise<void> {
    // Redis drops the entry itself once the session would have expired anyway.
    await this.#call('SET', this.#keys.endedSession(id), '1', 'PXAT', String(Math.max(until, Date.now() + 1000)));
  }

  async isSessionEnded(id: string): Promise<boolean> {
    return Number(await this.#call('EXISTS', this.#keys.endedSession(id))) === 1;
  }

  // ---- ReplayStore ----------------------------------------------------------------------

  async claimOnce(id: string, ttlMs: number): Promise<boolean> {
    return (await this.#call('SET', this.#keys.replay(id), '1', 'NX', 'PX', Math.max(1, Math.ceil(ttlMs)))) !== null;
  }

  // ---- shutdown -------------------------------------------------------------------------

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#heartbeat) clearInterval(this.#heartbeat);
    this.#feed = null;
    this.#secretFeed = null;
    this.#subscribed = false;
    this.#firstSubscription?.resolve();
    const sub = this.#sub;
    this.#sub = null;
    sub?.disconnect();
    const client = this.#client;
    if (client.status === 'ready') {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([client.quit().catch(() => {}), new Promise<void>((resolve) => (timer = setTimeout(resolve, this.#timeoutMs)))]);
      clearTimeout(timer);
    }
    client.disconnect();
  }

  /** For diagnostics and tests: how the store is connected and the names it uses. */
  get layout(): { mode: string; prefix: string; channel: string } {
    return { mode: modeOf(this.#config), prefix: this.#keys.prefix, channel: this.#keys.channel };
  }
}

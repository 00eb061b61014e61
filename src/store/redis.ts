/**
 * The Redis store: the production key index, shared by any number of stateless keygate
 * instances. Key layout, message format and the staleness rules: docs/redis.md.
 *
 *  - A lookup by key hash is one HGETALL (the record lives under its hash), auto-pipelined.
 *  - create, revoke and revoke-all are single Lua scripts: the unique indexes are checked
 *    and the record, its indexes and (for revocations) the PUBLISH happen together or not
 *    at all.
 *  - Every revocation (and rotation change) is also appended, numbered, to a capped stream,
 *    the revocation log, in the same script that writes and publishes it.
 *  - Long-running processes `subscribe`: a dedicated connection listens on the revocation
 *    channel (a shard channel, SSUBSCRIBE, on the prefix's shard in Cluster mode).
 *    `feedHealthy` is true only while it is subscribed and caught up: when it comes back
 *    after a disconnect it first confirms the SUBSCRIBE, then replays the log from the last
 *    event this process applied, so every instance applies every revocation, in order, and
 *    nothing cached has to be dropped. Only when the log cannot cover the gap (trimmed past
 *    it, or rewritten by a failover that lost writes) is the feed told to `resync`: cached
 *    answers are re-checked, still served meanwhile only if Redis cannot answer. A PING on
 *    that connection every `heartbeatMs` catches a connection that died silently.
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
  keySlot,
  modeOf,
  parseNodeAddress,
  slotOwner,
  type Connection,
  type NodeAddress,
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
  /** The revocation log (a capped stream) and its sequence counter. */
  readonly log: string;
  readonly seq: string;
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
    this.log = `${prefix}revocations:log`;
    this.seq = `${prefix}revocations:seq`;
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

/**
 * What the key channel carries: a revocation, or records that changed and stay active, with
 * its number and id in the revocation log (absent from a writer older than the log).
 */
export type KeyChannelMessage = ({ revoked: RevocationEvent } | { changed: string[] }) & { seq?: number; id?: string };

/** A message from the key channel (or a log entry's event), or null if it is neither kind. */
export function parseKeyMessage(message: string): KeyChannelMessage | null {
  let value: unknown;
  try {
    value = JSON.parse(message);
  } catch {
    return null;
  }
  if (value === null || typeof value !== 'object') return null;
  const { ids, hashes, at, us, changed, seq, id } = value as Record<string, unknown>;
  const isStrings = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');
  const position = typeof seq === 'number' && Number.isSafeInteger(seq) && seq > 0 && typeof id === 'string' && id !== '' ? { seq, id } : {};
  // cjson encodes an empty Lua table as {}: an empty list of ids.
  const list = (v: unknown): unknown => (v !== null && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length === 0 ? [] : v);
  const changedList = list(changed);
  if (isStrings(changedList)) return { changed: changedList, ...position };
  const idList = list(ids);
  const hashList = list(hashes);
  if (!isStrings(idList) || !isStrings(hashList) || typeof at !== 'number' || !Number.isFinite(at)) return null;
  // `us`: the microseconds within `at`'s millisecond, so lags below 1 ms can be measured.
  const micros = typeof us === 'number' && us >= 0 && us < 1000 ? us : 0;
  return { revoked: { ids: idList, hashes: hashList, at: at + micros / 1000 }, ...position };
}

interface LogEntry {
  /** The event's number (revocations:seq). */
  n: number;
  /** The stream entry id. */
  id: string;
  /** The event; null if it cannot be read. */
  event: KeyChannelMessage | null;
}

/** An XRANGE / XREVRANGE reply as log entries (entries without a number are left out). */
function logEntries(reply: unknown): LogEntry[] {
  if (!Array.isArray(reply)) return [];
  const out: LogEntry[] = [];
  for (const item of reply) {
    if (!Array.isArray(item) || item.length < 2) continue;
    const id = String(item[0]);
    const fields = pairs(item[1]);
    const n = Number(fields.n);
    if (!Number.isSafeInteger(n) || n <= 0) continue;
    const parsed = fields.e === undefined ? null : parseKeyMessage(fields.e);
    out.push({ n, id, event: parsed === null ? null : { ...parsed, seq: n, id } });
  }
  return out;
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

/** A script's seq and log id as an event's position (none when nothing was logged). */
function position(seq: unknown, id: unknown): { seq?: number; id?: string } {
  const n = Number(seq);
  return Number.isSafeInteger(n) && n > 0 && typeof id === 'string' && id !== '' ? { seq: n, id } : {};
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
  /** PUBLISH, or SPUBLISH in Cluster mode (the channels are then shard channels). */
  readonly #publish: 'PUBLISH' | 'SPUBLISH';
  /** Cluster: where the next subscriber connects (a MOVED reply named it), if known. */
  #subTarget: NodeAddress | null = null;
  /**
   * The revocation log position: every event numbered up to #applied has been applied by
   * this process (-1: not known yet; set when the feed first subscribes), #appliedId is that
   * event's log id. Events applied out of order (a local revocation overtaking a message,
   * or messages during a replay) wait in #ahead until the numbers below them are in, so an
   * event is applied, and counted, once: whichever of the local copy, the channel's copy
   * and the log's copy comes first.
   */
  #applied = -1;
  #appliedId = '0-0';
  readonly #ahead = new Map<number, string>();
  #catchingUp: Promise<void> | null = null;
  #catchUpTimer: NodeJS.Timeout | null = null;
  #catchUpAttempt = 0;

  private constructor(config: RedisConfig, options: RedisStoreOptions) {
    this.#config = config;
    this.#keys = new KeyNames(keyPrefixFor(config));
    this.#cluster = modeOf(config) === 'cluster';
    this.#where = describe(config);
    this.#logger = options.logger ?? null;
    this.#heartbeatMs = options.heartbeatMs ?? 1000;
    this.#timeoutMs = config.commandTimeoutMs;
    this.#publish = this.#cluster ? 'SPUBLISH' : 'PUBLISH';
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
    const reply = await this.#script(scripts.REVOKE, [k.id(id), k.expiring], [k.prefix, id, String(at), k.channel, this.#publish]);
    if (!Array.isArray(reply)) return null;
    this.#applyLocally(reply);
    return fromFields(reply[5]);
  }

  async revokeTenant(tenant: string, at: number): Promise<string[]> {
    const k = this.#keys;
    const reply = await this.#script(scripts.REVOKE_TENANT, [k.tenant(tenant), k.expiring], [k.prefix, String(at), k.channel, this.#publish]);
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
    const reply = await this.#script(scripts.SCHEDULE_REVOCATION, [k.id(id), k.scheduled], [k.prefix, id, String(at), k.channel, this.#publish]);
    if (!Array.isArray(reply)) return null;
    // This instance drops its copy at once, without waiting for its own message.
    const changed = String(reply[0]);
    if (changed !== '') this.#deliver({ changed: [changed], ...position(reply[2], reply[3]) });
    return fromFields(reply[1]);
  }

  async revokeDue(now: number): Promise<string[]> {
    const k = this.#keys;
    const reply = await this.#script(scripts.REVOKE_DUE, [k.scheduled, k.expiring], [k.prefix, String(now), k.channel, this.#publish]);
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
   * A revocation script's {at, ids, hashes, seq, logId}: applied to this process's feed at
   * once, so the revoking instance refuses the key as soon as the call returns, even before
   * the message comes back over the channel. Returns the revoked ids.
   */
  #applyLocally(reply: unknown): string[] {
    if (!Array.isArray(reply)) return [];
    const ids = strings(reply[1]);
    const hashes = strings(reply[2]);
    const at = Number(reply[0]);
    if (ids.length) this.#deliver({ revoked: { ids, hashes, at }, ...position(reply[3], reply[4]) });
    return ids;
  }

  /**
   * Applies one key event to the feed, unless this process has applied it already (by its
   * log number). Events without a number (a writer older than the log) are applied as they come.
   */
  #deliver(event: KeyChannelMessage): void {
    const feed = this.#feed;
    if (!feed) return;
    const { seq, id } = event;
    if (seq !== undefined && id !== undefined && this.#applied >= 0) {
      if (seq <= this.#applied || this.#ahead.has(seq)) return;
      this.#ahead.set(seq, id);
      while (this.#ahead.has(this.#applied + 1)) {
        this.#applied++;
        this.#appliedId = this.#ahead.get(this.#applied)!;
        this.#ahead.delete(this.#applied);
      }
      // A number was skipped: its message may still be on its way (a local revocation can
      // overtake another instance's message); if it is not there shortly, read the log.
      if (this.#ahead.size > 0 && this.#subscribed) this.#scheduleCatchUp(25);
    }
    if ('changed' in event) feed.changed(event.changed);
    else feed.revoked(event.revoked);
  }

  #onMessage(message: string): void {
    const feed = this.#feed;
    if (!feed) return;
    const parsed = parseKeyMessage(message);
    if (parsed === null) {
      // Something unreadable on our channel may have been a revocation: trust nothing cached.
      this.#logger?.warn({ channel: this.#keys.channel }, 'unreadable revocation message; re-checking every cached key');
      feed.resync();
      return;
    }
    this.#deliver(parsed);
  }

  /** The last entry of the revocation log, or null if it is empty. */
  async #logTail(): Promise<LogEntry | null> {
    return logEntries(await this.#call('XREVRANGE', this.#keys.log, '+', '-', 'COUNT', 1))[0] ?? null;
  }

  #rebase(tail: LogEntry | null): void {
    this.#applied = tail?.n ?? 0;
    this.#appliedId = tail?.id ?? '0-0';
    this.#ahead.clear();
  }

  /**
   * Applies, in order, every logged event after the last one this process applied. The
   * first time (no position yet) it only takes the log's end as its position, and has the
   * feed re-check what it may have cached before. If the log no longer holds that last
   * event (trimmed past it, or rewritten: a failover that lost writes, a deleted log), the
   * gap cannot be covered: the feed is told to resync and the position moves to the log's end.
   */
  #catchUp(): Promise<void> {
    this.#catchingUp ??= this.#replay().finally(() => (this.#catchingUp = null));
    return this.#catchingUp;
  }

  async #replay(): Promise<void> {
    const k = this.#keys;
    if (this.#applied < 0) {
      this.#rebase(await this.#logTail());
      this.#feed?.resync();
      return;
    }
    if (this.#appliedId !== '0-0') {
      const here = logEntries(await this.#call('XRANGE', k.log, this.#appliedId, this.#appliedId));
      if (here[0]?.n !== this.#applied) {
        this.#logger?.warn({ log: k.log }, 'the revocation log no longer holds the last event this instance applied; re-checking every cached key');
        this.#rebase(await this.#logTail());
        this.#feed?.resync();
        return;
      }
    }
    let from = this.#appliedId === '0-0' ? '-' : `(${this.#appliedId}`;
    let first = true;
    for (;;) {
      const page = logEntries(await this.#call('XRANGE', k.log, from, '+', 'COUNT', 500));
      for (const entry of page) {
        if (first && entry.n > this.#applied + 1 && !this.#ahead.has(this.#applied + 1)) {
          this.#logger?.warn({ log: k.log }, 'revocation log entries are missing; re-checking every cached key');
          this.#applied = entry.n - 1;
          this.#appliedId = entry.id;
          this.#feed?.resync();
        }
        first = false;
        if (entry.event) this.#deliver(entry.event);
        else if (entry.n > this.#applied) {
          // An entry that cannot be read may have been a revocation.
          this.#logger?.warn({ log: k.log }, 'unreadable revocation log entry; re-checking every cached key');
          this.#deliver({ changed: [], seq: entry.n, id: entry.id });
          this.#feed?.resync();
        }
      }
      if (page.length < 500) break;
      from = `(${page[page.length - 1]!.id}`;
    }
  }

  /** Catches up after `delayMs` (once, however often asked), retrying while Redis does not answer. */
  #scheduleCatchUp(delayMs: number): void {
    if (this.#catchUpTimer || this.#closed) return;
    this.#catchUpTimer = setTimeout(() => {
      this.#catchUpTimer = null;
      if (this.#closed || this.#ahead.size === 0) return;
      this.#catchUp().then(
        () => (this.#catchUpAttempt = 0),
        (error: unknown) => {
          this.#logger?.debug({ err: { message: errorMessage(error) } }, 'revocation log replay failed; retrying');
          this.#scheduleCatchUp(Math.min(1000, 50 * 2 ** Math.min(this.#catchUpAttempt++, 5)));
        },
      );
    }, delayMs);
    this.#catchUpTimer.unref();
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

  /** Cluster: the node the subscriber should use, the primary of the prefix's slot if known. */
  #subscriberNode(): NodeAddress | null {
    if (!this.#cluster) return null;
    return this.#subTarget ?? slotOwner(this.#client, keySlot(this.#keys.channel));
  }

  /** Cluster: drops the subscriber connection and opens one to `target` (or the slot's owner). */
  #moveSubscriber(target: NodeAddress | null): void {
    const old = this.#sub;
    if (!old || this.#closed) return;
    this.#subTarget = target;
    this.#feedLost();
    this.#openSubscriber();
    old.disconnect();
  }

  #openSubscriber(): void {
    const sub = createSubscriberConnection(this.#config, this.#client, this.#subAttempt++, this.#subscriberNode());
    this.#sub = sub;
    sub.on('error', (error: Error) => this.#logger?.debug({ err: { message: error.message } }, 'redis subscriber connection error'));
    const onMessage = (channel: string, message: string) => {
      if (this.#sub !== sub) return;
      if (channel === this.#keys.channel) this.#onMessage(message);
      else if (channel === this.#keys.secretsChannel) this.#onSecretMessage(message);
    };
    // Cluster: shard channels, delivered by the node that ran the script (no bus relay).
    sub.on(this.#cluster ? 'smessage' : 'message', onMessage);
    // The slot moved to another node (Redis unsubscribes us): follow it. Deferred, so that
    // a MOVED reply to our own SSUBSCRIBE is followed to the node it names (below) instead.
    if (this.#cluster) sub.on('moved', () => setImmediate(() => this.#sub === sub && this.#moveSubscriber(null)));
    sub.on('ready', () => {
      if (this.#sub !== sub) return;
      const epoch = ++this.#subEpoch;
      const channels = [this.#keys.channel, this.#keys.secretsChannel];
      (this.#cluster ? sub.ssubscribe(...channels) : sub.subscribe(...channels)).then(
        () => {
          if (this.#sub !== sub || epoch !== this.#subEpoch || this.#closed) return;
          // Subscribed first, then caught up from the log: a revocation written during the
          // gap is either in the log (replayed) or arrives as a message.
          this.#secretFeed?.secretsResync();
          this.#afterSubscribe(sub, epoch, 0);
        },
        (error: unknown) => {
          if (this.#sub !== sub || epoch !== this.#subEpoch || this.#closed) return;
          const moved = /^MOVED \d+ (\S+)/.exec(errorMessage(error));
          if (moved && this.#cluster) {
            this.#moveSubscriber(parseNodeAddress(moved[1]!));
            return;
          }
          this.#logger?.warn({ err: { message: errorMessage(error) } }, 'revocation feed: SUBSCRIBE failed; reconnecting');
          sub.disconnect(true);
        },
      );
    });
    sub.on('close', () => {
      if (this.#sub === sub) this.#feedLost();
    });
    sub.on('end', () => {
      // Gave up reconnecting (Cluster: this node); try the slot's owner, or the next node.
      if (this.#sub === sub && !this.#closed) {
        this.#subTarget = null;
        this.#openSubscriber();
      }
    });
  }

  /**
   * Subscribed: replays the log, then reports the feed healthy. Until the replay succeeds
   * (the command connection may come back after the subscriber) the feed stays unhealthy,
   * and cached answers are not dropped: requests go to Redis and, while it cannot answer,
   * fall back to recent cached answers (docs/redis.md, "Staleness rules").
   */
  #afterSubscribe(sub: Redis, epoch: number, attempt: number): void {
    const current = () => this.#sub === sub && epoch === this.#subEpoch && !this.#closed;
    this.#catchUp().then(
      () => {
        if (!current()) return;
        this.#subscribed = true;
        this.#logger?.info({ channel: this.#keys.channel }, 'revocation feed subscribed');
        this.#firstSubscription?.resolve();
        this.#firstSubscription = null;
      },
      (error: unknown) => {
        if (!current()) return;
        this.#logger?.debug({ err: { message: errorMessage(error) } }, 'revocation log replay failed; retrying');
        const timer = setTimeout(() => current() && this.#afterSubscribe(sub, epoch, attempt + 1), Math.min(1000, 25 * 2 ** Math.min(attempt, 6)));
        timer.unref();
      },
    );
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
    const added = await this.#script(scripts.SECRET_ADD, [k.secret(secret.id), k.secrets], [secret.id, String(secret.createdAt), k.secretsChannel, text, this.#publish, ...fields]);
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
    const meta = secretMeta(await this.#script(scripts.SECRET_RENAME, [this.#keys.secret(id)], [id, name, this.#keys.secretsChannel, this.#publish]));
    if (meta) this.#secretsChanged([id]);
    return meta;
  }

  async moveSecret(from: string, to: string, name: string, envelope: Envelope): Promise<SecretMeta | null> {
    const k = this.#keys;
    const reply = await this.#script(scripts.SECRET_MOVE, [k.secret(from), k.secret(to), k.secrets], [from, to, name, envelope.v, envelopeText(envelope), k.secretsChannel, this.#publish]);
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
    const meta = secretMeta(await this.#script(scripts.SECRET_REMOVE, [k.secret(id), k.secrets], [id, k.secretsChannel, this.#publish]));
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
    if (this.#catchUpTimer) clearTimeout(this.#catchUpTimer);
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

  /** For diagnostics and tests: the revocation log position this process has applied up to (-1: none yet). */
  get revocationLogPosition(): number {
    return this.#applied;
  }
}

/**
 * The Redis store's command connection, shared by its roles (keys.ts, lifecycle.ts,
 * secrets.ts, sessions.ts, replay.ts, feed.ts): the key names under the prefix, commands and
 * scripts with their time bound, and the one rule for failures: every command error becomes
 * a StoreUnavailableError (the request path answers 503 or falls back to a recent cached
 * answer); messages never carry a key name or a hash.
 */
import type { Logger } from '../../observability/logger.ts';
import { StoreUnavailableError } from '../key-store.ts';
import { createCommandConnection, describe, keyPrefixFor, modeOf, type Connection, type RedisConfig } from './connection.ts';
import type { LuaScript } from './scripts.ts';

/** Redis key names under one prefix (docs/redis.md, "Key layout"). */
export class KeyNames {
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
  /** Users and tenant permission groups: one hash, field `<tenant>/<user|group>/<name>`, value JSON. */
  readonly directory: string;
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
    this.directory = `${prefix}directory`;
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

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export class Commands {
  readonly config: RedisConfig;
  readonly keys: KeyNames;
  readonly client: Connection;
  readonly cluster: boolean;
  /** Where the store connects, for messages: never a password. */
  readonly where: string;
  readonly logger: Logger | null;
  readonly timeoutMs: number;
  /** PUBLISH, or SPUBLISH in Cluster mode (the channels are then shard channels). */
  readonly publish: 'PUBLISH' | 'SPUBLISH';
  closed = false;
  #connectedOnce = false;
  #up = false;

  constructor(config: RedisConfig, logger: Logger | null) {
    this.config = config;
    this.keys = new KeyNames(keyPrefixFor(config));
    this.cluster = modeOf(config) === 'cluster';
    this.where = describe(config);
    this.logger = logger;
    this.timeoutMs = config.commandTimeoutMs;
    this.publish = this.cluster ? 'SPUBLISH' : 'PUBLISH';
    this.client = createCommandConnection(config);
    this.client.on('error', (error: Error) => this.logger?.debug({ err: { message: error.message } }, 'redis connection error'));
    this.client.on('ready', () => {
      this.#up = true;
      if (this.#connectedOnce) this.logger?.info({ redis: this.where }, 'redis connection restored');
      this.#connectedOnce = true;
    });
    this.client.on('close', () => {
      if (this.#up && !this.closed) this.logger?.warn({ redis: this.where }, 'redis connection lost; reconnecting');
      this.#up = false;
    });
  }

  /** Resolves once Redis answers; a StoreUnavailableError naming the server after the connect timeout. */
  untilReady(): Promise<void> {
    if (this.client.status === 'ready') return Promise.resolve();
    const configured = (this.config as { connectTimeout?: unknown }).connectTimeout;
    const limitMs = (typeof configured === 'number' && configured > 0 ? configured : 3000) + 500;
    return new Promise((resolve, reject) => {
      const done = (error?: Error) => {
        clearTimeout(timer);
        this.client.off('ready', onReady);
        this.client.off('error', onError);
        if (error) reject(new StoreUnavailableError(`cannot reach ${this.where}: ${error.message}`));
        else resolve();
      };
      const onReady = () => done();
      const onError = (error: Error) => done(error);
      const timer = setTimeout(() => done(new Error(`no answer within ${limitMs} ms`)), limitMs);
      this.client.on('ready', onReady);
      this.client.on('error', onError);
    });
  }

  #unavailable(error: unknown): StoreUnavailableError {
    if (error instanceof StoreUnavailableError) return error;
    const message = errorMessage(error);
    if (/timed out/i.test(message)) return new StoreUnavailableError(`Redis did not answer within ${this.timeoutMs} ms`);
    if (/writeable|Connection is closed|MaxRetriesPerRequest|Cluster isn't ready|None of startup nodes/i.test(message)) {
      return new StoreUnavailableError(`${this.where} is not connected`);
    }
    return new StoreUnavailableError(`Redis error: ${message.split('\n')[0]!.slice(0, 200)}`);
  }

  /**
   * Cluster mode only: ioredis may hold a command while it (re)discovers the slots, beyond
   * commandTimeout, so a timer bounds the whole call. Standalone and Sentinel connections
   * fail at once when disconnected and time out per command otherwise.
   */
  #bounded<T>(promise: Promise<T>): Promise<T> {
    if (!this.cluster) return promise;
    let timer: NodeJS.Timeout;
    const limit = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new StoreUnavailableError(`Redis did not answer within ${this.timeoutMs} ms`)), this.timeoutMs + 50);
    });
    return Promise.race([promise, limit]).finally(() => clearTimeout(timer));
  }

  // call and script are plain promise chains, not async functions: they run on every
  // rate-limited request, and each async layer would add a promise and microtask turns.
  call(command: string, ...args: (string | number)[]): Promise<unknown> {
    if (this.closed) return Promise.reject(new StoreUnavailableError('the Redis store is closed'));
    return this.#bounded(this.client.call(command, ...args)).catch((error: unknown) => {
      throw this.#unavailable(error);
    });
  }

  /** EVALSHA, loading the script with EVAL when Redis does not have it (first use, restart, failover). */
  script(script: LuaScript, keys: string[], args: (string | number)[]): Promise<unknown> {
    return this.call('EVALSHA', script.sha, keys.length, ...keys, ...args).catch((error: unknown) => {
      if (!(error instanceof StoreUnavailableError) || !error.message.includes('NOSCRIPT')) throw error;
      return this.call('EVAL', script.lua, keys.length, ...keys, ...args);
    });
  }

  /** Runs `script` once per batch of up to 500 (id, time) pairs: last-used times. */
  async touchBatches(script: LuaScript, key: string, lastUsed: ReadonlyMap<string, number>): Promise<void> {
    const entries = [...lastUsed];
    for (let i = 0; i < entries.length; i += 500) {
      const args: (string | number)[] = [this.keys.prefix];
      for (const [id, at] of entries.slice(i, i + 500)) args.push(id, String(at));
      await this.script(script, [key], args);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    const client = this.client;
    if (client.status === 'ready') {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([client.quit().catch(() => {}), new Promise<void>((resolve) => (timer = setTimeout(resolve, this.timeoutMs)))]);
      clearTimeout(timer);
    }
    client.disconnect();
  }
}

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
import type { Logger } from '../../observability/logger.ts';
import type { StoreFeed } from '../key-store.ts';
import { ComposedStore } from '../composed.ts';
import { Commands, errorMessage } from './commands.ts';
import { modeOf, type RedisConfig } from './connection.ts';
import { RevocationFeed } from './feed.ts';
import { RedisKeys } from './keys.ts';
import { RedisDirectory } from './directory.ts';
import { RedisLimits } from './limits.ts';
import { RedisQuotas } from './quotas.ts';
import { RedisUsage } from './usage.ts';
import { DirectoryLoader } from '../directory-feed.ts';
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

/** The parts of one store, built before the store itself (they need its connection first). */
function redisParts(config: RedisConfig, options: RedisStoreOptions) {
  const redis = new Commands(config, options.logger ?? null);
  const secrets = new RedisSecrets(redis);
  const feed = new RevocationFeed(redis, options.heartbeatMs ?? 1000, secrets);
  const directory = new RedisDirectory(redis, feed);
  return { redis, feed, keys: new RedisKeys(redis, feed), lifecycle: new RedisLifecycle(redis, feed), secrets, sessions: new RedisSessions(redis), replay: new RedisReplay(redis), quotas: new RedisQuotas(redis), usage: new RedisUsage(redis), directory, loader: new DirectoryLoader(() => directory.directory()) };
}

export class RedisStore extends ComposedStore {
  readonly kind = 'redis' as const;
  /** Rate limits decided in Redis, shared by every instance (limits.ts). */
  readonly limiter: RedisLimits;
  readonly #redis: Commands;
  readonly #feed: RevocationFeed;
  readonly #secrets: RedisSecrets;
  readonly #loader: DirectoryLoader;
  #outageReads: NodeJS.Timeout | null = null;

  private constructor(parts: ReturnType<typeof redisParts>) {
    super(parts);
    this.#redis = parts.redis;
    this.#feed = parts.feed;
    this.#secrets = parts.secrets;
    this.#loader = parts.loader;
    this.limiter = new RedisLimits(parts.redis);
  }

  /**
   * Connects and waits (up to the connect timeout) for Redis to answer. If it does not: a
   * StoreUnavailableError, or with `allowUnavailable` a store that keeps reconnecting.
   */
  static async connect(config: RedisConfig, options: RedisStoreOptions = {}): Promise<RedisStore> {
    const store = new RedisStore(redisParts(config, options));
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

  /**
   * Subscribes, then reads the users and groups (after: a change meanwhile is in both, applied
   * twice, harmlessly). While the feed is down, changes are not pushed: as revocations are
   * then checked in Redis on every request, users and groups are read again every second.
   */
  async subscribe(feed: StoreFeed): Promise<void> {
    await this.#feed.subscribe(this.#loader.wrap(feed));
    await this.#loader.load();
    this.#outageReads ??= setInterval(() => {
      if (!this.#feed.healthy && !this.#redis.closed) void this.#loader.load();
    }, 1000).unref();
  }

  /** SET NX then GET: the first process's fingerprint stays (store/pepper-check.ts). */
  async claimPepperFingerprint(fingerprint: string): Promise<string> {
    const key = `${this.#redis.keys.prefix}pepper-fingerprint`;
    await this.#redis.call('SET', key, fingerprint, 'NX');
    return String(await this.#redis.call('GET', key));
  }

  async ping(): Promise<void> {
    await this.#redis.call('PING');
  }

  // ---- shutdown -------------------------------------------------------------------------

  async close(): Promise<void> {
    if (this.#redis.closed) return;
    this.#redis.closed = true;
    this.#feed.close();
    this.#loader.close();
    if (this.#outageReads !== null) clearInterval(this.#outageReads);
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

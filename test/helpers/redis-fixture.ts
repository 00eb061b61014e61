/**
 * The Redis fixture: one real redis-server with a raw client, and two keygates sharing it
 * (the set-up of every "two instances on one Redis" test), a primary + replica + sentinel
 * group, and a short-lived connection to one node. Each `stop()` undoes what it started.
 */
import { Redis } from 'ioredis';
import type { RawConfig } from '../../src/config/schema.ts';
import { startTestKeygate, type TestKeygate } from './keygate.ts';
import { freePort, startRedisServer, waitFor, type RedisServer } from './redis-server.ts';
import { startUpstream } from './upstream.ts';

/** The store section for a keygate on `redis`. */
export function redisStore(redis: { url: string }, commandTimeoutMs = 300) {
  return { kind: 'redis' as const, redis: { url: redis.url, commandTimeoutMs } };
}

/**
 * The config of the revocation tests: one route /api to `upstream`, valid keys cached for a
 * minute (so a revocation must be pushed to be seen), no limit on failed authentications
 * (hundreds of revoked keys are asked for from one address, on purpose), warnings only.
 */
export function revocationConfig(store: RawConfig['store'], upstream: { url: string }): RawConfig {
  return {
    store,
    cache: { maxAgeMs: 60_000 },
    limits: { failedAuth: { max: 0 } },
    routes: [{ name: 'api', pathPrefix: '/api', upstream: upstream.url }],
    log: { level: 'warn', access: false },
  };
}

export interface RedisPair<K> extends RedisWithClient {
  a: K;
  b: K;
}

export interface RedisPairOptions<K> {
  /** The config of both keygates, given the server and its default store section. */
  config: (store: ReturnType<typeof redisStore>, redis: RedisServer) => RawConfig;
  env?: NodeJS.ProcessEnv;
  /** How a keygate is started (default startTestKeygate). */
  start?: (raw: RawConfig, env: NodeJS.ProcessEnv) => Promise<K>;
  /** Runs on the fresh server before the keygates start (an ACL, say). */
  prepare?: (raw: Redis, redis: RedisServer) => Promise<void>;
  commandTimeoutMs?: number;
}

export interface RedisWithClient {
  redis: RedisServer;
  /** A client as the default user (errors ignored: some tests kill Redis under it). */
  raw: Redis;
  /** Disconnects the client and stops the server. */
  stop(): Promise<void>;
}

/** A redis-server and a raw client on it. */
export async function startRedis(): Promise<RedisWithClient> {
  const redis = await startRedisServer();
  const raw = new Redis(redis.url);
  raw.on('error', () => {});
  return {
    redis,
    raw,
    async stop() {
      raw.disconnect();
      await redis.stop();
    },
  };
}

/** A redis-server and two keygates on it; if one fails to start, everything is stopped. */
export async function startRedisPair<K extends { stop(): Promise<void> }>(options: RedisPairOptions<K>): Promise<RedisPair<K>> {
  const start = options.start ?? (startTestKeygate as unknown as (raw: RawConfig, env: NodeJS.ProcessEnv) => Promise<K>);
  const server = await startRedis();
  const { redis, raw } = server;
  const shutdown = async (keygates: (K | undefined)[]) => {
    await Promise.allSettled(keygates.map((k) => k?.stop()));
    await server.stop();
  };
  try {
    await options.prepare?.(raw, redis);
  } catch (error) {
    await shutdown([]);
    throw error;
  }
  const config = options.config(redisStore(redis, options.commandTimeoutMs), redis);
  const started = await Promise.allSettled([start(config, options.env ?? {}), start(config, options.env ?? {})]);
  const keygates = started.map((s) => (s.status === 'fulfilled' ? s.value : undefined));
  const failed = started.find((s) => s.status === 'rejected');
  if (failed) {
    await shutdown(keygates);
    throw failed.reason;
  }
  const [a, b] = keygates as unknown as [K, K];
  return { redis, raw, a, b, stop: () => shutdown([a, b]) };
}

/** A redis-server, an upstream that answers 200, and two keygates on them with revocationConfig; `stop()` ends all of it. */
export async function startRevocationPair(): Promise<RedisPair<TestKeygate>> {
  const upstream = await startUpstream();
  try {
    const pair = await startRedisPair<TestKeygate>({ config: (store) => revocationConfig(store, upstream) });
    return {
      ...pair,
      async stop() {
        await pair.stop();
        await upstream.close();
      },
    };
  } catch (error) {
    await upstream.close();
    throw error;
  }
}

/** Runs `fn` on a short-lived connection to 127.0.0.1:`port` that fails at once rather than retrying. */
export async function onRedis<T>(port: number, fn: (r: Redis) => Promise<T>): Promise<T> {
  const r = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  try {
    await r.connect();
    return await fn(r);
  } finally {
    r.disconnect();
  }
}

export interface SentinelGroup {
  primary: RedisServer;
  replica: RedisServer;
  sentinel: RedisServer;
  /** The store section for a keygate that finds the primary through the sentinel. */
  store: { kind: 'redis'; redis: { sentinels: { host: string; port: number }[]; name: string; commandTimeoutMs: number } };
  stop(): Promise<void>;
}

/** A primary, a replica in sync with it and one sentinel that monitors it as `master` (failover within a few seconds). */
export async function startSentinelGroup(master: string): Promise<SentinelGroup> {
  // No 5 s wait before a diskless full sync (the default): the replica syncs at once.
  const fastSync = ['--repl-diskless-sync-delay', '0'];
  const servers: RedisServer[] = [];
  try {
    const primary = await startRedisServer({ args: fastSync });
    servers.push(primary);
    const replica = await startRedisServer({ args: [...fastSync, '--replicaof', '127.0.0.1', String(primary.port)] });
    servers.push(replica);
    await waitFor('the replica to sync', async () => (await onRedis(replica.port, (r) => r.info('replication'))).includes('master_link_status:up'), 5000, 50);
    const sentinel = await startRedisServer({
      port: await freePort(),
      sentinelConfig: [
        `sentinel monitor ${master} 127.0.0.1 ${primary.port} 1`,
        `sentinel down-after-milliseconds ${master} 1000`,
        `sentinel failover-timeout ${master} 3000`,
        `sentinel parallel-syncs ${master} 1`,
      ].join('\n'),
    });
    servers.push(sentinel);
    await waitFor(
      'the sentinel to see the replica',
      async () => ((await onRedis(sentinel.port, (r) => r.call('SENTINEL', 'REPLICAS', master))) as unknown[]).length === 1,
      10_000,
      100,
    );
    return {
      primary,
      replica,
      sentinel,
      store: { kind: 'redis', redis: { sentinels: [{ host: '127.0.0.1', port: sentinel.port }], name: master, commandTimeoutMs: 300 } },
      async stop() {
        for (const server of [sentinel, replica, primary]) await server.stop();
      },
    };
  } catch (error) {
    for (const server of servers.reverse()) await server.stop();
    throw error;
  }
}

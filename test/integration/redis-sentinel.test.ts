/**
 * Sentinel: a primary, a replica and one sentinel (real redis-server processes). keygate
 * connects through the sentinel; the primary is killed; after the failover keygate finds
 * the new primary by itself and authentication (and revocation) continue.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { Pool } from 'undici';
import { generateKey } from '../../src/keys/format.ts';
import { startTestKeygate, type TestKeygate } from '../helpers/keygate.ts';
import { freePort, redisServerAvailable, startRedisServer, waitFor, type RedisServer } from '../helpers/redis-server.ts';
import { startUpstream, type TestUpstream } from '../helpers/upstream.ts';

const MASTER = 'kgmaster';
let primary: RedisServer;
let replica: RedisServer;
let sentinel: RedisServer;
let upstream: TestUpstream;
let kg: TestKeygate;
let pool: Pool;

async function call(key: string): Promise<number> {
  const res = await pool.request({ path: '/api/x', method: 'GET', headers: { 'x-api-key': key } });
  await res.body.dump();
  return res.statusCode;
}

async function query<T>(port: number, run: (r: Redis) => Promise<T>): Promise<T> {
  const r = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  try {
    await r.connect();
    return await run(r);
  } finally {
    r.disconnect();
  }
}

describe.skipIf(!redisServerAvailable())('Redis Sentinel failover', () => {
  beforeAll(async () => {
    // No 5 s wait before a diskless full sync (the default): the replica syncs at once.
    const fastSync = ['--repl-diskless-sync-delay', '0'];
    primary = await startRedisServer({ args: fastSync });
    replica = await startRedisServer({ args: [...fastSync, '--replicaof', '127.0.0.1', String(primary.port)] });
    await waitFor('the replica to sync', async () => (await query(replica.port, (r) => r.info('replication'))).includes('master_link_status:up'), 5000, 50);
    sentinel = await startRedisServer({
      port: await freePort(),
      sentinelConfig: [
        `sentinel monitor ${MASTER} 127.0.0.1 ${primary.port} 1`,
        `sentinel down-after-milliseconds ${MASTER} 1000`,
        `sentinel failover-timeout ${MASTER} 3000`,
        `sentinel parallel-syncs ${MASTER} 1`,
      ].join('\n'),
    });
    await waitFor(
      'the sentinel to see the replica',
      async () => ((await query(sentinel.port, (r) => r.call('SENTINEL', 'REPLICAS', MASTER))) as unknown[]).length === 1,
      10_000,
      100,
    );
    upstream = await startUpstream();
    kg = await startTestKeygate({
      store: { kind: 'redis', redis: { sentinels: [{ host: '127.0.0.1', port: sentinel.port }], name: MASTER, commandTimeoutMs: 300 } },
      routes: [{ name: 'api', pathPrefix: '/api', upstream: upstream.url }],
      log: { level: 'warn', access: false },
    });
    pool = new Pool(kg.url, { connections: 8 });
  }, 30_000);

  afterAll(async () => {
    await pool?.close();
    await kg?.stop();
    await upstream?.close();
    for (const server of [sentinel, replica, primary]) await server?.stop();
  });

  it('authentication continues after the primary is killed and the replica promoted', async () => {
    expect(kg.keygate.store.feedHealthy).toBe(true);
    const used = await kg.keys.create({ tenant: 'acme', name: 'used before' });
    const fresh = await kg.keys.create({ tenant: 'acme', name: 'first used after' });
    expect(await call(used.key)).toBe(200);
    // Both keys are on the replica before the primary goes.
    expect(await query(primary.port, (r) => r.call('WAIT', 1, 2000))).toBe(1);

    await primary.kill();
    const seen = new Set<number>();
    const failoverStarted = Date.now();
    await waitFor(
      'a key never used before to be accepted (from the new primary)',
      async () => {
        const status = await call(fresh.key);
        seen.add(status);
        return status === 200;
      },
      20_000,
      100,
    );
    const failoverMs = Date.now() - failoverStarted;
    // During the failover: 503 (cannot check), never 401 for a valid key.
    expect([...seen].filter((s) => s !== 200 && s !== 503)).toEqual([]);
    const [host, port] = (await query(sentinel.port, (r) => r.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', MASTER))) as string[];
    expect(`${host}:${port}`).toBe(`127.0.0.1:${replica.port}`);
    console.log(`[keygate redis sentinel] primary killed → first 200 for an uncached key after ${failoverMs} ms (down-after-milliseconds 1000)`);

    expect(await call(used.key)).toBe(200);
    expect(await call(generateKey('kg', 'acme'))).toBe(401);
    // Writes go to the new primary, and revocations are pushed from there.
    await waitFor('the feed to be back', () => kg.keygate.store.feedHealthy, 5000, 50);
    await kg.keys.revoke(used.record.id);
    expect(await call(used.key)).toBe(401);
    const after = await kg.keys.create({ tenant: 'acme', name: 'created after' });
    expect(await call(after.key)).toBe(200);
  }, 30_000);
});

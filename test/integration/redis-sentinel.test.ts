/**
 * Sentinel: a primary, a replica and one sentinel (real redis-server processes). keygate
 * connects through the sentinel; the primary is killed; after the failover keygate finds
 * the new primary by itself and authentication (and revocation) continue.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Pool } from 'undici';
import { generateKey } from '../../src/keys/format.ts';
import { startTestKeygate, type TestKeygate } from '../helpers/keygate.ts';
import { onRedis, startSentinelGroup, type SentinelGroup } from '../helpers/redis-fixture.ts';
import { redisServerAvailable, waitFor, type RedisServer } from '../helpers/redis-server.ts';
import { startUpstream, type TestUpstream } from '../helpers/upstream.ts';
import { closeAll } from '../helpers/close.ts';

const MASTER = 'kgmaster';
let primary: RedisServer;
let replica: RedisServer;
let sentinel: RedisServer;
let group: SentinelGroup;
let upstream: TestUpstream;
let kg: TestKeygate;
let pool: Pool;

async function call(key: string): Promise<number> {
  const res = await pool.request({ path: '/api/x', method: 'GET', headers: { 'x-api-key': key } });
  await res.body.dump();
  return res.statusCode;
}

describe.skipIf(!redisServerAvailable())('Redis Sentinel failover', () => {
  beforeAll(async () => {
    group = await startSentinelGroup(MASTER);
    ({ primary, replica, sentinel } = group);
    upstream = await startUpstream();
    kg = await startTestKeygate({
      store: group.store,
      routes: [{ name: 'api', pathPrefix: '/api', upstream: upstream.url }],
      log: { level: 'warn', access: false },
    });
    pool = new Pool(kg.url, { connections: 8 });
  }, 30_000);

  afterAll(() => closeAll(pool, kg, upstream, group));

  it('authentication continues after the primary is killed and the replica promoted', async () => {
    expect(kg.keygate.store.feedHealthy).toBe(true);
    const used = await kg.keys.create({ tenant: 'acme', name: 'used before' });
    const fresh = await kg.keys.create({ tenant: 'acme', name: 'first used after' });
    expect(await call(used.key)).toBe(200);
    // Both keys are on the replica before the primary goes.
    expect(await onRedis(primary.port, (r) => r.call('WAIT', 1, 2000))).toBe(1);

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
    const [host, port] = (await onRedis(sentinel.port, (r) => r.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', MASTER))) as string[];
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

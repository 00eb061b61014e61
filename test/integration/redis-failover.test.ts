/**
 * Sentinel failover under traffic (issue 26): a primary, a replica and one sentinel (real
 * redis-server processes), two keygate instances. The primary is killed while both serve
 * cached keys; after the promotion:
 *  - no cached valid key ever got an error (the feed catches up from the revocation log
 *    instead of flushing the cache; while Redis cannot answer, recent cached answers serve);
 *  - admin writes during the outage got 503 auth_unavailable with Retry-After, never 500;
 *  - a key revoked through A is refused by B from the moment the revoke answered;
 *  - keys created after the promotion work on both instances.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call } from '../helpers/admin.ts';
import { pooledGets } from '../helpers/http.ts';
import { startTestKeygate, type TestKeygate } from '../helpers/keygate.ts';
import { onRedis, revocationConfig, startSentinelGroup, type SentinelGroup } from '../helpers/redis-fixture.ts';
import { redisServerAvailable, waitFor, type RedisServer } from '../helpers/redis-server.ts';
import { startUpstream, type TestUpstream } from '../helpers/upstream.ts';

const MASTER = 'kgfailover';
let primary: RedisServer;
let replica: RedisServer;
let sentinel: RedisServer;
let group: SentinelGroup;
let upstream: TestUpstream;
let a: TestKeygate, b: TestKeygate;
const gets = pooledGets(8);
const proxied = (instance: TestKeygate, key: string) => gets.get(instance.url, '/api/x', key);

async function admin(instance: TestKeygate, key: string, method: string, path: string, body?: unknown): Promise<{ status: number; retryAfter: string | null; code?: string }> {
  const res = await call(instance.adminUrl, method, path, body === undefined ? { key } : { key, body });
  return { status: res.status, retryAfter: res.headers.get('retry-after'), code: res.json?.code };
}

describe.skipIf(!redisServerAvailable())('Sentinel failover under traffic', () => {
  beforeAll(async () => {
    group = await startSentinelGroup(MASTER);
    ({ primary, replica, sentinel } = group);
    upstream = await startUpstream();
    const config = revocationConfig(group.store, upstream);
    [a, b] = await Promise.all([startTestKeygate(config), startTestKeygate(config)]);
  }, 30_000);

  afterAll(async () => {
    await gets.close();
    await Promise.all([a?.stop(), b?.stop()]);
    await upstream?.close();
    await group?.stop();
  });

  it('cached keys see no error, admin writes get 503 + Retry-After, revocations and new keys work on both after the promotion', async () => {
    await waitFor('both feeds', () => a.keygate.store.feedHealthy && b.keygate.store.feedHealthy, 5000, 20);
    const cached = await Promise.all(Array.from({ length: 6 }, (_, i) => a.keys.create({ tenant: 'acme', name: `cached ${i}` })));
    const doomed = await a.keys.create({ tenant: 'acme', name: 'doomed' });
    const adminKey = await a.keys.create({ tenant: 'system', name: 'operator', role: 'admin' });
    for (const instance of [a, b]) {
      for (const { key } of [...cached, doomed]) expect((await proxied(instance, key)).status).toBe(200);
      expect((await admin(instance, adminKey.key, 'GET', '/v1/keys')).status).toBe(200);
    }
    expect(await onRedis(primary.port, (r) => r.call('WAIT', 1, 2000))).toBe(1);

    // Traffic on both instances for every cached key, from before the kill until after the promotion.
    let traffic = true;
    const failures: string[] = [];
    let served = 0;
    const loops = [a, b].flatMap((instance, n) =>
      cached.map(async ({ key }, i) => {
        while (traffic) {
          const answer = await proxied(instance, key);
          if (answer.status === 200) served++;
          else failures.push(`${n === 0 ? 'A' : 'B'} key ${i}: ${answer.status} ${answer.code ?? ''}`);
          await new Promise((resolve) => setTimeout(resolve, 2));
        }
      }),
    );

    try {
    await primary.kill();
    const killedAt = Date.now();
    // Admin writes during the outage: 503 with Retry-After, never 500.
    const adminAnswers: { status: number; retryAfter: string | null; code?: string }[] = [];
    await waitFor('the outage to be seen by an admin write', async () => {
      const answer = await admin(a, adminKey.key, 'POST', '/v1/keys', { tenant: 'acme', name: `during ${adminAnswers.length}` });
      adminAnswers.push(answer);
      return answer.status !== 201;
    }, 3000, 20);
    for (let i = 0; i < 3; i++) adminAnswers.push(await admin(b, adminKey.key, 'PATCH', `/v1/keys/${cached[0]!.record.id}`, { name: 'renamed' }).catch(() => ({ status: 0, retryAfter: null })));
    const outage = adminAnswers.filter((x) => x.status !== 201 && x.status !== 200);
    expect(outage.length).toBeGreaterThan(0);
    for (const x of outage) expect(x).toMatchObject({ status: 503, retryAfter: '1', code: 'auth_unavailable' });

    // The promotion: a key created on the new primary is accepted by both.
    let fresh: Awaited<ReturnType<typeof a.keys.create>> | null = null;
    await waitFor('a key to be created on the new primary', async () => {
      fresh = await a.keys.create({ tenant: 'acme', name: 'after promotion' }).catch(() => null);
      return fresh !== null;
    }, 20_000, 50);
    const promotedMs = Date.now() - killedAt;
    await waitFor('both feeds to be back', () => a.keygate.store.feedHealthy && b.keygate.store.feedHealthy, 10_000, 10);
    // Keep the traffic going a little after the feeds are back (where the flush used to bite).
    await new Promise((resolve) => setTimeout(resolve, 500));
    traffic = false;
    await Promise.all(loops);
    console.log(`[keygate redis failover] primary killed → write accepted after ${promotedMs} ms; cached keys: ${served} answers 200, ${failures.length} errors ${failures.slice(0, 5).join(', ')}; admin writes during the outage: ${outage.map((x) => x.status).join(',')}`);
    expect(failures).toEqual([]);
    expect((await proxied(a, fresh!.key)).status).toBe(200);
    expect((await proxied(b, fresh!.key)).status).toBe(200);

    // A revocation through A after the promotion: B refuses from the moment it answered.
    expect((await proxied(b, doomed.key)).status).toBe(200);
    const revoked = await admin(a, adminKey.key, 'POST', `/v1/keys/${doomed.record.id}/revoke`);
    expect(revoked.status).toBe(200);
    expect(await proxied(b, doomed.key)).toEqual({ status: 401, code: 'key_revoked' });
    expect(await proxied(a, doomed.key)).toEqual({ status: 401, code: 'key_revoked' });
    } finally {
      traffic = false;
      await Promise.allSettled(loops);
    }
  }, 60_000);
});

/**
 * The revocation log (issue 26): an instance whose subscriber connection is killed while a
 * revocation is published catches up from the log when it re-subscribes: it applies the
 * revocation (its received counter equals the other instance's), and its cached valid keys
 * keep being served from its cache (no flush).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import type { TestKeygate } from '../helpers/keygate.ts';
import { startRevocationPair, type RedisPair } from '../helpers/redis-fixture.ts';
import { waitFor } from '../helpers/redis-server.ts';
import { metric, pooledGets } from '../helpers/http.ts';

let raw: Redis;
let pair: RedisPair<TestKeygate>, a: TestKeygate, b: TestKeygate;
const gets = pooledGets(4);

const status = async (instance: TestKeygate, key: string) => (await gets.get(instance.url, '/api/x', key)).status;

const received = (instance: TestKeygate) => metric(instance.adminUrl, 'keygate_revocations_received_total');

beforeAll(async () => {
  pair = await startRevocationPair();
  ({ raw, a, b } = pair);
});

afterAll(async () => {
  await gets.close();
  await pair?.stop();
});

describe('the revocation log', () => {
  it('a revocation published while B re-subscribes is replayed: applied and counted once, cached keys kept', async () => {
    await waitFor('both feeds', () => a.keygate.store.feedHealthy && b.keygate.store.feedHealthy, 3000, 5);
    const [base] = [await received(a), await received(b)];
    const offsetB = (await received(b)) - base;
    const valid = await Promise.all(Array.from({ length: 5 }, (_, i) => a.keys.create({ tenant: 'acme', name: `valid ${i}` })));
    const rounds = 5;
    for (let round = 0; round < rounds; round++) {
      const doomed = await a.keys.create({ tenant: 'acme', name: `doomed ${round}` });
      for (const { key } of [...valid, doomed]) expect(await status(b, key)).toBe(200);
      await waitFor('both feeds', () => a.keygate.store.feedHealthy && b.keygate.store.feedHealthy, 3000, 5);
      expect(Number(await raw.call('CLIENT', 'KILL', 'TYPE', 'pubsub'))).toBe(2);
      await a.keygate.store.revoke(doomed.record.id, Date.now());
      // The point of the test: B could not get the message.
      expect(b.keygate.store.feedHealthy).toBe(false);
      await waitFor('B to catch up', () => b.keygate.store.feedHealthy, 3000, 1);
      // Caught up: refused from the cache's point of view too, without asking Redis.
      expect(await status(b, doomed.key)).toBe(401);
      const { storeCalls, hits } = b.keygate.verifier.stats;
      for (const { key } of valid) expect(await status(b, key)).toBe(200);
      expect(b.keygate.verifier.stats.storeCalls - storeCalls).toBe(0); // nothing was flushed
      expect(b.keygate.verifier.stats.hits - hits).toBe(valid.length);
    }
    await waitFor('A to have applied its own', async () => (await received(a)) - base >= rounds, 2000, 10);
    // Every instance applied every revocation, once.
    expect((await received(a)) - base).toBe(rounds);
    expect((await received(b)) - base - offsetB).toBe(rounds);
    expect(b.logs()).not.toContain('re-checking every cached key');
  });

  it('a gap the log cannot cover (the log was trimmed past it) re-checks the cache without refusing a valid key', async () => {
    const valid = await a.keys.create({ tenant: 'acme', name: 'kept' });
    const doomed = await a.keys.create({ tenant: 'acme', name: 'trimmed away' });
    expect(await status(b, valid.key)).toBe(200);
    expect(await status(b, doomed.key)).toBe(200);
    await waitFor('both feeds', () => a.keygate.store.feedHealthy && b.keygate.store.feedHealthy, 3000, 5);
    expect(Number(await raw.call('CLIENT', 'KILL', 'TYPE', 'pubsub'))).toBe(2);
    await a.keygate.store.revoke(doomed.record.id, Date.now());
    await raw.call('XTRIM', 'kg:revocations:log', 'MAXLEN', '0');
    await waitFor('B to be back', () => b.keygate.store.feedHealthy, 3000, 1);
    expect(b.logs()).toContain('re-checking every cached key');
    expect(await status(b, doomed.key)).toBe(401);
    expect(await status(b, valid.key)).toBe(200);
  });
});

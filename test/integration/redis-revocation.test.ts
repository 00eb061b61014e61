/**
 * Revocation across keygate instances sharing one real redis-server: pushed to every
 * instance, measured (revoke → first 401 on the other instance, and the lag metric), and
 * never missed when an instance's subscriber connection is killed mid-stream.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { generateKey } from '../../src/keys/format.ts';
import type { TestKeygate } from '../helpers/keygate.ts';
import { startRevocationPair, type RedisPair } from '../helpers/redis-fixture.ts';
import { waitFor, type RedisServer } from '../helpers/redis-server.ts';
import { metric, pooledGets } from '../helpers/http.ts';

let redis: RedisServer;
let raw: Redis;
let pair: RedisPair<TestKeygate>, a: TestKeygate, b: TestKeygate;
const gets = pooledGets(32);

const call = (instance: TestKeygate, key: string) => gets.get(instance.url, '/api/thing', key);
const status = async (instance: TestKeygate, key: string) => (await call(instance, key)).status;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

async function hgetallCalls(): Promise<number> {
  const info = await raw.info('commandstats');
  return Number(/cmdstat_hgetall:calls=(\d+)/.exec(info)?.[1] ?? 0);
}

beforeAll(async () => {
  pair = await startRevocationPair();
  ({ redis, raw, a, b } = pair);
});

afterAll(async () => {
  await gets.close();
  await pair?.stop();
});

describe('two instances on one Redis', () => {
  it('a key revoked on one instance is refused by both, with its lag recorded by each', async () => {
    expect(a.keygate.store.feedHealthy).toBe(true);
    expect(b.keygate.store.feedHealthy).toBe(true);
    const { key, record } = await a.keys.create({ tenant: 'acme', name: 'shared' });
    expect(await status(a, key)).toBe(200);
    expect(await status(b, key)).toBe(200);
    const receivedBefore = await metric(b.adminUrl, 'keygate_revocations_received_total');
    await a.keys.revoke(record.id);
    expect(await call(a, key)).toEqual({ status: 401, code: 'key_revoked' });
    await waitFor('instance B to refuse the key', async () => (await status(b, key)) === 401, 1000, 1);
    expect(await call(b, key)).toEqual({ status: 401, code: 'key_revoked' });
    expect(await metric(b.adminUrl, 'keygate_revocations_received_total')).toBe(receivedBefore + 1);
    expect(await metric(b.adminUrl, 'keygate_revocation_last_lag_seconds')).toBeLessThan(1);
    expect(await metric(a.adminUrl, 'keygate_revocations_received_total')).toBeGreaterThanOrEqual(1);
  });

  it('over 200 revocations: time from revoke to the first 401 on the other instance', async () => {
    const n = 200;
    const created = await Promise.all(Array.from({ length: n }, (_, i) => a.keys.create({ tenant: 'lag', name: `lag ${i}` })));
    for (const { key } of created) expect(await status(b, key)).toBe(200); // cached on B
    const countBefore = await metric(b.adminUrl, 'keygate_revocation_lag_seconds_count');
    const lags: number[] = [];
    for (const { key, record } of created) {
      const started = performance.now();
      const revoking = a.keygate.store.revoke(record.id, Date.now());
      let answer = await status(b, key);
      while (answer === 200) answer = await status(b, key);
      lags.push(performance.now() - started);
      expect(answer).toBe(401);
      await revoking;
    }
    lags.sort((x, y) => x - y);
    const [p50, p99, max] = [percentile(lags, 50), percentile(lags, 99), lags[lags.length - 1]!];
    const count = (await metric(b.adminUrl, 'keygate_revocation_lag_seconds_count')) - countBefore;
    const sum = await metric(b.adminUrl, 'keygate_revocation_lag_seconds_sum');
    console.log(
      `[keygate redis revocation lag] ${n} revocations, revoke → first 401 on the other instance: ` +
        `p50 ${p50.toFixed(2)} ms, p99 ${p99.toFixed(2)} ms, max ${max.toFixed(2)} ms ` +
        `(instance B's keygate_revocation_lag_seconds: ${count} events, mean ${((sum / (countBefore + count)) * 1000).toFixed(2)} ms)`,
    );
    expect(count).toBe(n);
    expect(p99).toBeLessThan(100);
  });

  it('concurrent misses for one key share one Redis call', async () => {
    const { key } = await a.keys.create({ tenant: 'acme', name: 'popular' });
    const storeCalls = b.keygate.verifier.stats.storeCalls;
    const before = await hgetallCalls();
    // Freeze Redis so all requests are waiting on the same lookup, then let it answer.
    redis.pause();
    const answers = Promise.all(Array.from({ length: 20 }, () => status(b, key)));
    await waitFor('the requests to arrive', () => b.keygate.verifier.stats.misses >= 20, 200, 1).catch(() => {});
    redis.resume();
    expect(await answers).toEqual(Array(20).fill(200));
    expect(b.keygate.verifier.stats.storeCalls - storeCalls).toBe(1);
    expect((await hgetallCalls()) - before).toBe(1);
  });

  it('an unknown key is refused by both without either caching a wrong answer', async () => {
    const unknown = generateKey('kg', 'acme');
    expect(await call(a, unknown)).toEqual({ status: 401, code: 'invalid_key' });
    expect(await call(b, unknown)).toEqual({ status: 401, code: 'invalid_key' });
  });
});

describe('the subscriber connection is killed (CLIENT KILL TYPE pubsub)', () => {
  it('an instance never accepts a key revoked while its subscriber reconnects', async () => {
    const rounds = 8;
    let missed = 0;
    for (let round = 0; round < rounds; round++) {
      const { key, record } = await a.keys.create({ tenant: 'acme', name: `kill ${round}` });
      const other = await a.keys.create({ tenant: 'acme', name: `kill other ${round}` });
      expect(await status(b, key)).toBe(200);
      expect(await status(b, other.key)).toBe(200);
      await waitFor('both feeds to be subscribed', () => a.keygate.store.feedHealthy && b.keygate.store.feedHealthy, 3000, 5);
      expect(Number(await raw.call('CLIENT', 'KILL', 'TYPE', 'pubsub'))).toBe(2);
      // Revoked while B is reconnecting: B cannot get this message.
      await a.keygate.store.revoke(record.id, Date.now());
      if (!b.keygate.store.feedHealthy) missed++;
      const answers: number[] = [];
      const otherAnswers: number[] = [];
      if (round % 2 === 0) {
        // Asked during the gap: B must go to Redis rather than trust its cache.
        while (!b.keygate.store.feedHealthy) {
          answers.push(await status(b, key));
          otherAnswers.push(await status(b, other.key));
        }
      } else {
        // Not asked until the feed is back: B must have dropped what it cached before.
        await waitFor('the feed to be back', () => b.keygate.store.feedHealthy, 3000, 1);
      }
      for (let i = 0; i < 5; i++) answers.push(await status(b, key));
      expect(await status(b, other.key)).toBe(200);
      expect(answers.filter((s) => s !== 401)).toEqual([]);
      // Redis answers while the feed is down: valid keys keep working, from Redis.
      expect(otherAnswers.filter((s) => s !== 200)).toEqual([]);
    }
    // The point of the test: the revocations really happened while B's feed was down.
    expect(missed).toBe(rounds);
    expect(b.logs()).toContain('revocation feed disconnected');
    await waitFor('both feeds to be back', () => a.keygate.store.feedHealthy && b.keygate.store.feedHealthy, 3000, 5);
  });

  it('after the feed is back, the cache is used again', async () => {
    const { key } = await a.keys.create({ tenant: 'acme', name: 'after' });
    await waitFor('the feed to be subscribed', () => b.keygate.store.feedHealthy, 3000, 5);
    expect(await status(b, key)).toBe(200);
    const { storeCalls, hits } = b.keygate.verifier.stats;
    for (let i = 0; i < 10; i++) expect(await status(b, key)).toBe(200);
    expect(b.keygate.verifier.stats.storeCalls).toBe(storeCalls);
    expect(b.keygate.verifier.stats.hits - hits).toBe(10);
  });
});

describe('operations', () => {
  it('GET /metrics on the admin listener serves the revocation metrics in Prometheus format', async () => {
    const res = await fetch(`${b.adminUrl}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    expect(text).toContain('# TYPE keygate_revocation_lag_seconds histogram');
    expect(text).toContain('keygate_revocation_lag_seconds_bucket{le="0.0005"}');
    expect(text).toContain('# TYPE keygate_revocation_last_lag_seconds gauge');
    expect(text).toContain('# TYPE keygate_revocations_received_total counter');
  });

  it('readyz reports the store and the revocation feed', async () => {
    const res = await fetch(`${b.adminUrl}/readyz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: 'ready', checks: { store: 'ok', revocationFeed: 'ok' } });
  });

  it('logs no key and no key hash', async () => {
    const hashes = await raw.keys('kg:hash:*');
    expect(hashes.length).toBeGreaterThan(200);
    const logs = a.logs() + b.logs();
    for (const name of hashes.slice(0, 50)) expect(logs).not.toContain(name.slice('kg:hash:'.length));
    expect(logs).not.toMatch(/kg_[a-z0-9-]+_[0-9a-f]{64}/);
  });
});

/**
 * Redis outages, against a real redis-server that the tests kill, freeze and restart:
 * cached keys keep working for at most cache.maxAgeMs, anything else gets 503 within the
 * command timeout (never 200, never a hanging request), and keygate recovers by itself —
 * including when Redis is not there when keygate starts.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import { Pool } from 'undici';
import { generateKey } from '../../src/keys/format.ts';
import { startTestKeygate, type TestKeygate } from '../helpers/keygate.ts';
import { freePort, startRedisServer, waitFor, type RedisServer } from '../helpers/redis-server.ts';
import { startUpstream, type TestUpstream } from '../helpers/upstream.ts';

const COMMAND_TIMEOUT_MS = 250;
const MAX_AGE_MS = 1500;
/** Slack on top of the command timeout for a busy 2-core CI box. */
const SLACK_MS = 400;

let upstream: TestUpstream;
const cleanup: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});
afterAll(async () => {
  await upstream?.close();
});

async function start(url: string, maxAgeMs = MAX_AGE_MS): Promise<{ kg: TestKeygate; call: (key: string) => Promise<{ status: number; code?: string; ms: number }> }> {
  upstream ??= await startUpstream();
  const kg = await startTestKeygate({
    store: { kind: 'redis', redis: { url, commandTimeoutMs: COMMAND_TIMEOUT_MS } },
    cache: { maxAgeMs },
    routes: [{ name: 'api', pathPrefix: '/api', upstream: upstream.url }],
    log: { level: 'warn', access: false },
  });
  const pool = new Pool(kg.url, { connections: 32 });
  cleanup.push(async () => {
    await pool.close();
    await kg.stop();
  });
  const call = async (key: string) => {
    const started = performance.now();
    const res = await pool.request({ path: '/api/x', method: 'GET', headers: { 'x-api-key': key }, headersTimeout: 10_000 });
    const text = await res.body.text();
    const ms = performance.now() - started;
    return { status: res.statusCode, code: res.statusCode === 200 ? undefined : (JSON.parse(text) as { code: string }).code, ms };
  };
  return { kg, call };
}

async function redisServer(options: Parameters<typeof startRedisServer>[0] = {}): Promise<RedisServer> {
  const server = await startRedisServer(options);
  cleanup.push(() => server.stop());
  return server;
}

async function readyz(kg: TestKeygate): Promise<{ status: number; body: any }> {
  const res = await fetch(`${kg.adminUrl}/readyz`);
  return { status: res.status, body: await res.json() };
}

describe('Redis is killed', () => {
  it('cached keys keep working up to cache.maxAgeMs, others get 503 at once; after a restart caching resumes', async () => {
    const redis = await redisServer({ persist: true });
    const { kg, call } = await start(redis.url);
    const cached = await kg.keys.create({ tenant: 'acme', name: 'cached' });
    const uncached = await kg.keys.create({ tenant: 'acme', name: 'never used yet' });
    const unknown = generateKey('kg', 'acme');
    expect((await call(cached.key)).status).toBe(200);
    const cachedAt = Date.now();

    await redis.kill();
    await waitFor('the feed to notice', () => !kg.keygate.store.feedHealthy, 2000, 5);
    const hit = await call(cached.key);
    expect(hit.status).toBe(200);
    for (const key of [uncached.key, unknown]) {
      const miss = await call(key);
      expect(miss).toMatchObject({ status: 503, code: 'auth_unavailable' });
      expect(miss.ms).toBeLessThan(COMMAND_TIMEOUT_MS + SLACK_MS);
    }
    const ready = await readyz(kg);
    expect(ready.status).toBe(503);
    expect(ready.body.checks).toMatchObject({ store: expect.stringMatching(/^unreachable: /), revocationFeed: 'disconnected' });

    // Bounded staleness: once the cached answer is older than maxAgeMs it is not used either.
    await sleep(Math.max(0, cachedAt + MAX_AGE_MS + 100 - Date.now()));
    expect(await call(cached.key)).toMatchObject({ status: 503, code: 'auth_unavailable' });

    await redis.restart();
    await waitFor('readyz to recover', async () => (await readyz(kg)).status === 200, 5000, 50);
    expect(kg.keygate.store.feedHealthy).toBe(true);
    expect((await call(cached.key)).status).toBe(200);
    expect((await call(uncached.key)).status).toBe(200);
    expect(await call(unknown)).toMatchObject({ status: 401, code: 'invalid_key' });
    // Caching resumed: repeated requests are answered from the cache.
    const { storeCalls } = kg.keygate.verifier.stats;
    for (let i = 0; i < 5; i++) expect((await call(cached.key)).status).toBe(200);
    expect(kg.keygate.verifier.stats.storeCalls).toBe(storeCalls);
    expect(kg.logs()).toContain('redis connection lost');
  });
});

describe('Redis is frozen (SIGSTOP: connections open, no answers)', () => {
  it('no request hangs: unknown keys get 503 within the command timeout, cached keys still pass', async () => {
    const redis = await redisServer();
    // A long cache age here: this test is about hanging, not about the age limit.
    const { kg, call } = await start(redis.url, 30_000);
    const cached = await kg.keys.create({ tenant: 'acme', name: 'cached' });
    expect((await call(cached.key)).status).toBe(200);
    redis.pause();
    try {
      const unknownKeys = Array.from({ length: 10 }, () => generateKey('kg', 'acme'));
      const answers = await Promise.all([...unknownKeys.map(call), call(cached.key)]);
      for (const answer of answers.slice(0, -1)) {
        expect(answer).toMatchObject({ status: 503, code: 'auth_unavailable' });
        expect(answer.ms).toBeLessThan(COMMAND_TIMEOUT_MS + SLACK_MS);
      }
      expect(answers.at(-1)!.status).toBe(200);
      // The heartbeat notices the silent subscriber; cached keys then wait for Redis at most
      // the command timeout before falling back to the cache.
      await waitFor('the heartbeat to give up on the feed', () => !kg.keygate.store.feedHealthy, 3000, 20);
      const fallback = await call(cached.key);
      expect(fallback.status).toBe(200);
      expect(fallback.ms).toBeLessThan(COMMAND_TIMEOUT_MS + SLACK_MS);
    } finally {
      redis.resume();
    }
    await waitFor('the feed to be back', () => kg.keygate.store.feedHealthy, 5000, 20);
    expect((await call(cached.key)).status).toBe(200);
    expect((await call(generateKey('kg', 'acme'))).status).toBe(401);
  });
});

describe('Redis is not there when keygate starts', () => {
  it('keygate starts degraded (readyz 503, keys 503) and recovers when Redis comes up', async () => {
    const port = await freePort();
    const started = Date.now();
    const { kg, call } = await start(`redis://127.0.0.1:${port}`);
    expect(Date.now() - started).toBeLessThan(3000);
    expect(kg.logs()).toContain('redis unreachable at start');
    const ready = await readyz(kg);
    expect(ready.status).toBe(503);
    expect(ready.body.checks).toMatchObject({ store: expect.stringMatching(/not connected/), revocationFeed: 'disconnected' });
    expect(await call(generateKey('kg', 'acme'))).toMatchObject({ status: 503, code: 'auth_unavailable' });

    await redisServer({ port });
    await waitFor('readyz to recover', async () => (await readyz(kg)).status === 200, 5000, 50);
    const { key } = await kg.keys.create({ tenant: 'acme', name: 'late' });
    expect((await call(key)).status).toBe(200);
    expect(await call(generateKey('kg', 'acme'))).toMatchObject({ status: 401, code: 'invalid_key' });
  });
});

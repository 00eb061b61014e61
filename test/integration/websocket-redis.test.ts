/**
 * Open WebSockets on keygate instances sharing a real redis-server: a key revoked on one
 * instance closes its tunnels on the other (pushed), a revocation the push missed (the
 * subscriber connection killed) closes them once the feed resyncs, and a Redis that cannot
 * vouch for the key any more closes them (1013) once the cached answer is older than
 * cache.maxAgeMs — the staleness rules of the README, applied to connections that stay open.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import type { RawConfig } from '../../src/config/schema.ts';
import type { TestKeygate } from '../helpers/keygate.ts';
import { startRedisPair, type RedisPair } from '../helpers/redis-fixture.ts';
import { waitFor, type RedisServer } from '../helpers/redis-server.ts';
import { closed, connectWs, echo, startWsUpstream, type WsUpstream } from '../helpers/ws-upstream.ts';

let redis: RedisServer;
let raw: Redis;
let pair: RedisPair<TestKeygate>;
let upstream: WsUpstream;
let a: TestKeygate, b: TestKeygate;

const MAX_AGE = 1000;
const wsUrl = (instance: TestKeygate, path: string) => `${instance.url.replace('http:', 'ws:')}${path}`;

beforeAll(async () => {
  upstream = await startWsUpstream();
  pair = await startRedisPair({
    config: (store) => ({
      store,
      cache: { maxAgeMs: MAX_AGE },
      routes: [{ name: 'ws', pathPrefix: '/', upstream: upstream.url, websocket: true }],
      log: { level: 'warn', access: false },
    }),
  });
  ({ redis, raw, a, b } = pair);
});

afterAll(async () => {
  await pair?.stop();
  await upstream?.close();
});

describe('WebSockets on two instances sharing Redis', () => {
  it('a key revoked on one instance closes its WebSockets on the other, pushed', async () => {
    const { key, record } = await a.keys.create({ tenant: 'acme', name: 'pushed' });
    const { ws } = await connectWs(wsUrl(b, '/x'), { 'x-api-key': key });
    expect(await echo(ws!, 'hi')).toBe('hi');
    const end = closed(ws!);
    const t0 = performance.now();
    await a.keys.revoke(record.id);
    const { code, at } = await end;
    console.log(`[keygate ws redis] revoke on A → Close on B's WebSocket after ${(at - t0).toFixed(1)} ms`);
    expect(code).toBe(1008);
    expect(at - t0).toBeLessThan(MAX_AGE);
  });

  it('a revocation missed while the subscriber reconnects closes the WebSocket when the feed resyncs', async () => {
    const { key, record } = await a.keys.create({ tenant: 'acme', name: 'missed' });
    const { ws } = await connectWs(wsUrl(b, '/y'), { 'x-api-key': key });
    await echo(ws!, 'hi');
    await waitFor('both feeds to be subscribed', () => a.keygate.store.feedHealthy && b.keygate.store.feedHealthy, 3000, 5);
    const end = closed(ws!);
    expect(Number(await raw.call('CLIENT', 'KILL', 'TYPE', 'pubsub'))).toBe(2);
    const t0 = performance.now();
    await a.keygate.store.revoke(record.id, Date.now());
    // The point of the test: B could not have been told.
    expect(b.keygate.store.feedHealthy).toBe(false);
    const { code, reason, at } = await end;
    console.log(`[keygate ws redis] revoked while B's feed was down → Close after ${(at - t0).toFixed(1)} ms`);
    expect(code).toBe(1008);
    expect(reason).toBe('the API key has been revoked');
    expect(at - t0).toBeLessThan(MAX_AGE + 2000);
  });

  it('when Redis is gone, an open WebSocket is closed with 1013 once its cached answer is older than cache.maxAgeMs', async () => {
    const { key } = await a.keys.create({ tenant: 'acme', name: 'outage' });
    const { ws } = await connectWs(wsUrl(b, '/z'), { 'x-api-key': key });
    await echo(ws!, 'hi');
    const end = closed(ws!);
    const t0 = performance.now();
    await redis.kill();
    const { code, at } = await end;
    console.log(`[keygate ws redis] Redis killed → Close ${code} after ${(at - t0).toFixed(0)} ms (cache.maxAgeMs ${MAX_AGE})`);
    expect(code).toBe(1013);
    // One re-check period to notice, plus the answer's remaining age, plus slack for a loaded machine.
    expect(at - t0).toBeLessThan(2 * MAX_AGE + 3000);
    await redis.restart();
    await waitFor('both feeds to be back', () => a.keygate.store.feedHealthy && b.keygate.store.feedHealthy, 10_000, 20);
  });
});

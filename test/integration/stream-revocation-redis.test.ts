/**
 * Event streams and long downloads on keygate instances sharing a real redis-server: a key
 * revoked through instance A's admin API ends the streams open on instance B (pushed) — an
 * event stream between two events, a download by a reset — and a revocation B could not be
 * told of (its subscriber connection killed) ends them once B's feed resyncs.
 * `npx vitest run test/integration/stream-revocation-redis.test.ts` prints the lags.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RawConfig } from '../../src/config/schema.ts';
import { call } from '../helpers/admin.ts';
import type { TestKeygate } from '../helpers/keygate.ts';
import { startRedisPair, type RedisPair } from '../helpers/redis-fixture.ts';
import { waitFor, type RedisServer } from '../helpers/redis-server.ts';
import { openStream, writeDownload, writeEvents, type Stream } from '../helpers/streams.ts';
import { startUpstream, type TestUpstream } from '../helpers/upstream.ts';

const MAX_LAG_MS = 200;
const MAX_AGE = 1000;

let redis: RedisServer;
let raw: Redis;
let pair: RedisPair<TestKeygate>;
let up: TestUpstream;
let a: TestKeygate, b: TestKeygate;
let root: string;

/** An event every 50 ms, each in two writes 20 ms apart; or 16 KB every 20 ms for /download. */
function handler(req: IncomingMessage, res: ServerResponse): void {
  const sse = req.url!.startsWith('/sse');
  res.writeHead(200, { 'content-type': sse ? 'text/event-stream' : 'application/octet-stream' });
  if (sse) writeEvents(res);
  else writeDownload(res);
}

async function open(instance: TestKeygate, path: string, key: string): Promise<Stream> {
  const stream = await openStream(instance.url, path, { 'x-api-key': key });
  expect(stream.status).toBe(200);
  return stream;
}

function expectCompleteEvents(text: string): void {
  expect(text.endsWith('\n\n')).toBe(true);
  for (const event of text.split('\n\n').slice(0, -1)) expect(event).toMatch(/^id: (\d+)\ndata: first half of \1\ndata: second half of \1$/);
}

async function createKey(name: string): Promise<{ key: string; id: string }> {
  const res = await call(a.adminUrl, 'POST', '/v1/keys', { key: root, body: { tenant: 'acme', name } });
  expect(res.status, res.text).toBe(201);
  return res.json;
}

beforeAll(async () => {
  up = await startUpstream(handler);
  pair = await startRedisPair({
    config: (store) => ({
      store,
      cache: { maxAgeMs: MAX_AGE },
      routes: [{ name: 'api', pathPrefix: '/', upstream: up.url }],
      log: { level: 'warn', access: false },
    }),
  });
  ({ redis, raw, a, b } = pair);
  root = (await a.keys.create({ tenant: 'system', role: 'admin', name: 'root' })).key;
});

afterAll(async () => {
  await pair?.stop();
  await up?.close();
});

describe('streams on two instances sharing Redis', () => {
  it("a key revoked through A's admin API ends its event stream and its download on B within the lag", async () => {
    const { key, id } = await createKey('pushed');
    const sse = await open(b, '/sse/pushed', key);
    const download = await open(b, '/download/pushed', key);
    await Promise.all([sse.until('second half of 3\n\n'), download.until('a'.repeat(64 * 1024))]);
    const t0 = performance.now();
    const res = await call(a.adminUrl, 'POST', `/v1/keys/${id}/revoke`, { key: root });
    const answered = performance.now() - t0;
    expect(res.status).toBe(200);
    const [s, d] = await Promise.all([sse.ended, download.ended]);
    console.log(`[keygate streams redis] revoke on A (answered in ${answered.toFixed(1)} ms) → B's event stream ended after ${(s.at - t0).toFixed(1)} ms, B's download cut after ${(d.at - t0).toFixed(1)} ms`);
    expect(s.complete).toBe(true);
    expectCompleteEvents(s.text);
    expect(d.complete).toBe(false);
    expect(s.at - t0).toBeLessThan(MAX_LAG_MS);
    expect(d.at - t0).toBeLessThan(MAX_LAG_MS);
  });

  it('a revocation missed while B reconnects its subscriber ends the stream when B resyncs', async () => {
    const { key, id } = await createKey('missed');
    const sse = await open(b, '/sse/missed', key);
    await sse.until('second half of 1\n\n');
    await waitFor('both feeds to be subscribed', () => a.keygate.store.feedHealthy && b.keygate.store.feedHealthy, 3000, 5);
    expect(Number(await raw.call('CLIENT', 'KILL', 'TYPE', 'pubsub'))).toBe(2);
    const t0 = performance.now();
    await a.keygate.store.revoke(id, Date.now());
    // The point of the test: B could not have been told.
    expect(b.keygate.store.feedHealthy).toBe(false);
    const end = await sse.ended;
    console.log(`[keygate streams redis] revoked while B's feed was down → event stream ended after ${(end.at - t0).toFixed(1)} ms`);
    expect(end.complete).toBe(true);
    expectCompleteEvents(end.text);
    expect(end.at - t0).toBeLessThan(MAX_AGE + 2000);
  });
});

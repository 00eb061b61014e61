/**
 * Rate limits against real keygates and a real redis-server: a route's limits, a key's, a
 * group's and a tenant's, decided by Redis for every instance at once (exact across two
 * instances), the RateLimit fields on answers, limits changed while traffic flows, and what
 * each route's `onStoreError` does when Redis is killed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Pool } from 'undici';
import type { RawConfig } from '../../src/config/schema.ts';
import { adminClient, type AdminClient } from '../helpers/admin.ts';
import { expectProblem, waitFor } from '../helpers/http.ts';
import { startTestKeygate, type TestKeygate } from '../helpers/keygate.ts';
import { startRedisPair, type RedisPair } from '../helpers/redis-fixture.ts';
import { startUpstream, type TestUpstream } from '../helpers/upstream.ts';
import { connectWs, echo, startWsUpstream, type WsResult, type WsUpstream } from '../helpers/ws-upstream.ts';
import { freePorts, spawnKeygate, tempDir, type KeygateProcess, type TempDir } from '../helpers/process.ts';
import { withKeyService } from '../../src/cli/context.ts';
import { loadConfig } from '../../src/config/load.ts';
import { cliKeys } from '../helpers/keygate.ts';
import { TEST_PEPPER } from '../helpers/pepper.ts';

const config = (store: RawConfig['store'], upstream: TestUpstream): RawConfig => ({
  store,
  limits: { failedAuth: { max: 0 } },
  routes: [
    { name: 'open', pathPrefix: '/open', upstream: upstream.url },
    { name: 'per-key', pathPrefix: '/per-key', upstream: upstream.url, limits: { rates: [{ by: 'key', rate: '5/10s' }] } },
    { name: 'heavy', pathPrefix: '/heavy', upstream: upstream.url, limits: { rates: [{ by: 'key', rate: '10/10s' }], weight: 4 } },
    { name: 'public', pathPrefix: '/public', upstream: upstream.url, auth: { required: false }, limits: { rates: [{ by: 'address', rate: '3/10s' }] } },
    { name: 'closed', pathPrefix: '/closed', upstream: upstream.url, limits: { rates: [{ by: 'tenant', rate: '1000/10s' }], onStoreError: 'closed' } },
  ],
  log: { level: 'warn', access: false },
});

interface Answer {
  status: number;
  code?: string;
  headers: Record<string, string | string[] | undefined>;
}

/** Kept-alive GETs through one pool per base URL. */
function client() {
  const pools = new Map<string, Pool>();
  return {
    async get(base: string, path: string, key?: string): Promise<Answer> {
      let pool = pools.get(base);
      if (!pool) pools.set(base, (pool = new Pool(base, { connections: 8 })));
      const res = await pool.request({ path, method: 'GET', headers: key === undefined ? {} : { 'x-api-key': key } });
      const text = await res.body.text();
      const code = res.headers['content-type'] === 'application/problem+json' ? (JSON.parse(text) as { code: string }).code : undefined;
      return { status: res.statusCode, code, headers: res.headers };
    },
    close: () => Promise.all([...pools.values()].map((p) => p.destroy())),
  };
}

const upstreamCount = (upstream: TestUpstream, prefix: string) => upstream.received.filter((r) => r.url.startsWith(prefix)).length;

describe('rate limits on two instances sharing Redis', () => {
  let upstream: TestUpstream;
  let pair: RedisPair<TestKeygate>;
  let admin: AdminClient;
  const http = client();

  beforeAll(async () => {
    upstream = await startUpstream();
    pair = await startRedisPair<TestKeygate>({ config: (store) => config(store, upstream) });
    const platform = await pair.a.keys.create({ tenant: 'system', name: 'platform', role: 'admin' });
    admin = adminClient(pair.a.adminUrl, platform.key);
  });

  afterAll(async () => {
    await http.close();
    await pair?.stop();
    await upstream?.close();
  });

  it("a route's per-key limit is exact across both instances; refusals never reach the upstream and say when to come back", async () => {
    const { key } = await pair.a.keys.create({ tenant: 'acme', name: 'k1' });
    const answers = await Promise.all(Array.from({ length: 15 }, (_, i) => http.get((i % 2 ? pair.a : pair.b).url, '/per-key/x', key)));
    const ok = answers.filter((a) => a.status === 200);
    // 5 per 10 s: one more only if 2 s (one emission interval) passed during the burst.
    expect(ok.length).toBe(5);
    expect(upstreamCount(upstream, '/per-key')).toBe(5);
    const refused = answers.find((a) => a.status === 429)!;
    expect(refused.code).toBe('rate_limited');
    expect(Number(refused.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(Number(refused.headers['retry-after'])).toBeLessThanOrEqual(2);
    expect(refused.headers['ratelimit-policy']).toBe('"route:key:5/10s";q=5;w=10');
    expect(refused.headers['ratelimit']).toMatch(/^"route:key:5\/10s";r=0;t=\d+$/);
    // Allowed answers carry the fields too, counting down.
    const remaining = ok.map((a) => Number(/r=(\d+)/.exec(String(a.headers['ratelimit']))![1])).sort();
    expect(remaining).toEqual([0, 1, 2, 3, 4]);
    // Another key has its own bucket.
    const other = await pair.a.keys.create({ tenant: 'acme', name: 'k2' });
    expect((await http.get(pair.b.url, '/per-key/x', other.key)).status).toBe(200);
    // A route without limits for a key without limits: no fields at all.
    expect((await http.get(pair.a.url, '/open/x', key)).headers['ratelimit']).toBeUndefined();
  });

  it('driven at more than three times its rate from both instances, a key gets its limit (burst plus refill) to within one request', async () => {
    // 40 per 2 s: a 40 burst, then one every 50 ms.
    const created = await admin.post('/v1/keys', { tenant: 'acme', name: 'rated', rateLimits: ['40/2s'] });
    expect(created.json.rateLimits).toEqual(['40/2s']);
    const key = created.json.key as string;
    const started = Date.now();
    let accepted = 0;
    let sent = 0;
    // Three clients asking without pause for 2 s, alternating instances: always more demand
    // than the rate, so no refill goes unused.
    await Promise.all(
      [0, 1, 2].map(async (c) => {
        while (Date.now() - started < 2000) {
          const r = await http.get((sent++ + c) % 2 ? pair.a.url : pair.b.url, '/open/x', key);
          if (r.status === 200) accepted++;
          await new Promise((resolve) => setTimeout(resolve, 2));
        }
      }),
    );
    const elapsed = Date.now() - started;
    // The exact bound (docs/limits.md): burst + elapsed / interval, at most one more for the
    // request at the interval's edge; at least the burst plus the refill the test waited out.
    const bound = 40 + Math.floor(elapsed / 50);
    expect(accepted).toBeLessThanOrEqual(bound + 1);
    // Demand never stopped, so every refill was taken, but for the last answer's round trip.
    expect(accepted).toBeGreaterThanOrEqual(40 + Math.floor((elapsed - 100) / 50) - 1);
    expect(sent).toBeGreaterThan(3 * accepted);
  });

  it('weight: a request on a heavy route counts as several', async () => {
    const { key } = await pair.a.keys.create({ tenant: 'acme', name: 'weighted' });
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await http.get(pair.a.url, '/heavy/x', key)).status);
    // 10 per 10 s at weight 4: two requests fit, the third does not.
    expect(statuses).toEqual([200, 200, 429, 429]);
  });

  it('a public route limits each client address', async () => {
    const statuses = [];
    for (let i = 0; i < 5; i++) statuses.push((await http.get(i % 2 ? pair.a.url : pair.b.url, '/public/x')).status);
    expect(statuses).toEqual([200, 200, 200, 429, 429]);
  });

  it("a key's limits changed while traffic flows apply on both instances within the revocation lag", async () => {
    const created = await admin.post('/v1/keys', { tenant: 'acme', name: 'changing' });
    const key = created.json.key as string;
    for (const t of [pair.a, pair.b]) expect((await http.get(t.url, '/open/x', key)).status).toBe(200);
    const patched = await admin.patch(`/v1/keys/${created.json.id}`, { rateLimits: ['1/10s'] });
    expect(patched.json.rateLimits).toEqual(['1/10s']);
    // The instance that wrote it, and then the other one through the feed: one more, then refused.
    const first = await http.get(pair.b.url, '/open/x', key);
    await waitFor(async () => (await http.get(pair.b.url, '/open/x', key)).status === 429, 1000, 1);
    expect(first.status).toBe(200);
    expect((await http.get(pair.a.url, '/open/x', key)).status).toBe(429);
  });

  it("a group's and a tenant's limits count the keys that belong to them", async () => {
    expect((await admin.post('/v1/groups', { tenant: 'team', name: 'slow', permissions: [], rateLimits: ['2/10s'] })).status).toBe(201);
    const inGroup = await admin.post('/v1/keys', { tenant: 'team', name: 'g', group: 'slow' });
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await http.get(i % 2 ? pair.a.url : pair.b.url, '/open/x', inGroup.json.key)).status);
    expect(statuses).toEqual([200, 200, 429]);
    // The tenant's limit: all its keys together.
    const set = await admin.call('PUT', '/v1/tenants/shared/limits', { body: { rateLimits: ['3/10s'] } });
    expect(set.json).toMatchObject({ tenant: 'shared', rateLimits: ['3/10s'] });
    const keys = await Promise.all([0, 1, 2].map((i) => admin.post('/v1/keys', { tenant: 'shared', name: `s${i}` })));
    const results = [];
    for (const k of [...keys, ...keys]) results.push((await http.get(pair.b.url, '/open/x', k.json.key)).status);
    expect(results.filter((s) => s === 200)).toHaveLength(3);
    const refused = await http.get(pair.a.url, '/open/x', keys[0]!.json.key);
    expect(refused.headers['ratelimit']).toMatch(/^"tenant:3\/10s";r=0/);
    // A tenant's own admin cannot lift it, nor remove its keys' limits.
    const tenantAdmin = await pair.a.keys.create({ tenant: 'shared', name: 'ta', permissions: ['keys:manage'] });
    const ta = adminClient(pair.a.adminUrl, tenantAdmin.key);
    expectProblem(await ta.call('PUT', '/v1/tenants/shared/limits', { body: { rateLimits: [] } }), 403, 'forbidden');
    expectProblem(await ta.call('PUT', '/v1/tenants/acme/limits', { body: { rateLimits: [] } }), 404, 'not_found');
    const limitedKey = await admin.post('/v1/keys', { tenant: 'shared', name: 'lk', rateLimits: ['5/s'] });
    expectProblem(await ta.patch(`/v1/keys/${limitedKey.json.id}`, { rateLimits: [] }), 403, 'forbidden');
    expect((await ta.patch(`/v1/keys/${limitedKey.json.id}`, { rateLimits: ['5/s', '100/1d'] })).status).toBe(200);
  });

  it('a limit that makes no sense is refused with 422 naming it, in the API', async () => {
    for (const bad of ['0/s', '-1/s', '10/0s', '10/year', 'ten/s', '10/40d', '']) {
      const res = await admin.post('/v1/keys', { tenant: 'acme', name: 'bad', rateLimits: [bad] });
      expectProblem(res, 422, 'validation_failed');
      expect(res.json.detail).toContain('rateLimits');
    }
    expectProblem(await admin.call('PUT', '/v1/tenants/acme/limits', { body: { rateLimits: ['5/fortnight'] } }), 422, 'validation_failed');
    expectProblem(await admin.post('/v1/groups', { tenant: 'acme', name: 'g2', permissions: [], rateLimits: [5] }), 422, 'validation_failed');
  });
});

describe('rate limits when Redis is killed', () => {
  let upstream: TestUpstream;
  let pair: RedisPair<TestKeygate>;
  const http = client();

  beforeAll(async () => {
    upstream = await startUpstream();
    pair = await startRedisPair<TestKeygate>({ config: (store) => ({ ...config(store, upstream), cache: { maxAgeMs: 60_000 } }) });
  });

  afterAll(async () => {
    await http.close();
    await pair?.stop();
    await upstream?.close();
  });

  it('onStoreError open: each instance goes on deciding alone (so each still holds the limit); closed: 503 limit_unavailable', async () => {
    const { key } = await pair.a.keys.create({ tenant: 'acme', name: 'k' });
    // Cached on both instances before Redis goes.
    for (const t of [pair.a, pair.b]) {
      expect((await http.get(t.url, '/closed/x', key)).status).toBe(200);
      expect((await http.get(t.url, '/open/x', key)).status).toBe(200);
    }
    await pair.redis.stop();
    const closed = await http.get(pair.a.url, '/closed/x', key);
    expect(closed.status).toBe(503);
    expect(closed.code).toBe('limit_unavailable');
    // Open: the per-key 5/10s still holds, per instance.
    const statuses = [];
    for (let i = 0; i < 7; i++) statuses.push((await http.get(pair.b.url, '/per-key/x', key)).status);
    expect(statuses).toEqual([200, 200, 200, 200, 200, 429, 429]);
    const metrics = await (await fetch(`${pair.b.adminUrl}/metrics`)).text();
    expect(metrics).toMatch(/keygate_limit_store_errors_total\{route="per-key",policy="open"\} [1-9]/);
    expect(metrics).toMatch(/keygate_rate_limited_total\{route="per-key",scope="route"\} 2/);
  });
});

describe('rate limits on the embedded store', () => {
  let upstream: TestUpstream;
  let t: TestKeygate;
  const http = client();

  beforeAll(async () => {
    upstream = await startUpstream();
    t = await startTestKeygate(config({}, upstream));
  });

  afterAll(async () => {
    await http.close();
    await t?.stop();
    await upstream?.close();
  });

  it('are decided in memory, with the same answers and fields', async () => {
    const { key } = await t.keys.create({ tenant: 'acme', name: 'k' });
    const answers = await Promise.all(Array.from({ length: 8 }, () => http.get(t.url, '/per-key/x', key)));
    expect(answers.filter((a) => a.status === 200)).toHaveLength(5);
    expect(answers.find((a) => a.status === 429)!.headers['retry-after']).toBeDefined();
  });
});

describe('rate limits on WebSocket upgrades and with workers: 2', () => {
  let ws: WsUpstream;
  let upstream: TestUpstream;
  let dir: TempDir;
  let serve: KeygateProcess;
  let key: string;

  beforeAll(async () => {
    [ws, upstream] = await Promise.all([startWsUpstream(), startUpstream()]);
    dir = tempDir('keygate-limits-workers-');
    const [listen, admin] = (await freePorts(2)) as [number, number];
    const file = dir.writeYaml('keygate.yaml', {
      workers: 2,
      listen: { host: '127.0.0.1', port: listen },
      admin: { host: '127.0.0.1', port: admin },
      store: { path: `${dir.path}/data/keygate.db`, pollMs: 100 },
      log: { level: 'info' },
      shutdown: { graceMs: 1000 },
      routes: [
        { name: 'ws', pathPrefix: '/ws', upstream: ws.url, websocket: true, limits: { rates: [{ by: 'key', rate: '2/30s' }] } },
        { name: 'api', pathPrefix: '/api', upstream: upstream.url, limits: { rates: [{ by: 'key', rate: '10/30s' }] } },
      ],
    });
    serve = await spawnKeygate(file, { timeoutMs: 20_000 });
    await waitFor(() => new Set(serve.logLines().filter((l) => l.msg === 'keygate listening').map((l) => l.pid)).size === 2, 15_000, 20);
    const io = { out: () => {}, err: () => {}, env: { KEYGATE_PEPPER: TEST_PEPPER }, stdin: process.stdin };
    key = await withKeyService(loadConfig(file, io.env), io, async (service) => (await cliKeys(service).create({ tenant: 'acme', name: 'k' })).key);
  });

  afterAll(async () => {
    await serve?.stop('SIGTERM', 5000);
    dir?.remove();
    await ws?.close();
    await upstream?.close();
  });

  it('the workers share one count: every request on a new connection, spread over both, gets exactly the limit', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 16; i++) {
      const res = await fetch(`${serve.url}/api/x${i}`, { headers: { 'x-api-key': key, connection: 'close' } });
      await res.arrayBuffer();
      statuses.push(res.status);
    }
    expect(statuses.filter((s) => s === 200)).toHaveLength(10);
    expect(statuses.slice(10).every((s) => s === 429)).toBe(true);
    const served = await waitFor(() => {
      const pids = new Set(serve.logLines().filter((l) => l.msg === 'request' && l.route === 'api' && l.status === 200).map((l) => l.pid));
      return pids.size === 2 ? pids : null;
    }, 5000, 50);
    expect(served.size).toBe(2);
  });

  it('a WebSocket upgrade is counted like any request; refused upgrades never reach the upstream', async () => {
    const opened: WsResult[] = [];
    for (let i = 0; i < 3; i++) opened.push(await connectWs(`${serve.url.replace('http', 'ws')}/ws/chat`, { 'x-api-key': key }));
    expect(opened.slice(0, 2).every((r) => r.ws !== null)).toBe(true);
    expect(await echo(opened[0]!.ws!, 'hi')).toBe('hi');
    expect(opened[2]!.ws).toBeNull();
    expect(opened[2]!.status).toBe(429);
    expect(JSON.parse(opened[2]!.body!).code).toBe('rate_limited');
    expect(opened[2]!.headers!['retry-after']).toBeDefined();
    expect(ws.upgrades.filter((u) => u.url === '/ws/chat')).toHaveLength(2);
    for (const r of opened) r.ws?.close();
  });
});

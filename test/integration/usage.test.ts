/**
 * Per-key usage against real keygates (docs/usage.md): requests and WebSocket upgrades are
 * counted per key and tenant by day, route and status class (keygate's own refusals by their
 * status) and written off the request path — nothing reaches the store until a flush, and the
 * last batch is written at shutdown; GET /v1/keys/{id}/usage and /v1/tenants/{t}/usage,
 * scoped like every key endpoint (another tenant's key or tenant is 404); ?unusedDays on the
 * key list; 422 naming the field. On the embedded store, and on two instances sharing Redis
 * (their counts add up in the same hashes, which expire 35 days after their day), with a day
 * rolling over under an injected clock; and under the Redis ACL docs/redis.md documents.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RawConfig } from '../../src/config/schema.ts';
import { parseConfig } from '../../src/config/load.ts';
import { Usage } from '../../src/events/usage.ts';
import { CLI_CALLER } from '../../src/keys/service.ts';
import type { Exchange } from '../../src/pipeline/exchange.ts';
import { DAY_MS, dayOf } from '../../src/store/usage-store.ts';
import { adminClient, expectInvalid, schemaProblems, shiftedService, startAdminKeygate, type AdminClient, type AdminTestKeygate } from '../helpers/admin.ts';
import { expectProblem } from '../helpers/http.ts';
import { startRedis, startRedisPair, type RedisPair } from '../helpers/redis-fixture.ts';
import { aclRefusals, documentedAcl } from '../helpers/redis-acl.ts';
import { RedisStore as Redis } from '../../src/store/redis/store.ts';
import { startUpstream, type TestUpstream } from '../helpers/upstream.ts';
import { closed, connectWs, startWsUpstream, type WsUpstream } from '../helpers/ws-upstream.ts';

/** The upstream answers /api/status/<n> with status n, anything else 200. */
function statusHandler(req: IncomingMessage, res: ServerResponse): void {
  const match = /\/status\/(\d{3})/.exec(req.url ?? '');
  res.writeHead(match ? Number(match[1]) : 200, { 'content-type': 'text/plain' });
  res.end('ok');
}

/** The flush timer never fires during a test: every write is the test's own flush, or shutdown's. */
const config = (store: RawConfig['store'] | undefined, upstream: TestUpstream, ws: WsUpstream): RawConfig => ({
  ...(store ? { store } : {}),
  lifecycle: { usageFlushMs: 3_600_000 },
  routes: [
    { name: 'api', pathPrefix: '/api', upstream: upstream.url },
    { name: 'billing', pathPrefix: '/billing', upstream: upstream.url, auth: { permissions: ['billing:read'] } },
    { name: 'ws', pathPrefix: '/ws', upstream: ws.url, websocket: true },
  ],
  log: { level: 'warn', access: false },
});

const today = () => new Date().toISOString().slice(0, 10);
type Day = { date: string; total: number; byRoute: Record<string, Record<string, number>> };
const lastDay = (days: Day[]) => days[days.length - 1]!;
const get = (base: string, path: string, key: string) => fetch(`${base}${path}`, { headers: { 'x-api-key': key } }).then(async (r) => (await r.arrayBuffer(), r.status));

let upstream: TestUpstream;
let ws: WsUpstream;

beforeAll(async () => {
  [upstream, ws] = await Promise.all([startUpstream(statusHandler), startWsUpstream()]);
});

afterAll(async () => {
  await Promise.all([upstream?.close(), ws?.close()]);
});

describe('usage on the embedded store', () => {
  let t: AdminTestKeygate;
  let admin: AdminClient;
  let acmeAdmin: AdminClient;
  let acme: { id: string; key: string };
  let acme2: { id: string; key: string };
  let globex: { id: string; key: string };

  beforeAll(async () => {
    t = await startAdminKeygate(config(undefined, upstream, ws));
    admin = adminClient(t.adminUrl, (await t.keys.create({ tenant: 'system', name: 'root', role: 'admin' })).key);
    acmeAdmin = adminClient(t.adminUrl, (await t.keys.create({ tenant: 'acme', name: 'acme-admin', permissions: ['keys:manage'] })).key);
    const make = async (tenant: string, name: string) => {
      const created = await t.keys.create({ tenant, name });
      return { id: created.record.id, key: created.key };
    };
    [acme, acme2, globex] = [await make('acme', 'one'), await make('acme', 'two'), await make('globex', 'three')];
  });

  afterAll(async () => {
    await t?.stop();
  });

  it('counts each key by route and class — upstream answers by class, keygate’s refusals by status, WebSockets too — and writes only when flushed', async () => {
    for (let i = 0; i < 3; i++) expect(await get(t.url, '/api/x', acme.key)).toBe(200);
    expect(await get(t.url, '/api/status/404', acme.key)).toBe(404);
    expect(await get(t.url, '/api/status/503', acme.key)).toBe(503);
    expect(await get(t.url, '/billing/x', acme.key)).toBe(403); // keygate's refusal: no billing:read
    expect(await get(t.url, '/api/x', acme2.key)).toBe(200);
    expect(await get(t.url, '/api/x', globex.key)).toBe(200);
    // Not counted: no key, an unknown key.
    expect(await get(t.url, '/api/x', '')).toBe(401);
    expect(await get(t.url, '/api/x', `kg_acme_${'0'.repeat(56)}00000000`)).toBe(401);
    // A WebSocket upgrade is counted when its connection ends (101: 1xx).
    const opened = await connectWs(`${t.url.replace('http', 'ws')}/ws/chat`, { 'x-api-key': acme.key });
    const gone = closed(opened.ws!);
    opened.ws!.close();
    await gone;
    await expect.poll(() => t.keygate.usage.pending, { timeout: 2000 }).toBeGreaterThanOrEqual(6 + 1 + 1);

    // Off the request path: nothing is in the store before the flush.
    const before = await admin.get(`/v1/keys/${acme.id}/usage`);
    expect(before.status).toBe(200);
    expect(before.json.days).toHaveLength(30);
    expect(before.json.days.every((d: Day) => d.total === 0)).toBe(true);

    await t.keygate.usage.flush();
    expect(t.keygate.usage.pending).toBe(0);
    const after = await admin.get(`/v1/keys/${acme.id}/usage`);
    expect(after.json).toMatchObject({ id: acme.id, tenant: 'acme' });
    expect(lastDay(after.json.days)).toEqual({ date: today(), total: 7, byRoute: { api: { '2xx': 3, '4xx': 1, '5xx': 1 }, billing: { '403': 1 }, ws: { '1xx': 1 } } });
    // Days are oldest first and consecutive.
    expect(after.json.days[0].date).toBe(new Date(Date.now() - 29 * DAY_MS).toISOString().slice(0, 10));

    const tenant = await admin.get('/v1/tenants/acme/usage?days=7');
    expect(tenant.json.tenant).toBe('acme');
    expect(tenant.json.days).toHaveLength(7);
    expect(lastDay(tenant.json.days)).toEqual({ date: today(), total: 8, byRoute: { api: { '2xx': 4, '4xx': 1, '5xx': 1 }, billing: { '403': 1 }, ws: { '1xx': 1 } } });
    expect(lastDay((await admin.get('/v1/tenants/globex/usage?days=1')).json.days)).toMatchObject({ total: 1 });

    // The answers are what /openapi.json says they are.
    const openapi = (await admin.get('/openapi.json')).json;
    expect(Object.keys(openapi.paths)).toEqual(expect.arrayContaining(['/v1/keys/{id}/usage', '/v1/tenants/{tenant}/usage']));
    expect(openapi.paths['/v1/keys'].get.parameters.map((p: { name: string }) => p.name)).toContain('unusedDays');
    expect(schemaProblems({ $ref: '#/components/schemas/KeyUsage' }, after.json, openapi.components.schemas)).toEqual([]);
    expect(schemaProblems({ $ref: '#/components/schemas/TenantUsage' }, tenant.json, openapi.components.schemas)).toEqual([]);
  });

  it('counts a revoked key’s refusals (401) against it while keygate knows the key', async () => {
    const created = await t.keys.create({ tenant: 'acme', name: 'doomed' });
    expect(await get(t.url, '/api/x', created.key)).toBe(200);
    await t.keys.revoke(created.record.id);
    expect(await get(t.url, '/api/x', created.key)).toBe(401);
    await t.keygate.usage.flush();
    expect(lastDay((await admin.get(`/v1/keys/${created.record.id}/usage?days=1`)).json.days).byRoute).toEqual({ api: { '2xx': 1, '401': 1 } });
  });

  it('is scoped like GET /v1/keys/{id}: a tenant admin reads its own keys and tenant, and gets 404 for another’s', async () => {
    expect((await acmeAdmin.get(`/v1/keys/${acme.id}/usage?days=1`)).status).toBe(200);
    expect((await acmeAdmin.get('/v1/tenants/acme/usage?days=1')).status).toBe(200);
    expectProblem(await acmeAdmin.get(`/v1/keys/${globex.id}/usage`), 404, 'not_found');
    expectProblem(await acmeAdmin.get('/v1/tenants/globex/usage'), 404, 'not_found');
    expectProblem(await admin.get('/v1/keys/key_nope/usage'), 404, 'not_found');
    // The same answer for a tenant that exists and one that does not.
    expect((await acmeAdmin.get('/v1/tenants/nobody/usage')).json.detail).toBe((await acmeAdmin.get('/v1/tenants/globex/usage')).json.detail);
  });

  it('answers bad query values with 422 naming the field', async () => {
    for (const days of ['0', '36', 'abc', '-1', '1.5', '']) expectInvalid(await admin.get(`/v1/keys/${acme.id}/usage?days=${days}`), 'query.days');
    expectInvalid(await admin.get(`/v1/tenants/acme/usage?days=99`), 'query.days');
    expectInvalid(await admin.get(`/v1/keys/${acme.id}/usage?day=3`), 'query: unknown field "day"');
    expectInvalid(await admin.get('/v1/tenants/Not_A_Tenant/usage'), 'tenant');
    for (const n of ['0', 'x', '-3', '36501']) expectInvalid(await admin.get(`/v1/keys?unusedDays=${n}`), 'query.unusedDays');
  });

  it('?unusedDays=N lists keys last used more than N days ago, or never used and created more than N days ago', async () => {
    const past = shiftedService(t, -40 * DAY_MS);
    await past.create(CLI_CALLER, { tenant: 'idle', name: 'old-never-used' });
    const oldUsed = (await past.create(CLI_CALLER, { tenant: 'idle', name: 'old-used-20d-ago' })).record;
    const oldRecent = (await past.create(CLI_CALLER, { tenant: 'idle', name: 'old-used-today' })).record;
    await t.keys.create({ tenant: 'idle', name: 'new-never-used' });
    await t.keygate.store.touch(new Map([[oldUsed.id, Date.now() - 20 * DAY_MS], [oldRecent.id, Date.now() - 3600_000]]));
    const names = async (q: string) => ((await admin.get(`/v1/keys?tenant=idle${q}`)).json.keys as { name: string }[]).map((k) => k.name).sort();
    expect(await names('')).toEqual(['new-never-used', 'old-never-used', 'old-used-20d-ago', 'old-used-today']);
    expect(await names('&unusedDays=30')).toEqual(['old-never-used']);
    expect(await names('&unusedDays=10')).toEqual(['old-never-used', 'old-used-20d-ago']);
    expect(await names('&unusedDays=50')).toEqual([]);
  });
});

describe('usage on two instances sharing Redis', () => {
  let pair: RedisPair<AdminTestKeygate>;
  let admin: AdminClient;
  let prefix: string;

  beforeAll(async () => {
    pair = await startRedisPair<AdminTestKeygate>({ config: (store) => config(store, upstream, ws), start: (raw, env) => startAdminKeygate(raw, env) });
    admin = adminClient(pair.a.adminUrl, (await pair.a.keys.create({ tenant: 'system', name: 'root', role: 'admin' })).key);
    prefix = (pair.a.keygate.store as Redis).layout.prefix;
  });

  afterAll(async () => {
    await pair?.stop();
  });

  it('both instances’ counts add up in one hash per key and day, written only when each flushes, expiring 35 days after the day', async () => {
    const { record, key } = await pair.a.keys.create({ tenant: 'acme', name: 'shared' });
    for (let i = 0; i < 3; i++) expect(await get(pair.a.url, '/api/x', key)).toBe(200);
    for (let i = 0; i < 2; i++) expect(await get(pair.b.url, '/api/x', key)).toBe(200);
    expect(await get(pair.b.url, '/billing/x', key)).toBe(403);
    const hash = `${prefix}usage:k:${record.id}:${dayOf(Date.now())}`;
    expect(await pair.raw.keys(`${prefix}usage:*`)).toEqual([]);

    await pair.a.keygate.usage.flush();
    expect(await pair.raw.hgetall(hash)).toEqual({ 'api|2xx': '3' });
    await pair.b.keygate.usage.flush();
    expect(await pair.raw.hgetall(hash)).toEqual({ 'api|2xx': '5', 'billing|403': '1' });
    expect(await pair.raw.hgetall(`${prefix}usage:t:acme:${dayOf(Date.now())}`)).toEqual({ 'api|2xx': '5', 'billing|403': '1' });
    const ttl = await pair.raw.ttl(hash);
    expect(ttl).toBeGreaterThan(34 * 86_400);
    expect(ttl).toBeLessThanOrEqual(35 * 86_400);
    expect(await pair.raw.expiretime(hash)).toBe((Date.parse(today()) + 35 * DAY_MS) / 1000);

    // Either instance answers the same.
    for (const base of [pair.a.adminUrl, pair.b.adminUrl]) {
      const res = await adminClient(base, undefined).call('GET', `/v1/keys/${record.id}/usage?days=2`, { key: (await pair.a.keys.create({ tenant: 'system', name: 'reader', role: 'admin' })).key });
      expect(res.json.days[1]).toEqual({ date: today(), total: 6, byRoute: { api: { '2xx': 5 }, billing: { '403': 1 } } });
    }
  });

  it('a day rolls over at UTC midnight (injected clock), and counters of days past 35 are gone from Redis', async () => {
    const midnight = Date.parse(today());
    let clock = midnight - 60_000; // 23:59 yesterday
    const usage = new Usage({ store: pair.a.keygate.store, flushMs: 3_600_000, now: () => clock });
    const exchange = { identity: { record: { id: 'key_clock', tenant: 'clocked' } }, route: { name: 'api' }, error: null } as unknown as Exchange;
    usage.count(exchange, 200);
    clock = midnight + 60_000; // 00:01 today
    usage.count(exchange, 200);
    usage.count(exchange, 500);
    await usage.flush();
    const days = (await admin.get('/v1/tenants/clocked/usage?days=2')).json.days as Day[];
    expect(days).toEqual([
      { date: new Date(midnight - DAY_MS).toISOString().slice(0, 10), total: 1, byRoute: { api: { '2xx': 1 } } },
      { date: today(), total: 2, byRoute: { api: { '2xx': 1, '5xx': 1 } } },
    ]);

    // 34 days back is the oldest day kept, until its end; 40 days back expires on the spot.
    clock = midnight - 34 * DAY_MS + 1000;
    usage.count(exchange, 200);
    clock = midnight - 40 * DAY_MS;
    usage.count(exchange, 200);
    await usage.flush();
    const kept = `${prefix}usage:k:key_clock:${dayOf(midnight - 34 * DAY_MS)}`;
    expect(await pair.raw.hgetall(kept)).toEqual({ 'api|2xx': '1' });
    expect(await pair.raw.expiretime(kept)).toBe((midnight + DAY_MS) / 1000);
    expect(await pair.raw.exists(`${prefix}usage:k:key_clock:${dayOf(midnight - 40 * DAY_MS)}`)).toBe(0);
    expect(await pair.raw.exists(`${prefix}usage:t:clocked:${dayOf(midnight - 40 * DAY_MS)}`)).toBe(0);
  });

  it('writes the last batch at shutdown', async () => {
    const { record, key } = await pair.a.keys.create({ tenant: 'acme', name: 'last-words' });
    expect(await get(pair.b.url, '/api/x', key)).toBe(200);
    expect(await get(pair.b.url, '/api/status/302', key)).toBe(302);
    expect(await pair.raw.exists(`${prefix}usage:k:${record.id}:${dayOf(Date.now())}`)).toBe(0);
    await pair.b.keygate.close(500);
    const res = await admin.get(`/v1/keys/${record.id}/usage?days=1`);
    expect(res.json.days).toEqual([{ date: today(), total: 2, byRoute: { api: { '2xx': 1, '3xx': 1 } } }]);
  });
});

describe('usage counters under the documented Redis ACL (docs/redis.md)', () => {
  it('are written and read by keygate\'s own user with no refusal in the ACL LOG', async () => {
    const server = await startRedis();
    try {
      await server.raw.call('ACL', 'SETUSER', 'keygate', 'reset', ...documentedAcl('usage-secret-1'));
      await server.raw.call('ACL', 'LOG', 'RESET');
      const url = `redis://keygate:usage-secret-1@127.0.0.1:${server.redis.port}`;
      const store = await Redis.connect(parseConfig({ store: { kind: 'redis', redis: { url, commandTimeoutMs: 1000 } } }, 'test').store.redis);
      try {
        const usage = new Usage({ store, flushMs: 3_600_000 });
        usage.count({ identity: { record: { id: 'key_acl', tenant: 'acme' } }, route: { name: 'api' }, error: null } as unknown as Exchange, 200);
        await usage.flush();
        expect((await store.readUsage('k', 'key_acl', [dayOf(Date.now())]))[0]).toEqual({ 'api|2xx': 1 });
      } finally {
        await store.close();
      }
      expect(await aclRefusals(server.raw)).toEqual([]);
    } finally {
      await server.stop();
    }
  });
});

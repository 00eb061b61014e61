/**
 * Quotas against real keygates: a key's budget per calendar day and its credits, a tenant's
 * budget shared by its keys, charged exactly once across two instances sharing Redis, 429
 * quota_exhausted with the reset time, the remaining budget in the key list and its own
 * endpoint, audited top-ups, the 80 % notification told once, and the embedded store.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RawConfig } from '../../src/config/schema.ts';
import { adminClient, startAdminKeygate, type AdminClient, type AdminTestKeygate } from '../helpers/admin.ts';
import { expectProblem, pooledGets } from '../helpers/http.ts';
import { startRedisPair, type RedisPair } from '../helpers/redis-fixture.ts';
import { startUpstream, type TestUpstream } from '../helpers/upstream.ts';

const config = (store: RawConfig['store'], upstream: TestUpstream): RawConfig => ({
  store,
  limits: { failedAuth: { max: 0 } },
  routes: [
    { name: 'api', pathPrefix: '/api', upstream: upstream.url },
    { name: 'rated', pathPrefix: '/rated', upstream: upstream.url, limits: { rates: [{ by: 'key', rate: '2/10s' }] } },
  ],
  log: { level: 'warn', access: false },
});

describe('quotas on two instances sharing Redis', () => {
  let upstream: TestUpstream;
  let pair: RedisPair<AdminTestKeygate>;
  let admin: AdminClient;
  const gets = pooledGets(8);

  beforeAll(async () => {
    upstream = await startUpstream();
    pair = await startRedisPair<AdminTestKeygate>({ config: (store) => config(store, upstream), start: (raw, env) => startAdminKeygate(raw, env) });
    const platform = await pair.a.keys.create({ tenant: 'system', name: 'platform', role: 'admin' });
    admin = adminClient(pair.a.adminUrl, platform.key);
  });

  afterAll(async () => {
    await gets.close();
    await pair?.stop();
    await upstream?.close();
  });

  it('a daily budget is charged exactly once per request across both instances, then 429 quota_exhausted until midnight', async () => {
    const created = await admin.post('/v1/keys', { tenant: 'acme', name: 'daily', quota: '10/day' });
    expect(created.json.quota).toBe('10/day');
    const key = created.json.key as string;
    const before = upstream.received.length;
    const answers = await Promise.all(Array.from({ length: 25 }, (_, i) => gets.get(i % 2 ? pair.a.url : pair.b.url, '/api/x', key)));
    expect(answers.filter((a) => a.status === 200)).toHaveLength(10);
    expect(answers.filter((a) => a.code === 'quota_exhausted')).toHaveLength(15);
    expect(upstream.received.length - before).toBe(10);
    const refused = await fetch(`${pair.a.url}/api/x`, { headers: { 'x-api-key': key } });
    const midnight = new Date();
    midnight.setUTCHours(24, 0, 0, 0);
    const wait = Number(refused.headers.get('retry-after'));
    expect(Math.abs(wait - (midnight.getTime() - Date.now()) / 1000)).toBeLessThan(5);
    expect(((await refused.json()) as { detail: string }).detail).toContain(midnight.toISOString());
    const status = await admin.get(`/v1/keys/${created.json.id}/quota`);
    expect(status.json.quotas).toEqual([{ scope: 'key', quota: '10/day', used: 10, remaining: 0, resetsAt: midnight.toISOString() }]);
    const listed = (await admin.get('/v1/keys?tenant=acme')).json.keys.find((k: { id: string }) => k.id === created.json.id);
    expect(listed.quotaRemaining).toBe(0);
  });

  it('the request that passes 80 % is told once, whichever instance served it', async () => {
    const created = await admin.post('/v1/keys', { tenant: 'acme', name: 'warned', quota: '10/day' });
    await Promise.all(Array.from({ length: 12 }, (_, i) => gets.get(i % 2 ? pair.a.url : pair.b.url, '/api/x', created.json.key)));
    const warnings = [...pair.a.events, ...pair.b.events].filter((e) => e.type === 'key.quota_low' && e.target.keyId === created.json.id);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.target).toMatchObject({ quota: '10/day', quotaOf: 'key', used: 8, remaining: 2 });
    expect(JSON.stringify(warnings)).not.toContain(created.json.key);
  });

  it('credits are spent across instances until a platform admin tops them up (audited); a tenant admin may not', async () => {
    const created = await admin.post('/v1/keys', { tenant: 'acme', name: 'credits', quota: '5 credits' });
    const key = created.json.key as string;
    const statuses = await Promise.all(Array.from({ length: 8 }, (_, i) => gets.get(i % 2 ? pair.a.url : pair.b.url, '/api/x', key)));
    expect(statuses.filter((s) => s.status === 200)).toHaveLength(5);
    const refused = await fetch(`${pair.b.url}/api/x`, { headers: { 'x-api-key': key } });
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toBeNull();
    const tenantAdmin = await pair.a.keys.create({ tenant: 'acme', name: 'ta', permissions: ['keys:manage'] });
    expectProblem(await adminClient(pair.a.adminUrl, tenantAdmin.key).post(`/v1/keys/${created.json.id}/quota/top-up`, { amount: 3 }), 403, 'forbidden');
    expectProblem(await adminClient(pair.a.adminUrl, tenantAdmin.key).patch(`/v1/keys/${created.json.id}`, { quota: null }), 403, 'forbidden');
    const topped = await admin.post(`/v1/keys/${created.json.id}/quota/top-up`, { amount: 3 });
    expect(topped.json).toMatchObject({ scope: 'key', quota: '5 credits', remaining: 3, resetsAt: null });
    const after = await Promise.all(Array.from({ length: 5 }, () => gets.get(pair.a.url, '/api/x', key)));
    expect(after.filter((s) => s.status === 200)).toHaveLength(3);
    const audit = (await admin.get('/v1/audit?limit=50')).json.entries.find((e: { action: string; target: string }) => e.action === 'key.quota_top_up' && e.target === created.json.id);
    expect(audit.detail).toMatchObject({ amount: 3, quota: '5 credits' });
  });

  it('a request refused by a rate limit costs no budget', async () => {
    const created = await admin.post('/v1/keys', { tenant: 'acme', name: 'both', quota: '100 credits' });
    const statuses = [];
    for (let i = 0; i < 5; i++) statuses.push((await gets.get(pair.b.url, '/rated/x', created.json.key)).status);
    expect(statuses).toEqual([200, 200, 429, 429, 429]);
    expect((await admin.get(`/v1/keys/${created.json.id}/quota`)).json.quotas[0]).toMatchObject({ used: 2, remaining: 98 });
  });

  it("a tenant's budget is shared by its keys, pushed to both instances, and topped up by a platform admin", async () => {
    const keys = await Promise.all([0, 1].map((i) => admin.post('/v1/keys', { tenant: 'budget', name: `b${i}` })));
    for (const k of keys) expect((await gets.get(pair.a.url, '/api/x', k.json.key)).status).toBe(200);
    const set = await admin.call('PUT', '/v1/tenants/budget/limits', { body: { rateLimits: [], quota: '4/month' } });
    expect(set.json).toMatchObject({ tenant: 'budget', quota: '4/month' });
    const statuses = [];
    for (let i = 0; i < 6; i++) statuses.push((await gets.get(i % 2 ? pair.a.url : pair.b.url, '/api/x', keys[i % 2]!.json.key)).code ?? 200);
    expect(statuses).toEqual([200, 200, 200, 200, 'quota_exhausted', 'quota_exhausted']);
    const shown = await admin.get('/v1/tenants/budget/limits');
    expect(shown.json.quotaStatus).toMatchObject({ scope: 'tenant', quota: '4/month', used: 4, remaining: 0 });
    expect((await admin.post('/v1/tenants/budget/quota/top-up', { amount: 1 })).json.remaining).toBe(1);
    expect((await gets.get(pair.b.url, '/api/x', keys[0]!.json.key)).status).toBe(200);
    expect((await gets.get(pair.a.url, '/api/x', keys[1]!.json.key)).code).toBe('quota_exhausted');
  });

  it('a quota that makes no sense is refused with 422 naming it', async () => {
    for (const bad of ['0/day', '10/week', '10 credit', 'lots', '10/day ', '-5 credits']) {
      const res = await admin.post('/v1/keys', { tenant: 'acme', name: 'bad', quota: bad });
      if (bad === '10/day ') {
        expect(res.status).toBe(201);
        continue;
      }
      expectProblem(res, 422, 'validation_failed');
      expect(res.json.detail).toContain('quota');
    }
    expectProblem(await admin.call('PUT', '/v1/tenants/acme/limits', { body: { rateLimits: [], quota: '3/fortnight' } }), 422, 'validation_failed');
    const k = await admin.post('/v1/keys', { tenant: 'acme', name: 'k' });
    for (const amount of [0, -1, 1.5, 'ten']) expectProblem(await admin.post(`/v1/keys/${k.json.id}/quota/top-up`, { amount }), 422, 'validation_failed');
    expectProblem(await admin.post(`/v1/keys/${k.json.id}/quota/top-up`, { amount: 5 }), 409, 'conflict');
  });
});

describe('quotas on the embedded store', () => {
  let upstream: TestUpstream;
  let t: AdminTestKeygate;

  beforeAll(async () => {
    upstream = await startUpstream();
    t = await startAdminKeygate(config({}, upstream));
  });

  afterAll(async () => {
    await t?.stop();
    await upstream?.close();
  });

  it('are charged in the store file and survive a restart of nothing but the counters', async () => {
    const { key, record } = await t.keys.create({ tenant: 'acme', name: 'k', quota: '3/day' });
    const gets = pooledGets(2);
    try {
      const answers = await Promise.all(Array.from({ length: 6 }, () => gets.get(t.url, '/api/x', key)));
      expect(answers.filter((a) => a.status === 200)).toHaveLength(3);
    } finally {
      await gets.close();
    }
    const status = await t.keygate.store.quotaStatus({ id: `k:${record.id}`, scope: 'key', quota: { kind: 'period', amount: 3, unit: 'day', text: '3/day' }, period: { id: new Date().toISOString().slice(0, 10), endsAt: Date.now() + 1000 } });
    expect(status).toMatchObject({ used: 3, remaining: 0 });
  });
});

/**
 * The admin API and key lifecycle on the Redis store, with two keygate instances sharing
 * one real redis-server and a real upstream: tenant scoping across instances, revocation
 * pushed to the other instance, rotation revoked exactly once by concurrent sweepers,
 * expiry reminders sent exactly once, last-used written at shutdown, audit paging, and
 * no full key in any admin response (after creation) or log line.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import { CLI_CALLER } from '../../src/keys/service.ts';
import { adminClient, type AdminClient, type AdminTestKeygate, mayCarryKey, proxyGet, replies, startAdminKeygate } from '../helpers/admin.ts';
import { startRedisPair, type RedisPair } from '../helpers/redis-fixture.ts';
import { waitFor } from '../helpers/redis-server.ts';
import { startUpstream, type TestUpstream } from '../helpers/upstream.ts';
import { TEST_PEPPER, testHasher } from '../helpers/pepper.ts';

const DAY = 86_400_000;
const PATH = '/api/thing';

let pair: RedisPair<AdminTestKeygate>;
let upstream: TestUpstream;
let a: AdminTestKeygate, b: AdminTestKeygate;
/** The platform admin, on each instance. */
let rootA: AdminClient;
let rootB: AdminClient;
let rootKey: string;
let rootId: string;
/** Every full key created in this file (to check none leaks). */
const fullKeys: string[] = [];

beforeAll(async () => {
  upstream = await startUpstream();
  pair = await startRedisPair({
    start: startAdminKeygate,
    commandTimeoutMs: 500,
    config: (store) => ({
      store,
      cache: { maxAgeMs: 60_000 },
      routes: [{ name: 'api', pathPrefix: '/api', upstream: upstream.url }],
      // Sweeps and last-used flushes only when a test asks for them.
      lifecycle: { sweepMs: 3_600_000, lastUsedFlushMs: 3_600_000 },
      log: { level: 'info' },
    }),
  });
  ({ a, b } = pair);
  const root = await a.keygate.service.create(CLI_CALLER, { tenant: 'system', role: 'admin', name: 'root' });
  rootKey = root.key;
  rootId = root.record.id;
  fullKeys.push(root.key);
  rootA = adminClient(a.adminUrl, rootKey);
  rootB = adminClient(b.adminUrl, rootKey);
});

afterAll(async () => {
  await pair?.stop();
  await upstream?.close();
});

/** Creates a key over the admin API (201 expected) and remembers the full key. */
async function create(client: AdminClient, body: Record<string, unknown>): Promise<{ key: string; id: string; record: any }> {
  const res = await client.post('/v1/keys', body);
  expect(res.status, res.text).toBe(201);
  fullKeys.push(res.json.key);
  return { key: res.json.key, id: res.json.id, record: res.json };
}

async function rotate(client: AdminClient, id: string, body: Record<string, unknown>): Promise<{ key: string; id: string; record: any }> {
  const res = await client.post(`/v1/keys/${id}/rotate`, body);
  expect(res.status, res.text).toBe(201);
  fullKeys.push(res.json.key);
  return { key: res.json.key, id: res.json.id, record: res.json };
}

/** Every audit entry the client can see, newest first, walking the pages. */
async function allAudit(client: AdminClient, limit = 500): Promise<any[]> {
  const entries: any[] = [];
  let before: string | null = null;
  for (;;) {
    const res = await client.get(`/v1/audit?limit=${limit}${before === null ? '' : `&before=${before}`}`);
    expect(res.status, res.text).toBe(200);
    entries.push(...res.json.entries);
    before = res.json.next;
    if (before === null) return entries;
  }
}

const ok = async (instance: AdminTestKeygate, key: string) => (await proxyGet(instance.url, PATH, key)).status;

describe('tenant scoping across two instances on one Redis', () => {
  let manager: { key: string; id: string };
  let mgrB: AdminClient;

  beforeAll(async () => {
    manager = await create(rootA, { tenant: 'acme', name: 'acme-manager', permissions: ['keys:manage'] });
    mgrB = adminClient(b.adminUrl, manager.key);
  });

  it('keys a platform admin creates on A are managed by the tenant manager on B', async () => {
    const one = await create(rootA, { tenant: 'acme', name: 'acme-one', permissions: ['read'] });
    const two = await create(rootA, { tenant: 'acme', name: 'acme-two' });
    const beta = await create(rootA, { tenant: 'beta', name: 'beta-one' });
    expect(one.record).toMatchObject({ tenant: 'acme', name: 'acme-one', role: 'api-user', status: 'active', permissions: ['read'] });
    expect(one.key.startsWith('kg_acme_')).toBe(true);

    // List on B: newest first, its own tenant only, never a key or a hash.
    const list = await mgrB.get('/v1/keys');
    expect(list.status, list.text).toBe(200);
    const ids = list.json.keys.map((k: any) => k.id);
    expect(ids).toEqual(expect.arrayContaining([manager.id, one.id, two.id]));
    expect(ids).not.toContain(beta.id);
    expect(ids).not.toContain(rootId);
    expect(ids.indexOf(two.id)).toBeLessThan(ids.indexOf(one.id));
    for (const k of list.json.keys) {
      expect(k.tenant).toBe('acme');
      expect(k).not.toHaveProperty('key');
      expect(k).not.toHaveProperty('hash');
    }
    // Asking for another tenant gives nothing, not an error and not that tenant's keys.
    const other = await mgrB.get('/v1/keys?tenant=beta');
    expect(other.status).toBe(200);
    expect(other.json.keys).toEqual([]);
    // The platform admin on B sees beta's key (written on A).
    expect((await rootB.get('/v1/keys?tenant=beta')).json.keys.map((k: any) => k.id)).toContain(beta.id);

    // Get, rename on B; the change is visible on A.
    const got = await mgrB.get(`/v1/keys/${one.id}`);
    expect(got.status).toBe(200);
    expect(got.json).toMatchObject({ id: one.id, tenant: 'acme', name: 'acme-one', prefix: one.record.prefix });
    const renamed = await mgrB.patch(`/v1/keys/${one.id}`, { name: 'acme-one-renamed' });
    expect(renamed.status, renamed.text).toBe(200);
    expect(renamed.json.name).toBe('acme-one-renamed');
    expect((await rootA.get(`/v1/keys/${one.id}`)).json.name).toBe('acme-one-renamed');

    // Revoke on B: refused by both proxies, listed as revoked only with revoked=true.
    expect(await ok(a, two.key)).toBe(200);
    const revoked = await mgrB.post(`/v1/keys/${two.id}/revoke`);
    expect(revoked.status, revoked.text).toBe(200);
    expect(revoked.json).toMatchObject({ id: two.id, status: 'revoked', revokedAt: expect.any(String) });
    expect(await proxyGet(b.url, PATH, two.key)).toMatchObject({ status: 401, code: 'key_revoked' });
    await waitFor('A to refuse the key revoked on B', async () => (await ok(a, two.key)) === 401, 2000);
    expect(await proxyGet(a.url, PATH, two.key)).toMatchObject({ status: 401, code: 'key_revoked' });
    expect((await mgrB.get('/v1/keys')).json.keys.map((k: any) => k.id)).not.toContain(two.id);
    expect((await mgrB.get('/v1/keys?revoked=true')).json.keys.map((k: any) => k.id)).toContain(two.id);

    // Another tenant's key is invisible: 404 for every operation, and it keeps working.
    for (const res of [
      await mgrB.get(`/v1/keys/${beta.id}`),
      await mgrB.patch(`/v1/keys/${beta.id}`, { name: 'stolen' }),
      await mgrB.post(`/v1/keys/${beta.id}/revoke`),
      await mgrB.post(`/v1/keys/${beta.id}/rotate`, { overlapSeconds: 0 }),
      await mgrB.post('/v1/tenants/beta/keys/revoke'),
    ]) {
      expect(res.status, `${res.method} ${res.url}: ${res.text}`).toBe(404);
      expect(res.headers.get('content-type')).toBe('application/problem+json');
      expect(res.text).not.toContain('beta-one');
    }
    expect((await rootA.get(`/v1/keys/${beta.id}`)).json).toMatchObject({ name: 'beta-one', status: 'active' });
    expect(await ok(b, beta.key)).toBe(200);
  });

  it('a tenant manager cannot create admin keys or keys of another tenant', async () => {
    const before = (await rootA.get('/v1/keys?tenant=system')).json.keys.length;
    const inOwnTenant = await mgrB.post('/v1/keys', { name: 'sneaky', role: 'admin' });
    expect(inOwnTenant.status, inOwnTenant.text).toBe(422);
    expect(inOwnTenant.json.detail).toContain('role');
    const inSystem = await mgrB.post('/v1/keys', { tenant: 'system', name: 'sneaky', role: 'admin' });
    expect(inSystem.status, inSystem.text).toBe(403);
    const inBeta = await mgrB.post('/v1/keys', { tenant: 'beta', name: 'sneaky' });
    expect(inBeta.status, inBeta.text).toBe(403);
    expect((await rootA.get('/v1/keys?tenant=system')).json.keys.length).toBe(before);
    expect((await rootA.get('/v1/keys?tenant=beta')).json.keys.map((k: any) => k.name)).not.toContain('sneaky');
    // It can create plain keys in its own tenant (the default), which work on A.
    const own = await create(mgrB, { name: 'made-by-manager' });
    expect(own.record.tenant).toBe('acme');
    expect(await ok(a, own.key)).toBe(200);
    // A plain key cannot use the admin API at all.
    expect((await adminClient(b.adminUrl, own.key).get('/v1/keys')).status).toBe(403);
  });

  it('revoke-all of a tenant on one instance is refused everywhere, other tenants untouched', async () => {
    const g1 = await create(rootA, { tenant: 'gamma', name: 'g1' });
    const g2 = await create(rootB, { tenant: 'gamma', name: 'g2' });
    const keep = await create(rootA, { tenant: 'delta', name: 'keep' });
    for (const k of [g1, g2, keep]) {
      expect(await ok(a, k.key)).toBe(200);
      expect(await ok(b, k.key)).toBe(200);
    }
    const res = await rootA.post('/v1/tenants/gamma/keys/revoke');
    expect(res.status, res.text).toBe(200);
    expect(res.json.tenant).toBe('gamma');
    expect([...res.json.revoked].sort()).toEqual([g1.id, g2.id].sort());
    for (const k of [g1, g2]) {
      expect(await proxyGet(a.url, PATH, k.key)).toMatchObject({ status: 401, code: 'key_revoked' });
      await waitFor('B to refuse a revoked gamma key', async () => (await ok(b, k.key)) === 401, 2000);
      expect(await proxyGet(b.url, PATH, k.key)).toMatchObject({ status: 401, code: 'key_revoked' });
    }
    expect(await ok(b, keep.key)).toBe(200);

    // A tenant manager revoking its own tenant revokes itself too: its next call is refused.
    const deltaManager = await create(rootA, { tenant: 'delta', name: 'delta-manager', permissions: ['keys:manage'] });
    const own = await adminClient(b.adminUrl, deltaManager.key).post('/v1/tenants/delta/keys/revoke');
    expect(own.status, own.text).toBe(200);
    expect([...own.json.revoked].sort()).toEqual([keep.id, deltaManager.id].sort());
    await waitFor('A to refuse the delta keys', async () => (await ok(a, keep.key)) === 401, 2000);
    const after = await adminClient(a.adminUrl, deltaManager.key).get('/v1/keys');
    expect(after.status).toBe(401);
    expect(after.json.code).toBe('key_revoked');
    const audit = await allAudit(rootB);
    expect(audit.filter((e) => e.action === 'key.revoke_all' && e.tenant === 'delta')).toEqual([
      expect.objectContaining({ actor: deltaManager.id, detail: { count: 2 } }),
    ]);
  });
});

describe('revocation and rotation across instances', () => {
  it('a key revoked through the admin API on A is refused by B at once', async () => {
    const k = await create(rootA, { tenant: 'acme', name: 'revoke-me' });
    expect(await ok(b, k.key)).toBe(200); // cached on B now
    const started = Date.now();
    const res = await rootA.post(`/v1/keys/${k.id}/revoke`);
    expect(res.status).toBe(200);
    await waitFor('B to refuse the key', async () => (await ok(b, k.key)) === 401, 1000, 2);
    expect(Date.now() - started).toBeLessThan(1000);
    expect(await proxyGet(b.url, PATH, k.key)).toMatchObject({ status: 401, code: 'key_revoked' });
    expect(await proxyGet(a.url, PATH, k.key)).toMatchObject({ status: 401, code: 'key_revoked' });
    // Revoking again changes nothing and is not an error.
    const again = await rootB.post(`/v1/keys/${k.id}/revoke`);
    expect(again.status).toBe(200);
    expect(again.json.revokedAt).toBe(res.json.revokedAt);
  });

  it('rotation: the old key works during the overlap on both, is refused on both from revokesAt on, then concurrent sweepers revoke it exactly once', async () => {
    const olds = await Promise.all([1, 2, 3].map((i) => create(rootA, { tenant: 'acme', name: `rotating-${i}`, permissions: ['read'] })));
    // Cached on both instances before the rotation: the rotation's push must reach both.
    for (const old of olds) for (const instance of [a, b]) expect(await ok(instance, old.key)).toBe(200);
    const successors = [];
    for (const [i, old] of olds.entries()) successors.push(await rotate(i % 2 === 0 ? rootA : rootB, old.id, { overlapSeconds: 3 }));
    const revokesAt = successors.map((s) => Date.parse(s.record.previous.revokesAt));
    for (const [i, s] of successors.entries()) {
      expect(s.record).toMatchObject({ tenant: 'acme', name: `rotating-${i + 1}`, permissions: ['read'], status: 'active', revokesAt: null });
      expect(s.record.previous).toMatchObject({ id: olds[i]!.id, status: 'active', revokedAt: null });
      // The overlap is counted from the rotation, the moment the successor was created.
      expect(revokesAt[i]! - Date.parse(s.record.createdAt)).toBe(3000);
      expect((await rootB.get(`/v1/keys/${olds[i]!.id}`)).json.revokesAt).toBe(s.record.previous.revokesAt);
    }
    // During the overlap: both keys work on both instances, and a sweep changes nothing.
    await Promise.all([a.keygate.jobs.sweep(), b.keygate.jobs.sweep()]);
    for (const [i, old] of olds.entries()) {
      for (const instance of [a, b]) {
        expect(await ok(instance, old.key)).toBe(200);
        expect(await ok(instance, successors[i]!.key)).toBe(200);
      }
    }
    expect(Date.now()).toBeLessThan(Math.min(...revokesAt)); // all checked inside the overlap

    // At the end of the overlap, with no sweep yet: refused on both, as revoked, at once.
    await sleep(Math.max(0, Math.max(...revokesAt) + 5 - Date.now()));
    for (const [i, old] of olds.entries()) {
      for (const instance of [a, b]) {
        expect(await proxyGet(instance.url, PATH, old.key)).toMatchObject({ status: 401, code: 'key_revoked' });
        expect(await ok(instance, successors[i]!.key)).toBe(200);
      }
      // Listed as revoked (keyState) before any sweep has written it to the store.
      expect((await rootB.get(`/v1/keys/${old.id}`)).json).toMatchObject({ status: 'revoked', revokedAt: null });
    }

    await Promise.all([a.keygate.jobs.sweep(), b.keygate.jobs.sweep(), a.keygate.jobs.sweep(), b.keygate.jobs.sweep()]);
    await Promise.all([a.keygate.jobs.sweep(), b.keygate.jobs.sweep()]);
    for (const old of olds) {
      expect((await rootB.get(`/v1/keys/${old.id}`)).json).toMatchObject({ status: 'revoked', revokedAt: expect.any(String) });
      for (const instance of [a, b]) expect(await proxyGet(instance.url, PATH, old.key)).toMatchObject({ status: 401, code: 'key_revoked' });
    }

    const audit = await allAudit(rootB);
    const revokes = (id: string) => audit.filter((e) => e.action === 'key.revoke' && e.target === id);
    for (const old of olds) {
      expect(revokes(old.id)).toEqual([expect.objectContaining({ actor: 'keygate', tenant: 'acme', detail: expect.objectContaining({ reason: 'rotation overlap ended' }) })]);
      expect(audit.filter((e) => e.action === 'key.rotate' && e.target === old.id)).toEqual([expect.objectContaining({ actor: rootId })]);
    }
    // One key.revoked notification per key, from one instance or the other, never both.
    const notified = [...a.events, ...b.events].filter((e) => e.type === 'key.revoked');
    for (const old of olds) expect(notified.filter((e) => e.target.keyId === old.id)).toHaveLength(1);
  });
});

describe('expiry reminders with two instances', () => {
  it('each key gets exactly one reminder, of the latest due stage, however many sweeps run', async () => {
    const now = Date.now();
    // The (UTC) day of expiry must still be today when the sweeps run.
    let endOfToday = Math.floor(now / DAY) * DAY + DAY - 1000;
    if (endOfToday - now < 15_000) {
      await sleep(endOfToday - now + 2000);
      endOfToday += DAY;
    }
    const expiresToday = Math.min(Date.now() + 3 * 3_600_000, endOfToday);
    const cases = [
      { name: 'expires-20d', expires: new Date(Date.now() + 20 * DAY).toISOString(), stage: '30d' },
      { name: 'expires-5d', expires: new Date(Date.now() + 5 * DAY).toISOString(), stage: '7d' },
      { name: 'expires-today', expires: new Date(expiresToday).toISOString(), stage: 'today' },
    ];
    const keys = [];
    for (const c of cases) keys.push({ ...c, ...(await create(rootA, { tenant: 'remind', name: c.name, expires: c.expires })) });
    // And one that needs no reminder yet.
    const far = await create(rootB, { tenant: 'remind', name: 'expires-90d', expires: '90d' });
    for (const k of keys) expect(k.record.expiresAt).toBe(new Date(k.expires).toISOString());

    const sweeps = () => Promise.all([a.keygate.jobs.sweep(), b.keygate.jobs.sweep()]);
    await Promise.all([sweeps(), sweeps(), sweeps()]);
    await sweeps();
    await Promise.all([sweeps(), sweeps()]);

    const reminders = [...a.events, ...b.events].filter((e) => e.type === 'key.expiring' && e.tenant === 'remind');
    for (const k of keys) {
      const mine = reminders.filter((e) => e.target.keyId === k.id);
      expect(mine, k.name).toHaveLength(1);
      expect(mine[0]!.target).toMatchObject({ reminder: k.stage, name: k.name, prefix: k.record.prefix, expiresAt: Date.parse(k.expires) });
      expect(mine[0]!.actor).toBeNull();
    }
    expect(reminders.filter((e) => e.target.keyId === far.id)).toEqual([]);
    expect(reminders).toHaveLength(3);
    expect(JSON.stringify(reminders)).not.toMatch(/kg_remind_[0-9a-f]{64}/);
  });
});

describe('last used and audit on Redis', () => {
  it('requests through B are written at B\'s shutdown flush and listed by A', async () => {
    const k = await create(rootA, { tenant: 'usage', name: 'used-on-b' });
    const unused = await create(rootA, { tenant: 'usage', name: 'never-used' });
    const before = Date.now();
    for (let i = 0; i < 3; i++) expect(await ok(b, k.key)).toBe(200);
    const after = Date.now();
    // Only noted in B's memory so far.
    expect((await rootA.get(`/v1/keys/${k.id}`)).json.lastUsedAt).toBeNull();
    await b.keygate.jobs.stop();
    const list = await rootA.get('/v1/keys?tenant=usage');
    const used = list.json.keys.find((r: any) => r.id === k.id);
    expect(used.lastUsedAt).not.toBeNull();
    expect(Date.parse(used.lastUsedAt)).toBeGreaterThanOrEqual(before);
    expect(Date.parse(used.lastUsedAt)).toBeLessThanOrEqual(after);
    expect(list.json.keys.find((r: any) => r.id === unused.id).lastUsedAt).toBeNull();
  });

  it('pages the audit log newest first across both instances\' writes; a tenant manager sees its tenant only', async () => {
    const pagingManager = await create(rootA, { tenant: 'paging', name: 'paging-manager', permissions: ['keys:manage'] });
    const mgr = adminClient(a.adminUrl, pagingManager.key);
    // Alternate instances: the order must still be the order they happened in.
    const made = [];
    for (let i = 0; i < 4; i++) made.push(await create(i % 2 === 0 ? rootA : rootB, { tenant: 'paging', name: `p${i}` }));
    await rootB.patch(`/v1/keys/${made[0]!.id}`, { name: 'p0-renamed' });
    await adminClient(b.adminUrl, pagingManager.key).post(`/v1/keys/${made[1]!.id}/revoke`);
    await create(rootA, { tenant: 'other', name: 'not-for-paging' });

    const newest = await rootB.get('/v1/audit?limit=3');
    expect(newest.status).toBe(200);
    expect(newest.json.entries.map((e: any) => [e.action, e.tenant, e.target])).toEqual([
      ['key.create', 'other', expect.any(String)],
      ['key.revoke', 'paging', made[1]!.id],
      ['key.rename', 'paging', made[0]!.id],
    ]);
    expect(newest.json.next).toMatch(/^\d+$/);

    // Pages of 2 from the platform admin: the same entries as one big page, no gaps, no repeats.
    const whole = (await rootA.get('/v1/audit?limit=500')).json.entries;
    const paged: any[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res = await (pages % 2 === 0 ? rootA : rootB).get(`/v1/audit?limit=2${cursor === null ? '' : `&before=${cursor}`}`);
      expect(res.status, res.text).toBe(200);
      expect(res.json.entries.length).toBeLessThanOrEqual(2);
      paged.push(...res.json.entries);
      cursor = res.json.next;
      pages++;
    } while (cursor !== null && pages < 1000);
    expect(paged.map((e) => e.id)).toEqual(whole.map((e: any) => e.id));
    expect(new Set(paged.map((e) => e.id)).size).toBe(paged.length);
    for (let i = 1; i < paged.length; i++) expect(Date.parse(paged[i - 1].at)).toBeGreaterThanOrEqual(Date.parse(paged[i].at));
    expect(paged.some((e) => e.tenant === 'acme')).toBe(true);

    // The tenant manager: its tenant only, newest first, paged the same way.
    const mine: any[] = [];
    cursor = null;
    do {
      const res = await mgr.get(`/v1/audit?limit=2${cursor === null ? '' : `&before=${cursor}`}`);
      expect(res.status, res.text).toBe(200);
      mine.push(...res.json.entries);
      cursor = res.json.next;
    } while (cursor !== null);
    expect(mine.every((e) => e.tenant === 'paging')).toBe(true);
    expect(mine.map((e) => [e.action, e.target])).toEqual([
      ['key.revoke', made[1]!.id],
      ['key.rename', made[0]!.id],
      ['key.create', made[3]!.id],
      ['key.create', made[2]!.id],
      ['key.create', made[1]!.id],
      ['key.create', made[0]!.id],
      ['key.create', pagingManager.id],
    ]);
    expect(mine[0].actor).toBe(pagingManager.id);
    expect(mine[1].actor).toBe(rootId);
    expect(mine[1].detail).toMatchObject({ from: 'p0', name: 'p0-renamed' });
  });
});

describe('no key leaks', () => {
  it('no admin response after creation, and no log line of either instance, holds a full key or its hash', () => {
    const hasher = testHasher;
    expect(fullKeys.length).toBeGreaterThan(20);
    expect(replies.length).toBeGreaterThan(50);
    const secrets = fullKeys.flatMap((k) => [k, k.slice(-64), hasher(k)]);
    for (const reply of replies) {
      let text = reply.text;
      if (mayCarryKey(reply)) {
        // The one place a key is returned: the `key` field of its own creation, nowhere else.
        expect(fullKeys).toContain(reply.json.key);
        const { key, ...rest } = reply.json;
        text = JSON.stringify(rest);
        expect(text).not.toContain(key);
      }
      for (const s of secrets) expect(text.includes(s), `${reply.method} ${reply.url} leaks a key`).toBe(false);
      expect(text).not.toMatch(/kg_[a-z0-9-]+_[0-9a-f]{64}/);
    }
    for (const [name, instance] of [['A', a], ['B', b]] as const) {
      const logs = instance.logs();
      expect(logs.length).toBeGreaterThan(1000);
      for (const s of secrets) expect(logs.includes(s), `instance ${name}'s logs leak a key`).toBe(false);
      expect(logs).not.toMatch(/kg_[a-z0-9-]+_[0-9a-f]{64}/);
      expect(logs).not.toContain(TEST_PEPPER);
    }
  });
});

/**
 * The hardening issue's three classes, over HTTP, on the embedded store and on Redis:
 *
 * - delegation is bounded by what the delegating key holds: a tenant `keys:manage` key
 *   creates or rotates no key with a permission it lacks, directly or through a group;
 * - admin-role keys are managed by platform admins only: a system-tenant `keys:manage` key
 *   cannot revoke, rename, rotate or revoke-all them;
 * - every key list and record (admin API, CLI table and --json) shows keyState's status:
 *   an expired key is `expired`, a key past its rotation's `revokesAt` is `revoked`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI_CALLER } from '../../src/keys/service.ts';
import { type AdminClient, adminClient, type AdminTestKeygate, proxyGet, schemaProblems, shiftedService, startAdminKeygate } from '../helpers/admin.ts';
import { runKeygate, tempDir, type CliResult, type TempDir } from '../helpers/process.ts';
import { startRedisServer, type RedisServer } from '../helpers/redis-server.ts';
import { startUpstream, type TestUpstream } from '../helpers/upstream.ts';
import { TEST_PEPPER } from '../helpers/pepper.ts';

const DAY = 86_400_000;

describe.each(['embedded', 'redis'] as const)('on the %s store', (kind) => {
  let redis: RedisServer | undefined;
  let upstream: TestUpstream;
  let dir: TempDir;
  let t: AdminTestKeygate;
  let cliConfig: string;
  let root: AdminClient;
  let rootId: string;

  beforeAll(async () => {
    upstream = await startUpstream();
    dir = tempDir('keygate-delegation-');
    if (kind === 'redis') redis = await startRedisServer();
    const store = redis ? { kind: 'redis' as const, redis: { url: redis.url, commandTimeoutMs: 1000 } } : { path: `${dir.path}/keygate.db` };
    t = await startAdminKeygate({
      store,
      permissionGroups: { billing: ['billing:admin', 'read'], readers: ['read'], managers: ['keys:manage', 'read'] },
      routes: [
        { name: 'billing', pathPrefix: '/billing', upstream: upstream.url, auth: { permissions: ['billing:admin'] } },
        { name: 'api', pathPrefix: '/api', upstream: upstream.url, auth: { permissions: ['read'] } },
      ],
      // Sweeps only when a test asks for one: a rotated key past its revokesAt stays `active` in the store.
      lifecycle: { sweepMs: 3_600_000, lastUsedFlushMs: 3_600_000 },
    });
    // The CLI on the same store, as an operator runs it.
    cliConfig = dir.writeYaml('keygate.yaml', { store: redis ? { kind: 'redis', redis: { url: redis.url } } : { kind: 'embedded', path: `${dir.path}/keygate.db` } });
    const created = await t.keygate.service.create(CLI_CALLER, { tenant: 'system', role: 'admin', name: 'root' });
    root = adminClient(t.adminUrl, created.key);
    rootId = created.record.id;
  });

  afterAll(async () => {
    await t?.stop();
    await upstream?.close();
    await redis?.stop();
    dir?.remove();
  });

  async function createOk(client: AdminClient, body: Record<string, unknown>): Promise<{ key: string; id: string; record: any }> {
    const res = await client.post('/v1/keys', body);
    expect(res.status, res.text).toBe(201);
    return { key: res.json.key, id: res.json.id, record: res.json };
  }

  function expectForbidden(res: { status: number; headers: Headers; json: any; text: string }, ...named: string[]): void {
    expect(res.status, res.text).toBe(403);
    expect(res.headers.get('content-type')).toBe('application/problem+json');
    expect(res.json).toMatchObject({ type: 'urn:keygate:problem:forbidden', status: 403, code: 'forbidden' });
    for (const word of named) expect(res.json.detail).toContain(word);
  }

  async function names(client: AdminClient, tenant: string, revoked = false): Promise<string[]> {
    const res = await client.get(`/v1/keys?tenant=${tenant}${revoked ? '&revoked=true' : ''}`);
    expect(res.status, res.text).toBe(200);
    return res.json.keys.map((k: { name: string }) => k.name).sort();
  }

  function cli(...args: string[]): Promise<CliResult> {
    // Generous: a CLI process starts a whole Node on a machine that may be busy.
    return runKeygate([...args, '--config', cliConfig], { env: { KEYGATE_PEPPER: TEST_PEPPER }, timeoutMs: 30_000 });
  }

  describe('delegation is bounded by what the delegating key holds', () => {
    it('a tenant keys:manage key cannot create a key with a permission it lacks; a subset is fine, and stays a subset at the proxy', async () => {
      const mgr = adminClient(t.adminUrl, (await createOk(root, { tenant: 'acme', name: 'acme manager', permissions: ['keys:manage', 'read'] })).key);
      const widened = await mgr.post('/v1/keys', { name: 'escalated', permissions: ['read', 'billing:admin'] });
      expectForbidden(widened, 'billing:admin');
      expect(widened.json.detail).not.toMatch(/lacks.*\bread\b/);
      expect(await names(root, 'acme', true)).toEqual(['acme manager']);

      const subset = await createOk(mgr, { name: 'reader', permissions: ['read'] });
      expect(subset.record).toMatchObject({ tenant: 'acme', permissions: ['read'], status: 'active' });
      expect((await proxyGet(t.url, '/api/x', subset.key)).status).toBe(200);
      expect(await proxyGet(t.url, '/billing/x', subset.key)).toMatchObject({ status: 403, code: 'forbidden_permission' });
      // keys:manage is held, so it may be handed on; a group whose members are all held is fine too.
      await createOk(mgr, { name: 'co-manager', permissions: ['keys:manage'] });
      await createOk(mgr, { name: 'readers', group: 'readers' });
    });

    it('…nor through a permission group whose members it lacks', async () => {
      const mgr = adminClient(t.adminUrl, (await createOk(root, { tenant: 'initech', name: 'initech manager', permissions: ['keys:manage', 'read'] })).key);
      const res = await mgr.post('/v1/keys', { name: 'via group', group: 'billing' });
      expectForbidden(res, 'billing:admin', '"billing"');
      expect(await names(root, 'initech', true)).toEqual(['initech manager']);
    });

    it('what the caller holds through its own group counts, and nothing more', async () => {
      const mgr = adminClient(t.adminUrl, (await createOk(root, { tenant: 'hooli', name: 'group manager', group: 'managers' })).key);
      await createOk(mgr, { name: 'reader', permissions: ['read'] });
      expectForbidden(await mgr.post('/v1/keys', { name: 'biller', permissions: ['billing:admin'] }), 'billing:admin');
      expect(await names(root, 'hooli', true)).toEqual(['group manager', 'reader']);
    });

    it('rotate cannot widen: a key with a permission the caller lacks is not rotated by it (successor = predecessor, no more than the caller)', async () => {
      const mgr = adminClient(t.adminUrl, (await createOk(root, { tenant: 'globex', name: 'globex manager', permissions: ['keys:manage', 'read'] })).key);
      const biller = await createOk(root, { tenant: 'globex', name: 'biller', permissions: ['read', 'billing:admin'] });
      const grouped = await createOk(root, { tenant: 'globex', name: 'grouped biller', group: 'billing' });
      for (const k of [biller, grouped]) {
        const res = await mgr.post(`/v1/keys/${k.id}/rotate`, { overlapSeconds: 0 });
        expectForbidden(res, 'billing:admin');
        expect(res.json?.key).toBeUndefined();
        // Untouched: still active, still reaches the route, no successor.
        expect((await root.get(`/v1/keys/${k.id}`)).json).toMatchObject({ status: 'active', revokesAt: null });
        expect((await proxyGet(t.url, '/billing/x', k.key)).status).toBe(200);
      }
      expect(await names(root, 'globex', true)).toEqual(['biller', 'globex manager', 'grouped biller']);
      // A key within the caller's permissions rotates, and its successor has exactly its predecessor's.
      const reader = await createOk(root, { tenant: 'globex', name: 'reader', permissions: ['read'] });
      const rotated = await mgr.post(`/v1/keys/${reader.id}/rotate`, { overlapSeconds: 0 });
      expect(rotated.status, rotated.text).toBe(201);
      expect(rotated.json).toMatchObject({ permissions: ['read'], group: null, role: 'api-user' });
      expect(await proxyGet(t.url, '/billing/x', rotated.json.key)).toMatchObject({ status: 403, code: 'forbidden_permission' });
      // A platform admin is not bound by it.
      expect((await root.post(`/v1/keys/${biller.id}/rotate`, { overlapSeconds: 0 })).status).toBe(201);
    });
  });

  describe('admin-role keys are managed by platform admins only', () => {
    let sysMgr: AdminClient;
    let sysMgrKey: string;
    let other: { key: string; id: string };
    let target: { key: string; id: string };

    beforeAll(async () => {
      const m = await createOk(root, { tenant: 'system', name: 'system manager', permissions: ['keys:manage'] });
      sysMgrKey = m.key;
      sysMgr = adminClient(t.adminUrl, m.key);
      other = await createOk(root, { tenant: 'system', name: 'system reader', permissions: ['read'] });
      target = await createOk(root, { tenant: 'system', name: 'second admin', role: 'admin' });
    });

    it('a system-tenant keys:manage key cannot revoke, rename, rotate or create admin keys, and the admin key still works', async () => {
      expectForbidden(await sysMgr.post(`/v1/keys/${target.id}/revoke`), 'platform admin');
      expectForbidden(await sysMgr.patch(`/v1/keys/${target.id}`, { name: 'hijacked' }), 'platform admin');
      expectForbidden(await sysMgr.post(`/v1/keys/${target.id}/rotate`, { overlapSeconds: 0 }), 'platform admin');
      expectForbidden(await sysMgr.post('/v1/keys', { name: 'escalate', role: 'admin' }), 'platform admin');
      expect((await root.get(`/v1/keys/${target.id}`)).json).toMatchObject({ name: 'second admin', status: 'active', revokedAt: null, revokesAt: null });
      expect((await adminClient(t.adminUrl, target.key).get('/v1/keys?tenant=globex')).status).toBe(200);
      // Its own tenant's api-user keys it still manages.
      expect((await sysMgr.patch(`/v1/keys/${other.id}`, { name: 'system reader 2' })).status).toBe(200);
    });

    it('…nor revoke all of the system tenant: refused as a whole, nothing revoked', async () => {
      const res = await sysMgr.post('/v1/tenants/system/keys/revoke');
      expectForbidden(res, target.id, rootId, 'nothing was revoked');
      expect((await adminClient(t.adminUrl, target.key).get('/v1/keys')).status).toBe(200);
      expect((await root.get('/v1/keys')).status).toBe(200);
      expect((await sysMgr.get('/v1/keys')).status).toBe(200);
      expect((await proxyGet(t.url, '/api/x', other.key)).status).toBe(200);
      const revoked = (await root.get('/v1/keys?tenant=system&revoked=true')).json.keys.filter((k: { status: string }) => k.status !== 'active');
      expect(revoked).toEqual([]);
      // The audit log has no revoke-all either.
      const audit = (await root.get('/v1/audit?limit=500')).json.entries;
      expect(audit.filter((e: { action: string }) => e.action === 'key.revoke_all')).toEqual([]);
    });

    it('a platform admin can rename, rotate and revoke admin keys, and revoke all of the system tenant', async () => {
      expect((await root.patch(`/v1/keys/${target.id}`, { name: 'renamed admin' })).json).toMatchObject({ name: 'renamed admin' });
      const rotated = await root.post(`/v1/keys/${target.id}/rotate`, { overlapSeconds: 0 });
      expect(rotated.status, rotated.text).toBe(201);
      expect(rotated.json).toMatchObject({ role: 'admin', tenant: 'system' });
      const successor = adminClient(t.adminUrl, rotated.json.key);
      expect((await successor.post(`/v1/keys/${rotated.json.id}/revoke`)).json).toMatchObject({ status: 'revoked' });
      // Last: this revokes root too. A fresh platform admin from the CLI (the operator) does it.
      const operatorMade = await t.keygate.service.create(CLI_CALLER, { tenant: 'system', role: 'admin', name: 'break glass' });
      const all = await adminClient(t.adminUrl, operatorMade.key).post('/v1/tenants/system/keys/revoke');
      expect(all.status, all.text).toBe(200);
      expect(all.json.revoked).toEqual(expect.arrayContaining([rootId, operatorMade.record.id]));
      expect((await proxyGet(t.url, '/api/x', other.key)).code).toBe('key_revoked');
      expect((await adminClient(t.adminUrl, sysMgrKey).get('/v1/keys')).status).toBe(401);
    });
  });

  describe('every list shows the status the proxy acts on (keyState)', () => {
    let expired: { key: string; id: string };
    let rotatedOut: { key: string; id: string };
    let live: { key: string; id: string };
    /** A platform admin of its own: the previous group revoked all of the system tenant. */
    let plat: AdminClient;

    beforeAll(async () => {
      plat = adminClient(t.adminUrl, (await t.keygate.service.create(CLI_CALLER, { tenant: 'system', role: 'admin', name: 'lister' })).key);
      // The service refuses past dates: create with a clock 31 days back, for 30 days.
      const e = await shiftedService(t, -31 * DAY).create(CLI_CALLER, { tenant: 'aging', name: 'expired', permissions: ['read'], expires: '30d' });
      expired = { key: e.key, id: e.record.id };
      // Rotated a minute ago with a 1-second overlap: past its revokesAt, and no sweep has run.
      const r = await t.keygate.service.create(CLI_CALLER, { tenant: 'aging', name: 'rotated out', permissions: ['read'] });
      rotatedOut = { key: r.key, id: r.record.id };
      await shiftedService(t, -60_000).rotate(CLI_CALLER, r.record.id, 1);
      const l = await t.keygate.service.create(CLI_CALLER, { tenant: 'aging', name: 'live', permissions: ['read'] });
      live = { key: l.key, id: l.record.id };
    });

    it('admin API: an expired key is `expired`, as the proxy answers key_expired, and conforms to /openapi.json', async () => {
      expect(await proxyGet(t.url, '/api/x', expired.key)).toMatchObject({ status: 401, code: 'key_expired' });
      const list = await plat.get('/v1/keys?tenant=aging');
      const byId = new Map(list.json.keys.map((k: { id: string; status: string }) => [k.id, k.status]));
      expect(byId.get(expired.id)).toBe('expired');
      expect(byId.get(live.id)).toBe('active');
      expect((await plat.get(`/v1/keys/${expired.id}`)).json).toMatchObject({ status: 'expired', revokedAt: null });
      const openapi = (await plat.get('/openapi.json')).json;
      const expiredRecord = list.json.keys.find((k: { id: string }) => k.id === expired.id);
      expect(schemaProblems({ $ref: '#/components/schemas/Key' }, expiredRecord, openapi.components.schemas)).toEqual([]);
    });

    it('admin API: a key past its rotation revokesAt is `revoked` (listed only with revoked=true), as the proxy answers key_revoked, and cannot be rotated again', async () => {
      expect(await proxyGet(t.url, '/api/x', rotatedOut.key)).toMatchObject({ status: 401, code: 'key_revoked' });
      expect((await plat.get('/v1/keys?tenant=aging')).json.keys.map((k: { id: string }) => k.id)).not.toContain(rotatedOut.id);
      const all = (await plat.get('/v1/keys?tenant=aging&revoked=true')).json.keys;
      expect(all.find((k: { id: string }) => k.id === rotatedOut.id)).toMatchObject({ status: 'revoked', revokedAt: null, revokesAt: expect.any(String) });
      expect((await plat.get(`/v1/keys/${rotatedOut.id}`)).json).toMatchObject({ status: 'revoked' });
      const again = await plat.post(`/v1/keys/${rotatedOut.id}/rotate`, { overlapSeconds: 0 });
      expect(again.status, again.text).toBe(409);
      expect(again.json).toMatchObject({ code: 'conflict' });
    });

    it('GET /v1/tenants counts by keyState', async () => {
      const tenants = (await plat.get('/v1/tenants')).json.tenants;
      // live, the rotated key's successor; expired; rotated out.
      expect(tenants.find((s: { tenant: string }) => s.tenant === 'aging')).toEqual({ tenant: 'aging', active: 2, expired: 1, revoked: 1 });
    });

    it('rotating an expired key needs an expiry for its successor (it would be born expired)', async () => {
      const res = await plat.post(`/v1/keys/${expired.id}/rotate`, { overlapSeconds: 0 });
      expect(res.status, res.text).toBe(422);
      expect(res.json.detail).toContain('expires');
      expect((await plat.get('/v1/keys?tenant=aging&revoked=true')).json.keys).toHaveLength(4);
    });

    it('CLI keys list (--json and table) shows expired and revoked the same way', { timeout: 120_000 }, async () => {
      // One at a time: three Node processes at once can starve each other on two cores.
      const json = await cli('keys', 'list', '--tenant', 'aging', '--json');
      const withRevoked = await cli('keys', 'list', '--tenant', 'aging', '--revoked', '--json');
      const table = await cli('keys', 'list', '--tenant', 'aging', '--revoked');
      for (const r of [json, withRevoked, table]) expect(r.code, r.stderr).toBe(0);
      const statuses = (out: string) => new Map((JSON.parse(out) as { id: string; status: string }[]).map((k) => [k.id, k.status]));
      const active = statuses(json.stdout);
      expect(active.get(expired.id)).toBe('expired');
      expect(active.get(live.id)).toBe('active');
      expect(active.has(rotatedOut.id)).toBe(false);
      expect(statuses(withRevoked.stdout).get(rotatedOut.id)).toBe('revoked');
      const row = (id: string) => table.stdout.split('\n').find((line) => line.startsWith(id)) ?? '';
      expect(row(expired.id)).toMatch(/\bexpired\b/);
      expect(row(expired.id)).not.toMatch(/\bactive\b/);
      expect(row(rotatedOut.id)).toMatch(/\brevoked\b/);
      expect(row(rotatedOut.id)).not.toMatch(/active until/);
      expect(row(live.id)).toMatch(/\bactive\b/);
    });
  });
});

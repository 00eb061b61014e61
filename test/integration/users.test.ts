/**
 * Users and tenant permission groups against real keygates: two instances sharing one
 * redis-server (a change made through A's admin API reaches B through the revocation feed,
 * caches warm on both), and the embedded store (a change written by another process — the
 * CLI — reaches a running server through the polled change log).
 *
 * What a key created for an existing user may do is its user's group at request time: a
 * changed group, a user moved to another group and a disabled user reach every instance
 * without any key being touched; hostile callers (another tenant, a tenant admin reaching
 * beyond its own permissions, malformed bodies) are refused with the stable codes.
 */
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UserService } from '../../src/users/service.ts';
import { EmbeddedStore } from '../../src/store/embedded/store.ts';
import { CLI_CALLER } from '../../src/keys/service.ts';
import { adminClient, schemaProblems, type AdminClient } from '../helpers/admin.ts';
import { expectProblem, pooledGets, waitFor } from '../helpers/http.ts';
import { startTestKeygate, type TestKeygate } from '../helpers/keygate.ts';
import { redisStore, startRedisPair, type RedisPair } from '../helpers/redis-fixture.ts';
import { startUpstream, type TestUpstream } from '../helpers/upstream.ts';
import type { RawConfig } from '../../src/config/schema.ts';

const config = (store: RawConfig['store'], upstream: TestUpstream): RawConfig => ({
  store,
  // Valid keys cached for a minute: a change must be pushed to be seen.
  cache: { maxAgeMs: 60_000 },
  limits: { failedAuth: { max: 0 } },
  permissionGroups: { readers: ['read'] },
  routes: [
    { name: 'read', pathPrefix: '/read', upstream: upstream.url, auth: { permissions: ['read'] } },
    { name: 'write', pathPrefix: '/write', upstream: upstream.url, auth: { permissions: ['write'] } },
  ],
  log: { level: 'warn', access: false },
});

describe('users and groups on two instances sharing Redis', () => {
  let upstream: TestUpstream;
  let pair: RedisPair<TestKeygate>;
  let adminA: AdminClient;
  let adminB: AdminClient;
  let aliceKey: string;
  const gets = pooledGets(4);

  beforeAll(async () => {
    upstream = await startUpstream();
    pair = await startRedisPair<TestKeygate>({ config: (store) => config(store, upstream) });
    const admin = await pair.a.keys.create({ tenant: 'system', name: 'platform', role: 'admin' });
    adminA = adminClient(pair.a.adminUrl, admin.key);
    adminB = adminClient(pair.b.adminUrl, admin.key);
  });

  afterAll(async () => {
    await gets.close();
    await pair?.stop();
    await upstream?.close();
  });

  it('a key created for an existing user acts as it: its group decides, the upstream is told the user', async () => {
    expect((await adminA.post('/v1/groups', { tenant: 'acme', name: 'writers', permissions: ['write', 'read'] })).status).toBe(201);
    const user = await adminA.post('/v1/users', { tenant: 'acme', name: 'alice', displayName: 'Alice A.', group: 'readers' });
    expect(user.status).toBe(201);
    expect(user.json).toMatchObject({ tenant: 'acme', name: 'alice', displayName: 'Alice A.', group: 'readers', disabled: false, disabledAt: null });
    const created = await adminA.post('/v1/keys', { tenant: 'acme', name: 'alice-agent', user: 'alice' });
    expect(created.status).toBe(201);
    expect(created.json).toMatchObject({ user: 'alice', permissionsFrom: 'user', permissions: [], group: null });
    aliceKey = created.json.key;
    // A name that is not a user is only a label, as before.
    const label = await adminA.post('/v1/keys', { tenant: 'acme', name: 'bob-script', user: 'bob', permissions: ['read'] });
    expect(label.json).toMatchObject({ user: 'bob', permissionsFrom: 'key', permissions: ['read'] });

    for (const t of [pair.a, pair.b]) {
      expect((await gets.get(t.url, '/read/x', aliceKey)).status).toBe(200);
      expect(await gets.get(t.url, '/write/x', aliceKey)).toEqual({ status: 403, code: 'forbidden_permission' });
    }
    const seen = upstream.received.at(-1)!;
    expect(seen.headers['x-auth-user']).toBe('alice');
    expect(seen.headers['x-auth-permissions']).toBe('read');
    const shown = await adminB.get('/v1/users/acme/alice');
    expect(shown.status).toBe(200);
    expect(shown.json.keys.map((k: { name: string; permissionsFrom: string }) => [k.name, k.permissionsFrom])).toEqual([['alice-agent', 'user']]);
  });

  it('moving the user to another group reaches the other instance as soon as the call has answered', async () => {
    // Both caches hold alice's key (previous test); the change is made through A.
    const moved = await adminA.patch('/v1/users/acme/alice', { group: 'writers' });
    expect(moved.status).toBe(200);
    expect(moved.json.group).toBe('writers');
    // The instance that wrote it applies it before answering.
    expect((await gets.get(pair.a.url, '/write/x', aliceKey)).status).toBe(200);
    const started = performance.now();
    await waitFor(async () => (await gets.get(pair.b.url, '/write/x', aliceKey)).status === 200, 1000, 1);
    // Pushed, not polled and not waiting for the minute-long cache age.
    expect(performance.now() - started).toBeLessThan(500);
    expect(upstream.received.at(-1)!.headers['x-auth-permissions']).toBe('read,write');
  });

  it("changing a tenant group's permissions changes what its users' keys may do on every instance", async () => {
    expect((await adminB.patch('/v1/groups/acme/writers', { permissions: ['read'] })).status).toBe(200);
    expect(await gets.get(pair.b.url, '/write/x', aliceKey)).toEqual({ status: 403, code: 'forbidden_permission' });
    await waitFor(async () => (await gets.get(pair.a.url, '/write/x', aliceKey)).status === 403, 1000, 1);
    expect((await adminA.patch('/v1/groups/acme/writers', { permissions: ['read', 'write'] })).status).toBe(200);
    await waitFor(async () => (await gets.get(pair.b.url, '/write/x', aliceKey)).status === 200, 1000, 1);
  });

  it('disabling the user stops all its keys on every instance (401 user_disabled); enabling brings them back', async () => {
    const disabled = await adminB.patch('/v1/users/acme/alice', { disabled: true });
    expect(disabled.status).toBe(200);
    expect(disabled.json.disabled).toBe(true);
    expect(await gets.get(pair.b.url, '/read/x', aliceKey)).toEqual({ status: 401, code: 'user_disabled' });
    await waitFor(async () => (await gets.get(pair.a.url, '/read/x', aliceKey)).code === 'user_disabled', 1000, 1);
    // No key for a disabled user, and its keys cannot be rotated into working ones.
    expectProblem(await adminA.post('/v1/keys', { tenant: 'acme', name: 'more', user: 'alice' }), 409, 'conflict');
    const enabled = await adminA.patch('/v1/users/acme/alice', { disabled: false });
    expect(enabled.json).toMatchObject({ disabled: false, disabledAt: null });
    await waitFor(async () => (await gets.get(pair.b.url, '/read/x', aliceKey)).status === 200, 1000, 1);
    expect((await gets.get(pair.a.url, '/read/x', aliceKey)).status).toBe(200);
  });

  it('a change made while an instance is cut off from the channel is replayed from the log when it is back', async () => {
    // Every subscriber connection dropped: B misses the message of the change below.
    await pair.raw.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
    expect((await adminA.patch('/v1/users/acme/alice', { group: 'readers' })).status).toBe(200);
    await waitFor(async () => (await gets.get(pair.b.url, '/write/x', aliceKey)).status === 403, 3000, 5);
    await waitFor(() => pair.b.keygate.store.feedHealthy, 3000);
    expect((await adminA.patch('/v1/users/acme/alice', { group: 'writers' })).status).toBe(200);
    await waitFor(async () => (await gets.get(pair.b.url, '/write/x', aliceKey)).status === 200, 1000, 1);
  });

  it('an instance started after the changes reads them from the store', async () => {
    const late = await startTestKeygate(config(redisStore(pair.redis), upstream));
    try {
      expect((await gets.get(late.url, '/write/x', aliceKey)).status).toBe(200);
      expect(upstream.received.at(-1)!.headers['x-auth-user']).toBe('alice');
    } finally {
      await late.stop();
    }
  });

  it('answers are what /openapi.json documents', async () => {
    const openapi = (await adminA.get('/openapi.json')).json;
    const conforms = (id: string, value: unknown) => expect(schemaProblems({ $ref: `#/components/schemas/${id}` }, value, openapi.components.schemas), id).toEqual([]);
    conforms('UserWithKeys', (await adminA.get('/v1/users/acme/alice')).json);
    for (const u of (await adminA.get('/v1/users')).json.users) conforms('User', u);
    const groups = (await adminA.get('/v1/groups?tenant=acme')).json.groups;
    expect(groups.map((g: { name: string; source: string }) => `${g.source}:${g.name}`)).toEqual(['config:readers', 'tenant:writers']);
    for (const g of groups) conforms('Group', g);
    for (const path of ['/v1/users', '/v1/users/{tenant}/{name}', '/v1/groups', '/v1/groups/{tenant}/{name}']) expect(openapi.paths[path], path).toBeDefined();
  });

  it('every change is audited with who made it', async () => {
    const audit = await adminA.get('/v1/audit?limit=100');
    const actions = audit.json.entries.map((e: { action: string }) => e.action);
    for (const action of ['group.create', 'user.create', 'user.update', 'group.update']) expect(actions).toContain(action);
    const disable = audit.json.entries.find((e: { action: string; detail: { disabled?: boolean } }) => e.action === 'user.update' && e.detail.disabled === true);
    expect(disable).toMatchObject({ tenant: 'acme', target: 'user:alice', actor: expect.stringMatching(/^key_/) });
  });

  describe('hostile callers', () => {
    let other: AdminClient;
    let narrow: AdminClient;

    beforeAll(async () => {
      const globex = await pair.a.keys.create({ tenant: 'globex', name: 'globex-admin', permissions: ['keys:manage', 'read', 'write'] });
      other = adminClient(pair.b.adminUrl, globex.key);
      // A tenant admin of acme that holds read only.
      const acmeNarrow = await pair.a.keys.create({ tenant: 'acme', name: 'acme-admin', permissions: ['keys:manage', 'read'] });
      narrow = adminClient(pair.a.adminUrl, acmeNarrow.key);
    });

    it("another tenant's admin sees nothing of acme's users and groups and cannot change them (404, 403 on create)", async () => {
      expect((await other.get('/v1/users?tenant=acme')).json).toEqual({ users: [] });
      expect((await other.get('/v1/users')).json).toEqual({ users: [] });
      expect((await other.get('/v1/groups?tenant=acme')).json.groups.every((g: { tenant: string | null }) => g.tenant === null)).toBe(true);
      expectProblem(await other.get('/v1/users/acme/alice'), 404, 'not_found');
      expectProblem(await other.patch('/v1/users/acme/alice', { disabled: true }), 404, 'not_found');
      expectProblem(await other.patch('/v1/groups/acme/writers', { permissions: [] }), 404, 'not_found');
      expectProblem(await other.call('DELETE', '/v1/groups/acme/writers'), 404, 'not_found');
      expectProblem(await other.post('/v1/users', { tenant: 'acme', name: 'mallory', group: 'readers' }), 403, 'forbidden');
      expectProblem(await other.post('/v1/groups', { tenant: 'acme', name: 'evil', permissions: ['read'] }), 403, 'forbidden');
      // …and a key of its own tenant named after acme's user is only a label there.
      const label = await other.post('/v1/keys', { name: 'x', user: 'alice', permissions: ['read'] });
      expect(label.json).toMatchObject({ tenant: 'globex', permissionsFrom: 'key' });
      expect((await gets.get(pair.a.url, '/read/x', aliceKey)).status).toBe(200);
    });

    it('a tenant admin grants nothing it does not hold: not through a group, a move, an enable or a key for a user', async () => {
      expectProblem(await narrow.post('/v1/groups', { name: 'escalate', permissions: ['read', 'write'] }), 403, 'forbidden');
      expectProblem(await narrow.post('/v1/users', { name: 'carol', group: 'writers' }), 403, 'forbidden');
      expect((await narrow.post('/v1/users', { name: 'carol', group: 'readers' })).status).toBe(201);
      expectProblem(await narrow.patch('/v1/users/acme/carol', { group: 'writers' }), 403, 'forbidden');
      expectProblem(await narrow.patch('/v1/groups/acme/writers', { permissions: ['read', 'write', 'admin'] }), 403, 'forbidden');
      expectProblem(await narrow.post('/v1/keys', { name: 'as-alice', user: 'alice' }), 403, 'forbidden');
      // Disabling only takes away: allowed. Enabling gives back writers: refused.
      expect((await narrow.patch('/v1/users/acme/alice', { disabled: true })).status).toBe(200);
      expectProblem(await narrow.patch('/v1/users/acme/alice', { disabled: false }), 403, 'forbidden');
      expect((await adminA.patch('/v1/users/acme/alice', { disabled: false })).status).toBe(200);
      // What it may do, it does, in its own tenant only.
      expect((await narrow.get('/v1/users')).json.users.every((u: { tenant: string }) => u.tenant === 'acme')).toBe(true);
    });

    it('bad input gets 422 naming the field, conflicts 409, never a 500', async () => {
      const cases: [string, string, unknown, number, string, string?][] = [
        ['POST', '/v1/users', { tenant: 'acme', name: ' lead', group: 'readers' }, 422, 'validation_failed', 'name'],
        ['POST', '/v1/users', { tenant: 'acme', name: 'x', group: 'no such!' }, 422, 'validation_failed', 'group'],
        ['POST', '/v1/users', { tenant: 'acme', name: 'x', group: 'nosuch' }, 422, 'validation_failed', 'group'],
        ['POST', '/v1/users', { tenant: 'acme', name: 'x', group: 'readers', admin: true }, 422, 'validation_failed'],
        ['POST', '/v1/users', { name: 'x', group: 'readers' }, 422, 'validation_failed', 'tenant'],
        ['POST', '/v1/users', { tenant: 'acme', name: 'alice', group: 'readers' }, 409, 'conflict'],
        ['POST', '/v1/users', { tenant: 'acme', name: 'x', displayName: 'a\u0007b', group: 'readers' }, 422, 'validation_failed', 'displayName'],
        ['PATCH', '/v1/users/acme/alice', { disabled: 'yes' }, 422, 'validation_failed', 'disabled'],
        ['PATCH', '/v1/users/acme/nobody', { disabled: true }, 404, 'not_found'],
        ['POST', '/v1/groups', { tenant: 'acme', name: 'readers', permissions: [] }, 409, 'conflict'],
        ['POST', '/v1/groups', { tenant: 'acme', name: 'writers', permissions: [] }, 409, 'conflict'],
        ['POST', '/v1/groups', { tenant: 'acme', name: 'g', permissions: ['a,b'] }, 422, 'validation_failed'],
        ['PATCH', '/v1/groups/acme/readers', { permissions: [] }, 404, 'not_found'],
        ['DELETE', '/v1/groups/acme/writers', undefined, 409, 'conflict'],
        ['POST', '/v1/keys', { tenant: 'acme', name: 'k', user: 'alice', permissions: ['read'] }, 422, 'validation_failed', 'permissions'],
        ['GET', '/v1/users/ACME/alice', undefined, 404, 'not_found'],
        ['GET', '/v1/users/acme/%E0%A4%A', undefined, 400, 'bad_request'],
      ];
      for (const [method, path, body, status, code, field] of cases) {
        const res = await adminA.call(method, path, body === undefined ? {} : { body });
        expectProblem(res, status, code);
        if (field !== undefined) expect(res.json.detail, `${method} ${path}`).toContain(field);
      }
      const notJson = await adminA.call('POST', '/v1/users', { raw: '{"tenant":', contentType: 'application/json' });
      expect([400, 422]).toContain(notJson.status);
      // The group still in use names who uses it.
      const inUse = await adminA.call('DELETE', '/v1/groups/acme/writers');
      expect(inUse.json.detail).toContain('alice');
    });

    it('a flood of user writes leaves every instance agreeing with the store', async () => {
      await Promise.all(Array.from({ length: 40 }, (_, i) => adminA.post('/v1/users', { tenant: 'flood', name: `u${i}`, group: 'readers' })));
      await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 ? adminA : adminB).patch(`/v1/users/flood/u${i}`, { disabled: i % 3 === 0 })));
      const created = await adminA.post('/v1/keys', { tenant: 'flood', name: 'k', user: 'u3' });
      // u3 was disabled: keys for it are refused at creation.
      expectProblem(created, 409, 'conflict');
      const ok = await adminA.post('/v1/keys', { tenant: 'flood', name: 'k', user: 'u4' });
      for (const t of [pair.a, pair.b]) expect((await gets.get(t.url, '/read/x', ok.json.key)).status).toBe(200);
      expect((await adminB.get('/v1/users?tenant=flood')).json.users.filter((u: { disabled: boolean }) => u.disabled)).toHaveLength(14);
    });
  });

  it('no log line of either instance carries a key', () => {
    for (const t of [pair.a, pair.b]) expect(t.logs()).not.toContain(aliceKey);
  });
});

describe('users and groups on the embedded store', () => {
  let upstream: TestUpstream;
  let server: TestKeygate;

  beforeAll(async () => {
    upstream = await startUpstream();
    server = await startTestKeygate(config({}, upstream));
  });

  afterAll(async () => {
    await server?.stop();
    await upstream?.close();
  });

  it('a change written by another process (the CLI) reaches the running server through the change log', async () => {
    // The CLI's view: its own store on the same file, no subscription.
    const cli = new EmbeddedStore({ path: server.config.store.path });
    try {
      const users = new UserService(cli, server.config);
      await users.createUser(CLI_CALLER, { tenant: 'acme', name: 'dana', group: 'readers' });
      const key = await server.keys.create({ tenant: 'acme', name: 'dana-key', user: 'dana' });
      expect(key.record.permissionsFrom).toBe('user');
      const gets = pooledGets(1);
      try {
        expect((await gets.get(server.url, '/read/x', key.key)).status).toBe(200);
        await users.createGroup(CLI_CALLER, { tenant: 'acme', name: 'all', permissions: ['read', 'write'] });
        await users.updateUser(CLI_CALLER, 'acme', 'dana', { group: 'all' });
        await waitFor(async () => (await gets.get(server.url, '/write/x', key.key)).status === 200, 2000, 5);
        await users.updateUser(CLI_CALLER, 'acme', 'dana', { disabled: true });
        await waitFor(async () => (await gets.get(server.url, '/read/x', key.key)).code === 'user_disabled', 2000, 5);
      } finally {
        await gets.close();
      }
    } finally {
      await cli.close();
    }
  });
});

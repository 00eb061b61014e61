/**
 * The admin API (issue 5) on the embedded store, over HTTP: the contract's routes, who may
 * do what, key attributes, rename/revoke permanence, the audit log, request validation and
 * /openapi.json. Rotation, sweeps, reminders and last-used live in admin-lifecycle.test.ts.
 *
 * One keygate for the whole file; each group works in its own tenants.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { auditEntry, auditQuery, createdKey, createKeyBody, keyRecord, listKeysQuery, problem, renameKeyBody, rotateKeyBody } from '../../src/admin/schemas.ts';
import { generateKey, parseKey } from '../../src/keys/format.ts';
import { CLI_CALLER } from '../../src/keys/service.ts';
import { startUpstream, type TestUpstream } from '../helpers/upstream.ts';
import { adminClient, call, expectInvalid, proxyGet, schemaProblems, shiftedService, startAdminKeygate, type AdminClient, type AdminTestKeygate, type ApiResponse } from '../helpers/admin.ts';
import { expectProblem } from '../helpers/http.ts';
import { testHasher } from '../helpers/pepper.ts';

const DAY = 86_400_000;
const hasher = testHasher;

let up: TestUpstream;
let t: AdminTestKeygate;
let root: { key: string; id: string };
/** The platform admin's client. */
let admin: AdminClient;
let openapi: any;
/** Every full key this file saw, to prove none of them reaches the audit log or the logs. */
const issued: string[] = [];


/** POST /v1/keys through `client`; remembers the full key. */
async function create(client: AdminClient, body: Record<string, unknown>): Promise<ApiResponse> {
  const res = await client.post('/v1/keys', body);
  if (typeof res.json?.key === 'string') issued.push(res.json.key);
  return res;
}

/** Creates a key (must succeed) and returns its full key and id. */
async function createOk(client: AdminClient, body: Record<string, unknown>): Promise<{ key: string; id: string; body: any }> {
  const res = await create(client, body);
  expect(res.status, res.text).toBe(201);
  return { key: res.json.key, id: res.json.id, body: res.json };
}

async function cliKey(input: Parameters<AdminTestKeygate['keys']['create']>[0]) {
  const created = await t.keys.create(input);
  issued.push(created.key);
  return { key: created.key, id: created.record.id };
}

async function auditAll(client: AdminClient = admin): Promise<any[]> {
  const res = await client.get('/v1/audit?limit=500');
  expect(res.status, res.text).toBe(200);
  return res.json.entries;
}

function conforms(schemaId: string, value: unknown): void {
  expect(schemaProblems({ $ref: `#/components/schemas/${schemaId}` }, value, openapi.components.schemas)).toEqual([]);
}

beforeAll(async () => {
  up = await startUpstream();
  t = await startAdminKeygate({
    permissionGroups: { readers: ['read'], managers: ['keys:manage'] },
    routes: [{ name: 'api', pathPrefix: '/api', upstream: up.url, auth: { permissions: ['read'] } }],
  });
  // The first platform admin comes from the CLI-equivalent service.
  root = await cliKey({ tenant: 'system', role: 'admin', name: 'root' });
  admin = adminClient(t.adminUrl, root.key);
  openapi = (await call(t.adminUrl, 'GET', '/openapi.json')).json;
});

afterAll(async () => {
  await t?.stop();
  await up?.close();
});

describe('/openapi.json', () => {
  it('is served without a key and lists every key-lifecycle route of the contract', async () => {
    const res = await call(t.adminUrl, 'GET', '/openapi.json');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(res.json.openapi).toBe('3.1.0');
    const routes: Record<string, string[]> = {
      '/v1/keys': ['get', 'post'],
      '/v1/keys/{id}': ['get', 'patch'],
      '/v1/keys/{id}/revoke': ['post'],
      '/v1/keys/{id}/rotate': ['post'],
      '/v1/tenants/{tenant}/keys/revoke': ['post'],
      '/v1/audit': ['get'],
    };
    for (const [path, methods] of Object.entries(routes)) expect(Object.keys(res.json.paths[path] ?? {}).sort(), path).toEqual(methods);
    expect(res.json.components.securitySchemes.apiKey).toEqual({ type: 'apiKey', in: 'header', name: 'X-Api-Key' });
  });

  it('renders exactly the zod schemas that validate requests and shape responses', () => {
    const rendered = (schema: z.ZodType, id: string) => {
      const json = z.toJSONSchema(schema) as any;
      const { $schema: _s, $id: _i, ...rest } = json.$defs?.[id] ?? json;
      return rest;
    };
    const schemas: [string, z.ZodType][] = [
      ['CreateKey', createKeyBody],
      ['RenameKey', renameKeyBody],
      ['RotateKey', rotateKeyBody],
      ['Key', keyRecord],
      ['CreatedKey', createdKey],
      ['AuditEntry', auditEntry],
      ['Problem', problem],
    ];
    for (const [id, schema] of schemas) expect(openapi.components.schemas[id], id).toEqual(rendered(schema, id));
    const bodyRef = (path: string, method: string) => openapi.paths[path][method].requestBody.content['application/json'].schema.$ref;
    expect(bodyRef('/v1/keys', 'post')).toBe('#/components/schemas/CreateKey');
    expect(bodyRef('/v1/keys/{id}', 'patch')).toBe('#/components/schemas/RenameKey');
    expect(bodyRef('/v1/keys/{id}/rotate', 'post')).toBe('#/components/schemas/RotateKey');
    // The hand-written query parameters name exactly what the query schemas accept.
    const params = (path: string) => openapi.paths[path].get.parameters.map((p: { name: string }) => p.name).sort();
    expect(params('/v1/keys')).toEqual(Object.keys(listKeysQuery.shape).sort());
    expect(params('/v1/audit')).toEqual(Object.keys(auditQuery.shape).sort());
  });

  it('every documented CreateKey field is validated and named; an undocumented one is refused by name', async () => {
    const documented = Object.keys(openapi.components.schemas.CreateKey.properties);
    const wrong = Object.fromEntries(documented.map((name) => [name, { not: 'valid' }]));
    const res = await create(admin, wrong);
    expectInvalid(res, 'body.');
    for (const name of documented) expect(res.json.detail).toContain(`body.${name}`);
    expect(res.json.detail).not.toContain('unknown field');
    const extra = await create(admin, { tenant: 'docs', name: 'x', colour: 'red' });
    expectInvalid(extra, 'unknown field "colour"');
  });
});

describe('caller authentication', () => {
  it('401 missing_credentials without a key, with a Bearer challenge', async () => {
    const res = await call(t.adminUrl, 'GET', '/v1/keys');
    expectProblem(res, 401, 'missing_credentials');
    expect(res.headers.get('www-authenticate')).toBe('Bearer realm="keygate-admin"');
  });

  it('401 invalid_key for a malformed key and for a well-formed unknown one', async () => {
    expectProblem(await call(t.adminUrl, 'GET', '/v1/keys', { key: 'kg_system_not-a-key' }), 401, 'invalid_key');
    expectProblem(await call(t.adminUrl, 'GET', '/v1/keys', { key: generateKey('kg', 'system') }), 401, 'invalid_key');
  });

  it('401 key_revoked for a revoked admin key and key_expired for an expired one', async () => {
    const old = await cliKey({ tenant: 'system', role: 'admin', name: 'old admin' });
    expect((await adminClient(t.adminUrl, old.key).get('/v1/keys')).status).toBe(200);
    await t.keys.revoke(old.id);
    expectProblem(await adminClient(t.adminUrl, old.key).get('/v1/keys'), 401, 'key_revoked');
    const expired = await shiftedService(t, -31 * DAY).create(CLI_CALLER, { tenant: 'system', role: 'admin', name: 'expired admin', expires: '30d' });
    issued.push(expired.key);
    expectProblem(await adminClient(t.adminUrl, expired.key).get('/v1/keys'), 401, 'key_expired');
  });

  it('403 for a key with neither the admin role on the system tenant nor keys:manage (X-Api-Key or Bearer)', async () => {
    const plain = await cliKey({ tenant: 'authn', name: 'plain', permissions: ['read'] });
    expectProblem(await adminClient(t.adminUrl, plain.key).get('/v1/keys'), 403, 'forbidden');
    expectProblem(await call(t.adminUrl, 'GET', '/v1/keys', { headers: { authorization: `Bearer ${plain.key}` } }), 403, 'forbidden');
    const systemUser = await cliKey({ tenant: 'system', name: 'system api-user' });
    expectProblem(await adminClient(t.adminUrl, systemUser.key).get('/v1/keys'), 403, 'forbidden');
    // The same key works on the proxy: it is a valid key, just not an admin one.
    expect((await proxyGet(t.url, '/api/x', plain.key)).status).toBe(200);
  });

  it('keys:manage counts whether given directly or through a permission group', async () => {
    const direct = await cliKey({ tenant: 'authn', name: 'direct manager', permissions: ['keys:manage'] });
    const viaGroup = await cliKey({ tenant: 'authn', name: 'group manager', group: 'managers' });
    for (const k of [direct, viaGroup]) {
      const res = await adminClient(t.adminUrl, k.key).get('/v1/keys');
      expect(res.status, res.text).toBe(200);
      expect(res.json.keys.every((r: { tenant: string }) => r.tenant === 'authn')).toBe(true);
    }
  });

  it('audits failed admin logins: when, actor (null or the key id), action, reason', async () => {
    const plain = await cliKey({ tenant: 'authn', name: 'login probe' });
    const before = Date.now();
    await call(t.adminUrl, 'GET', '/v1/keys');
    await call(t.adminUrl, 'GET', '/v1/keys', { key: generateKey('kg', 'authn') });
    await adminClient(t.adminUrl, plain.key).get('/v1/audit');
    const after = Date.now();
    const failed = (await auditAll()).filter((e) => e.action === 'admin.login_failed' && Date.parse(e.at) >= before - 5 && Date.parse(e.at) <= after + 5);
    expect(failed).toHaveLength(3);
    // Newest first.
    expect(failed[0]).toMatchObject({ actor: plain.id, tenant: 'authn', target: null, detail: { reason: 'not an admin key', path: '/v1/audit' } });
    expect(failed[1]).toMatchObject({ actor: null, tenant: null, detail: { reason: 'invalid_key', method: 'GET', path: '/v1/keys' } });
    expect(failed[2]).toMatchObject({ actor: null, tenant: null, detail: { reason: 'missing', method: 'GET', path: '/v1/keys' } });
    for (const e of failed) conforms('AuditEntry', e);
  });
});

describe('who may do what', () => {
  let acmeMgr: { key: string; id: string };
  let acmeUser: { key: string; id: string };
  let globexUser: { key: string; id: string };
  let mgr: AdminClient;

  beforeAll(async () => {
    acmeMgr = await createOk(admin, { tenant: 'acme', name: 'acme manager', permissions: ['keys:manage'] });
    acmeUser = await createOk(admin, { tenant: 'acme', name: 'acme user', permissions: ['read'] });
    globexUser = await createOk(admin, { tenant: 'globex', name: 'globex user', permissions: ['read'] });
    mgr = adminClient(t.adminUrl, acmeMgr.key);
  });

  it('a platform admin sees and filters every tenant', async () => {
    const all = await admin.get('/v1/keys');
    expect(all.status).toBe(200);
    const ids = all.json.keys.map((k: { id: string }) => k.id);
    expect(ids).toEqual(expect.arrayContaining([root.id, acmeMgr.id, acmeUser.id, globexUser.id]));
    const globex = await admin.get('/v1/keys?tenant=globex');
    expect(globex.json.keys.map((k: { id: string }) => k.id)).toEqual([globexUser.id]);
    expect((await admin.get(`/v1/keys/${globexUser.id}`)).json).toMatchObject({ id: globexUser.id, tenant: 'globex' });
  });

  it('a keys:manage key sees its own tenant only', async () => {
    const own = await mgr.get('/v1/keys');
    expect(own.status).toBe(200);
    expect(own.json.keys.map((k: { id: string }) => k.id).sort()).toEqual([acmeMgr.id, acmeUser.id].sort());
    expect((await mgr.get('/v1/keys?tenant=globex')).json).toEqual({ keys: [] });
    expect((await mgr.get(`/v1/keys/${acmeUser.id}`)).json).toMatchObject({ id: acmeUser.id, tenant: 'acme' });
  });

  it("another tenant's key is 404 for every operation, and stays untouched", async () => {
    expectProblem(await mgr.get(`/v1/keys/${globexUser.id}`), 404, 'not_found');
    expectProblem(await mgr.patch(`/v1/keys/${globexUser.id}`, { name: 'hijacked' }), 404, 'not_found');
    expectProblem(await mgr.post(`/v1/keys/${globexUser.id}/revoke`), 404, 'not_found');
    expectProblem(await mgr.post(`/v1/keys/${globexUser.id}/rotate`, { overlapSeconds: 0 }), 404, 'not_found');
    expectProblem(await mgr.post('/v1/tenants/globex/keys/revoke'), 404, 'not_found');
    // Same answer as for a key that does not exist at all: nothing to learn.
    expectProblem(await mgr.get('/v1/keys/key_00000000000000000000'), 404, 'not_found');
    const after = await admin.get(`/v1/keys/${globexUser.id}`);
    expect(after.json).toMatchObject({ name: 'globex user', status: 'active' });
    expect((await admin.get('/v1/keys?tenant=globex')).json.keys).toHaveLength(1);
    expect((await proxyGet(t.url, '/api/x', globexUser.key)).status).toBe(200);
  });

  it('a keys:manage key creates api-user keys in its own tenant, and nowhere else', async () => {
    const created = await createOk(mgr, { name: 'made by acme manager' });
    expect(created.body).toMatchObject({ tenant: 'acme', role: 'api-user' });
    const elsewhere = await create(mgr, { tenant: 'globex', name: 'smuggled' });
    expectProblem(elsewhere, 403, 'forbidden');
    expect((await admin.get('/v1/keys?tenant=globex')).json.keys.map((k: { id: string }) => k.id)).toEqual([globexUser.id]);
    // Tenant keys are always api-user.
    expectInvalid(await create(mgr, { name: 'wannabe admin', role: 'admin' }), 'role');
    expect((await mgr.get('/v1/keys')).json.keys.every((k: { role: string }) => k.role === 'api-user')).toBe(true);
  });

  it('admin keys exist only on the system tenant and only a platform admin creates them', async () => {
    expectInvalid(await create(admin, { tenant: 'acme', name: 'tenant admin', role: 'admin' }), 'role');
    const second = await createOk(admin, { tenant: 'system', name: 'second admin', role: 'admin' });
    expect(second.body).toMatchObject({ tenant: 'system', role: 'admin' });
    // …and it is a platform admin in turn.
    expect((await adminClient(t.adminUrl, second.key).get('/v1/keys?tenant=globex')).json.keys.map((k: { id: string }) => k.id)).toEqual([globexUser.id]);
    // A keys:manage key of the system tenant is tenant-scoped, not a platform admin.
    const sysMgr = await createOk(admin, { tenant: 'system', name: 'system manager', permissions: ['keys:manage'] });
    const sys = adminClient(t.adminUrl, sysMgr.key);
    expectProblem(await create(sys, { tenant: 'system', name: 'escalate', role: 'admin' }), 403, 'forbidden');
    expectProblem(await sys.get(`/v1/keys/${globexUser.id}`), 404, 'not_found');
  });

  it('a platform admin must say which tenant a new key belongs to', async () => {
    expectInvalid(await create(admin, { name: 'no tenant' }), 'tenant');
  });

  it('a system-tenant keys:manage key cannot obtain an admin key by rotating one', async () => {
    const victim = await createOk(admin, { tenant: 'system', name: 'rotation victim', role: 'admin' });
    const sysMgr = await createOk(admin, { tenant: 'system', name: 'system manager 2', permissions: ['keys:manage'] });
    const adminsBefore = (await admin.get('/v1/keys?tenant=system')).json.keys.filter((k: { role: string }) => k.role === 'admin').length;
    const res = await adminClient(t.adminUrl, sysMgr.key).post(`/v1/keys/${victim.id}/rotate`, { overlapSeconds: 60 });
    if (typeof res.json?.key === 'string') issued.push(res.json.key);
    // Same rule as create: only a platform admin may bring an admin key into being.
    expect([403, 404], res.text).toContain(res.status);
    const adminsAfter = (await admin.get('/v1/keys?tenant=system')).json.keys.filter((k: { role: string }) => k.role === 'admin').length;
    expect(adminsAfter).toBe(adminsBefore);
  });
});

describe('key attributes', () => {
  it('creates with name, user, client and permissions; the full key is returned once', async () => {
    const res = await create(admin, { tenant: 'attrs', name: 'ci bot', user: 'alice', client: 'mcp', permissions: ['read', 'write'], expires: '90d' });
    expect(res.status, res.text).toBe(201);
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(res.json).toMatchObject({ tenant: 'attrs', name: 'ci bot', role: 'api-user', user: 'alice', client: 'mcp', permissions: ['read', 'write'], group: null, status: 'active', revokedAt: null, lastUsedAt: null });
    expect(parseKey(res.json.key, 'kg')).toEqual({ prefix: 'kg', tenant: 'attrs', environment: 'live' });
    expect(res.json.prefix).toBe(`${res.json.key.slice(0, 'kg_attrs_'.length + 4)}…`);
    conforms('CreatedKey', res.json);
    const got = await admin.get(`/v1/keys/${res.json.id}`);
    expect(got.status).toBe(200);
    const { key: _key, ...record } = res.json;
    expect(got.json).toEqual(record);
    expect(got.text).not.toContain(res.json.key.slice(-64));
    conforms('Key', got.json);
    // The key itself works on the proxy, and carries its attributes upstream.
    const through = await proxyGet(t.url, '/api/x', res.json.key);
    expect(through.status).toBe(200);
    expect(through.json.headers).toMatchObject({ 'x-tenant-id': 'attrs', 'x-auth-user': 'alice', 'x-auth-client': 'mcp', 'x-auth-permissions': 'read,write' });
  });

  it('expires after 30/60/90/180/365 days, on a given date, or never', async () => {
    for (const days of [30, 60, 90, 180, 365]) {
      const k = await createOk(admin, { tenant: 'attrs', name: `expires ${days}d`, expires: `${days}d` });
      expect(Date.parse(k.body.expiresAt) - Date.parse(k.body.createdAt), `${days}d`).toBe(days * DAY);
    }
    expect((await createOk(admin, { tenant: 'attrs', name: 'never', expires: 'never' })).body.expiresAt).toBeNull();
    expect((await createOk(admin, { tenant: 'attrs', name: 'default' })).body.expiresAt).toBeNull();
    const date = '2031-06-15T10:00:00.000Z';
    expect((await createOk(admin, { tenant: 'attrs', name: 'dated', expires: date })).body.expiresAt).toBe(date);
  });

  it('refuses bad expiries, naming the field', async () => {
    for (const expires of ['tomorrow', '2020-01-01', '2031-02-30', '0d', 30]) expectInvalid(await create(admin, { tenant: 'attrs', name: 'bad', expires }), 'expires');
  });

  it('a permission group is resolved at verification: changing the group changes the same key’s access', async () => {
    const k = await createOk(admin, { tenant: 'attrs', name: 'reader', group: 'readers' });
    expect(k.body).toMatchObject({ group: 'readers', permissions: [] });
    const ok = await proxyGet(t.url, '/api/x', k.key);
    expect(ok.status).toBe(200);
    expect(ok.json.headers['x-auth-permissions']).toBe('read');
    try {
      t.keygate.verifier.setGroups({ readers: ['other'], managers: ['keys:manage'] });
      expectProblem(await proxyGet(t.url, '/api/x', k.key), 403, 'forbidden_permission');
      t.keygate.verifier.setGroups({ readers: ['read', 'write'], managers: ['keys:manage'] });
      const widened = await proxyGet(t.url, '/api/x', k.key);
      expect(widened.status).toBe(200);
      expect(widened.json.headers['x-auth-permissions']).toBe('read,write');
    } finally {
      t.keygate.verifier.setGroups(t.config.permissionGroups);
    }
  });

  it('refuses an unknown group, and a group together with permissions', async () => {
    expectInvalid(await create(admin, { tenant: 'attrs', name: 'g', group: 'nope' }), 'group');
    expectInvalid(await create(admin, { tenant: 'attrs', name: 'g', group: 'readers', permissions: ['read'] }), 'group');
    expectInvalid(await create(admin, { tenant: 'attrs', name: 'g', permissions: ['has space'] }), 'permissions');
  });

  it('lists prefix, name, role, status, created, expires and last used; revoked only with revoked=true', async () => {
    const a = await createOk(admin, { tenant: 'listing', name: 'list a', expires: '30d' });
    const b = await createOk(admin, { tenant: 'listing', name: 'list b' });
    const gone = await createOk(admin, { tenant: 'listing', name: 'list gone' });
    expect((await admin.post(`/v1/keys/${gone.id}/revoke`)).status).toBe(200);

    const res = await admin.get('/v1/keys?tenant=listing');
    expect(res.status).toBe(200);
    const rows = res.json.keys;
    // Newest first; the revoked key is left out.
    expect(rows.map((r: { id: string }) => r.id)).toEqual([b.id, a.id]);
    for (const row of rows) {
      conforms('Key', row);
      expect(row).not.toHaveProperty('key');
      expect(row).not.toHaveProperty('hash');
    }
    expect(rows[1]).toMatchObject({ prefix: a.body.prefix, name: 'list a', role: 'api-user', status: 'active', createdAt: a.body.createdAt, expiresAt: a.body.expiresAt, lastUsedAt: null });
    for (const k of [a, b, gone]) {
      expect(res.text).not.toContain(k.key);
      expect(res.text).not.toContain(hasher(k.key));
    }

    const withRevoked = await admin.get('/v1/keys?tenant=listing&revoked=true');
    expect(withRevoked.json.keys.map((r: { id: string }) => r.id).sort()).toEqual([a.id, b.id, gone.id].sort());
    expect(withRevoked.json.keys.find((r: { id: string }) => r.id === gone.id)).toMatchObject({ status: 'revoked', revokedAt: expect.any(String) });
    expect((await admin.get('/v1/keys?tenant=listing&revoked=false')).json.keys).toHaveLength(2);
  });

  it('filters by display prefix, with or without the trailing ellipsis', async () => {
    const a = await createOk(admin, { tenant: 'prefixes', name: 'p a' });
    await createOk(admin, { tenant: 'prefixes', name: 'p b' });
    for (const prefix of [a.body.prefix, a.body.prefix.replace(/…$/, '')]) {
      const res = await admin.get(`/v1/keys?prefix=${encodeURIComponent(prefix)}`);
      expect(res.status).toBe(200);
      expect(res.json.keys.map((r: { id: string }) => r.id)).toContain(a.id);
      expect(res.json.keys.every((r: { prefix: string }) => r.prefix.startsWith(a.body.prefix.replace(/…$/, '')))).toBe(true);
    }
    expect((await admin.get('/v1/keys?prefix=kg_prefixes_')).json.keys).toHaveLength(2);
    expect((await admin.get('/v1/keys?prefix=kg_nosuchtenant_')).json.keys).toEqual([]);
  });

  it('name, rate limits and quota are the only edits; other fields are refused by name and change nothing', async () => {
    const k = await createOk(admin, { tenant: 'edits', name: 'before', permissions: ['read'] });
    const renamed = await admin.patch(`/v1/keys/${k.id}`, { name: '  after  ' });
    expect(renamed.status, renamed.text).toBe(200);
    expect(renamed.json).toMatchObject({ id: k.id, name: 'after', permissions: ['read'], status: 'active' });
    conforms('Key', renamed.json);
    for (const [field, value] of [['permissions', ['admin:*']], ['role', 'admin'], ['expires', 'never'], ['tenant', 'other'], ['status', 'revoked'], ['user', 'mallory']] as const) {
      expectInvalid(await admin.patch(`/v1/keys/${k.id}`, { name: 'sneaky', [field]: value }), `"${field}"`);
    }
    expectInvalid(await admin.patch(`/v1/keys/${k.id}`, {}), 'give name, rateLimits and/or quota');
    expectInvalid(await admin.patch(`/v1/keys/${k.id}`, { name: '   ' }), 'name');
    expectInvalid(await admin.patch(`/v1/keys/${k.id}`, { name: 'x'.repeat(129) }), 'body.name');
    const after = (await admin.get(`/v1/keys/${k.id}`)).json;
    expect(after).toMatchObject({ name: 'after', permissions: ['read'], role: 'api-user', tenant: 'edits', status: 'active', expiresAt: null, user: null });
    expectProblem(await admin.patch('/v1/keys/key_00000000000000000000', { name: 'x' }), 404, 'not_found');
  });

  it('revocation is permanent: nothing reinstates a revoked key and it keeps getting 401', async () => {
    const k = await createOk(admin, { tenant: 'edits', name: 'doomed', permissions: ['read'] });
    expect((await proxyGet(t.url, '/api/x', k.key)).status).toBe(200);
    const revoked = await admin.post(`/v1/keys/${k.id}/revoke`);
    expect(revoked.status, revoked.text).toBe(200);
    expect(revoked.json).toMatchObject({ id: k.id, status: 'revoked', revokedAt: expect.any(String) });
    conforms('Key', revoked.json);
    // Refused at once, even though the positive answer was cached a moment ago.
    expectProblem(await proxyGet(t.url, '/api/x', k.key), 401, 'key_revoked');

    expectInvalid(await admin.patch(`/v1/keys/${k.id}`, { status: 'active' }), '"status"');
    expectInvalid(await admin.patch(`/v1/keys/${k.id}`, { name: 'revived', status: 'active' }), '"status"');
    const again = await admin.post(`/v1/keys/${k.id}/revoke`);
    expect(again.status).toBe(200);
    expect(again.json).toMatchObject({ status: 'revoked', revokedAt: revoked.json.revokedAt });
    expectProblem(await admin.post(`/v1/keys/${k.id}/rotate`, { overlapSeconds: 0 }), 409, 'conflict');
    expect((await admin.get(`/v1/keys/${k.id}`)).json).toMatchObject({ status: 'revoked', revokedAt: revoked.json.revokedAt });
    expectProblem(await proxyGet(t.url, '/api/x', k.key), 401, 'key_revoked');
    // Revoking twice leaves one audit line.
    expect((await auditAll()).filter((e) => e.action === 'key.revoke' && e.target === k.id)).toHaveLength(1);
  });

  it('revokes every key of a tenant at once', async () => {
    const keys = [
      await createOk(admin, { tenant: 'doomed-corp', name: 'one', permissions: ['read'] }),
      await createOk(admin, { tenant: 'doomed-corp', name: 'two', permissions: ['read'] }),
    ];
    const bystander = await createOk(admin, { tenant: 'safe-corp', name: 'bystander', permissions: ['read'] });
    for (const k of keys) expect((await proxyGet(t.url, '/api/x', k.key)).status).toBe(200);
    const res = await admin.post('/v1/tenants/doomed-corp/keys/revoke');
    expect(res.status, res.text).toBe(200);
    expect(res.json.tenant).toBe('doomed-corp');
    expect([...res.json.revoked].sort()).toEqual(keys.map((k) => k.id).sort());
    for (const k of keys) expectProblem(await proxyGet(t.url, '/api/x', k.key), 401, 'key_revoked');
    expect((await proxyGet(t.url, '/api/x', bystander.key)).status).toBe(200);
    expect((await admin.get('/v1/keys?tenant=doomed-corp')).json.keys).toEqual([]);
    // Again: nothing left to revoke.
    expect((await admin.post('/v1/tenants/doomed-corp/keys/revoke')).json.revoked).toEqual([]);
    expectInvalid(await admin.post('/v1/tenants/Not_A_Tenant/keys/revoke'), 'tenant');
  });

  it('a tenant manager can revoke its own tenant, itself included', async () => {
    const m = await createOk(admin, { tenant: 'selfish', name: 'manager', permissions: ['keys:manage'] });
    const res = await adminClient(t.adminUrl, m.key).post('/v1/tenants/selfish/keys/revoke');
    expect(res.status).toBe(200);
    expect(res.json.revoked).toEqual([m.id]);
    expectProblem(await adminClient(t.adminUrl, m.key).get('/v1/keys'), 401, 'key_revoked');
  });
});

describe('audit log', () => {
  it('records create, rename, revoke and revoke-all with when, actor, action and target', async () => {
    const before = Date.now();
    const k = await createOk(admin, { tenant: 'audited', name: 'audit me' });
    await admin.patch(`/v1/keys/${k.id}`, { name: 'audited name' });
    await admin.post(`/v1/keys/${k.id}/revoke`);
    const other = await createOk(admin, { tenant: 'audited', name: 'swept away' });
    await admin.post('/v1/tenants/audited/keys/revoke');
    const after = Date.now();

    const entries = (await auditAll()).filter((e) => e.tenant === 'audited');
    expect(entries.map((e) => [e.action, e.target])).toEqual([
      ['key.revoke_all', null],
      ['key.create', other.id],
      ['key.revoke', k.id],
      ['key.rename', k.id],
      ['key.create', k.id],
    ]);
    for (const e of entries) {
      conforms('AuditEntry', e);
      expect(e.actor).toBe(root.id);
      expect(e.id).toMatch(/^evt_[0-9a-f]{24}$/);
      expect(Date.parse(e.at)).toBeGreaterThanOrEqual(before - 5);
      expect(Date.parse(e.at)).toBeLessThanOrEqual(after + 5);
      expect(new Date(Date.parse(e.at)).toISOString()).toBe(e.at);
    }
    expect(entries[0].detail).toEqual({ count: 1 });
    expect(entries[3].detail).toMatchObject({ from: 'audit me', name: 'audited name', prefix: k.body.prefix });
    expect(entries[4].detail).toMatchObject({ name: 'audit me', prefix: k.body.prefix, role: 'api-user', expiresAt: null });
    // The notifications for the same actions, with ids and prefixes only.
    expect(t.events.filter((e) => e.tenant === 'audited').map((e) => [e.type, e.target.keyId])).toEqual([
      ['key.created', k.id],
      ['key.revoked', k.id],
      ['key.created', other.id],
    ]);
  });

  it('pages newest first with limit and before=next', async () => {
    for (let i = 0; i < 4; i++) await createOk(admin, { tenant: 'paging', name: `page ${i}` });
    const everything = await auditAll();
    expect(everything[0]).toMatchObject({ action: 'key.create', detail: { name: 'page 3' } });
    const walked: any[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res: ApiResponse = await admin.get(`/v1/audit?limit=7${cursor ? `&before=${cursor}` : ''}`);
      expect(res.status, res.text).toBe(200);
      expect(res.json.entries.length).toBeLessThanOrEqual(7);
      walked.push(...res.json.entries);
      cursor = res.json.next;
      if (cursor !== null) expect(res.json.entries).toHaveLength(7);
      pages++;
    } while (cursor !== null && pages < 200);
    expect(cursor).toBeNull();
    expect(walked.map((e) => e.id)).toEqual(everything.map((e) => e.id));
    expect(new Set(walked.map((e) => e.id)).size).toBe(walked.length);
    for (let i = 1; i < walked.length; i++) expect(Date.parse(walked[i].at)).toBeLessThanOrEqual(Date.parse(walked[i - 1].at));
    expect(pages).toBe(Math.ceil(everything.length / 7));
    const one = await admin.get('/v1/audit?limit=1');
    expect(one.json.entries).toHaveLength(1);
    expect(one.json.entries[0].id).toBe(everything[0].id);
    expect(one.json.next).toEqual(expect.any(String));
  });

  it('a tenant-scoped caller sees only its own tenant’s entries', async () => {
    const m = await createOk(admin, { tenant: 'scoped', name: 'scoped manager', permissions: ['keys:manage'] });
    const scoped = adminClient(t.adminUrl, m.key);
    const own = await createOk(scoped, { name: 'scoped own' });
    await scoped.patch(`/v1/keys/${own.id}`, { name: 'scoped renamed' });
    await createOk(admin, { tenant: 'unscoped', name: 'not yours' });
    const entries = await auditAll(scoped);
    expect(entries.length).toBeGreaterThanOrEqual(3);
    expect(entries.every((e) => e.tenant === 'scoped')).toBe(true);
    expect(entries.map((e) => [e.action, e.target, e.actor])).toEqual(
      expect.arrayContaining([
        ['key.rename', own.id, m.id],
        ['key.create', own.id, m.id],
        ['key.create', m.id, root.id],
      ]),
    );
    // Paging works the same within the tenant.
    const first = await scoped.get('/v1/audit?limit=1');
    const second = await scoped.get(`/v1/audit?limit=1&before=${first.json.next}`);
    expect([first.json.entries[0].id, second.json.entries[0].id]).toEqual([entries[0].id, entries[1].id]);
  });

  it('refuses bad paging parameters, naming them', async () => {
    expectInvalid(await admin.get('/v1/audit?limit=abc'), 'query.limit');
    expectInvalid(await admin.get('/v1/audit?before=yesterday'), 'query.before');
    expectInvalid(await admin.get('/v1/audit?tenant=acme'), 'unknown field "tenant"');
  });
});

describe('request validation', () => {
  it('400 for a body that is not JSON', async () => {
    const res = await admin.call('POST', '/v1/keys', { raw: '{"tenant": "v", "name": ', contentType: 'application/json' });
    expectProblem(res, 400, 'bad_request');
    conforms('Problem', res.json);
  });

  it('415 for a body that is not application/json', async () => {
    expectProblem(await admin.call('POST', '/v1/keys', { raw: 'tenant=v&name=x', contentType: 'application/x-www-form-urlencoded' }), 415, 'unsupported_media_type');
    expectProblem(await admin.call('PATCH', `/v1/keys/${root.id}`, { raw: JSON.stringify({ name: 'x' }), contentType: 'text/plain' }), 415, 'unsupported_media_type');
    expect((await admin.get(`/v1/keys/${root.id}`)).json.name).toBe('root');
  });

  it('413 for a body over 64 KB, with or without Content-Length, and nothing created', async () => {
    const big = JSON.stringify({ tenant: 'huge', name: 'big', user: 'u'.repeat(70 * 1024) });
    expectProblem(await admin.call('POST', '/v1/keys', { raw: big, contentType: 'application/json' }), 413, 'payload_too_large');
    const chunks = [Buffer.from(big.slice(0, 40_000)), Buffer.from(big.slice(40_000))];
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        const next = chunks.shift();
        if (next) controller.enqueue(next);
        else controller.close();
      },
    });
    expectProblem(await admin.call('POST', '/v1/keys', { raw: stream, contentType: 'application/json' }), 413, 'payload_too_large');
    // Just under the limit is read and validated normally (here: the user name is too long).
    const under = JSON.stringify({ tenant: 'huge', name: 'big', user: 'u'.repeat(60 * 1024) });
    expectInvalid(await admin.call('POST', '/v1/keys', { raw: under, contentType: 'application/json' }), 'body.user');
    expect((await admin.get('/v1/keys?tenant=huge')).json.keys).toEqual([]);
  });

  it('404 problem for unknown routes, 405 for a wrong method', async () => {
    expectProblem(await admin.get('/v1/nope'), 404, 'not_found');
    expectProblem(await call(t.adminUrl, 'GET', '/nope'), 404, 'not_found');
    expectProblem(await admin.get('/v1/keys/a/b/c'), 404, 'not_found');
    expectProblem(await admin.call('DELETE', '/v1/keys'), 405, 'method_not_allowed');
    expectProblem(await admin.call('PUT', `/v1/keys/${root.id}`, { body: { name: 'x' } }), 405, 'method_not_allowed');
    expectProblem(await admin.call('GET', `/v1/keys/${root.id}/revoke`), 405, 'method_not_allowed');
    expectProblem(await admin.call('DELETE', '/v1/audit'), 405, 'method_not_allowed');
    expect((await admin.get(`/v1/keys/${root.id}`)).json).toMatchObject({ name: 'root', status: 'active' });
  });

  it('422 naming the query parameter for a bad query', async () => {
    expectInvalid(await admin.get('/v1/keys?revoked=maybe'), 'query.revoked');
    expectInvalid(await admin.get('/v1/keys?tenant=Bad_Tenant'), 'query.tenant');
    expectInvalid(await admin.get('/v1/keys?colour=red'), 'unknown field "colour"');
  });

  it('422 naming the body field for a wrong type, a missing field or a bad value', async () => {
    expectInvalid(await create(admin, { tenant: 'v', name: 5 }), 'body.name');
    expectInvalid(await create(admin, { tenant: 'v' }), 'body.name');
    expectInvalid(await create(admin, { tenant: 'V!', name: 'x' }), 'body.tenant');
    expectInvalid(await create(admin, { tenant: 'v', name: 'x', role: 'owner' }), 'body.role');
    expectInvalid(await create(admin, { tenant: 'v', name: 'x', permissions: 'read' }), 'body.permissions');
    expectInvalid(await admin.call('POST', '/v1/keys', { raw: '[1,2]', contentType: 'application/json' }), 'body');
    expectInvalid(await admin.post(`/v1/keys/${root.id}/rotate`, {}), 'body.overlapSeconds');
    expectInvalid(await admin.post(`/v1/keys/${root.id}/rotate`, { overlapSeconds: -1 }), 'body.overlapSeconds');
    expectInvalid(await admin.post(`/v1/keys/${root.id}/rotate`, { overlapSeconds: 1.5 }), 'body.overlapSeconds');
    expectInvalid(await admin.post(`/v1/keys/${root.id}/rotate`, { overlapSeconds: 31 * 86_400 }), 'body.overlapSeconds');
    expect((await admin.get('/v1/keys?tenant=v')).json.keys).toEqual([]);
    expect((await admin.get(`/v1/keys/${root.id}`)).json.status).toBe('active');
  });
});

describe('no key ever leaves keygate except at creation', () => {
  it('no full key, nor its hash, is in any audit entry, notification or log line', async () => {
    expect(issued.length).toBeGreaterThan(30);
    const audit = (await admin.get('/v1/audit?limit=500')).text;
    const logs = t.logs();
    const events = JSON.stringify(t.events);
    expect(logs).toContain('"audit":"key.create"');
    for (const key of issued) {
      const secret = key.slice(-64);
      for (const [where, text] of [['audit', audit], ['logs', logs], ['events', events]] as const) {
        expect(text.includes(secret), `${where} contains a key`).toBe(false);
        expect(text.includes(hasher(key)), `${where} contains a key hash`).toBe(false);
      }
    }
  });
});


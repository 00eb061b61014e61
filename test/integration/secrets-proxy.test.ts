/**
 * Upstream secrets end to end on the embedded store (issue 6): the admin API (add, list,
 * rename, move, remove; platform admins only), injection into upstream requests replacing
 * whatever the client sent in that header, 502 upstream_unavailable when a secret is gone,
 * tampered with or keygate has no master key — and the value in none of: admin responses,
 * problem bodies, the audit log, the logs.
 */
import { randomBytes } from 'node:crypto';
import { DatabaseSync } from 'node:sqlite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminClient, call, expectInvalid, schemaProblems, type AdminClient, type ApiResponse } from '../helpers/admin.ts';
import { expectProblem, rawRequest, type RawResponse } from '../helpers/http.ts';
import { startTestKeygate, type TestKeygate } from '../helpers/keygate.ts';
import { startUpstream, type Received, type TestUpstream } from '../helpers/upstream.ts';

const MASTER_KEY = randomBytes(32).toString('base64');
/** Every value stored in this file; none may ever come back out. */
const VALUES = {
  openai: `sk-proj-${randomBytes(18).toString('hex')}`,
  mcp: `mcp-token-${randomBytes(18).toString('hex')}`,
  doomed: `doomed-${randomBytes(18).toString('hex')}`,
  tampered: `tampered-${randomBytes(18).toString('hex')}`,
  refused: `refused-${randomBytes(18).toString('hex')}`,
};
const ALL_VALUES = Object.values(VALUES);

let up: TestUpstream;
let t: TestKeygate;
let bare: TestKeygate;
let admin: AdminClient;
let tenantAdmin: AdminClient;
let userKey: string;
let openapi: any;
/** Every admin-API and proxy response body of this file. */
const seen: ApiResponse[] = [];
const proxied: RawResponse[] = [];

const routes = (upstream: string) => [
  { name: 'llm', pathPrefix: '/llm', upstream, secret: { id: 'openai', header: 'authorization', template: 'Bearer {value}' } },
  { name: 'mcp', pathPrefix: '/mcp', upstream, secret: { id: 'mcp', header: 'x-upstream-token' } },
  { name: 'doomed', pathPrefix: '/doomed', upstream, secret: { id: 'doomed', header: 'authorization', template: 'Basic {value}' } },
  { name: 'tampered', pathPrefix: '/tampered', upstream, secret: { id: 'tampered', header: 'authorization', template: 'Bearer {value}' } },
  { name: 'copied', pathPrefix: '/copied', upstream, secret: { id: 'copied', header: 'authorization', template: 'Bearer {value}' } },
  { name: 'plain', pathPrefix: '/plain', upstream },
];

async function api(client: AdminClient, method: string, path: string, body?: unknown): Promise<ApiResponse> {
  const res = body === undefined ? await client.call(method, path) : await client.call(method, path, { body });
  seen.push(res);
  return res;
}

async function through(base: string, path: string, headers: Record<string, string | string[]> | string[]): Promise<{ res: RawResponse; got: Received | undefined }> {
  const before = up.received.length;
  const res = await rawRequest(base, { path, headers });
  proxied.push(res);
  return { res, got: up.received.length > before ? up.received[up.received.length - 1] : undefined };
}

/** The upstream's copies of a header, in the order it got them. */
function copies(got: Received, name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < got.rawHeaders.length; i += 2) if (got.rawHeaders[i]!.toLowerCase() === name) out.push(got.rawHeaders[i + 1]!);
  return out;
}

function conforms(schemaId: string, value: unknown): void {
  expect(schemaProblems({ $ref: `#/components/schemas/${schemaId}` }, value, openapi.components.schemas)).toEqual([]);
}

beforeAll(async () => {
  // The upstream never echoes what it got: responses to the client must not carry the secret.
  up = await startUpstream((req, res) => {
    req.resume();
    req.on('end', () => res.end('upstream ok'));
  });
  [t, bare] = await Promise.all([
    startTestKeygate({ routes: routes(up.url), permissionGroups: { managers: ['keys:manage'] } }, { KEYGATE_MASTER_KEY: MASTER_KEY }),
    startTestKeygate({ routes: routes(up.url) }),
  ]);
  admin = adminClient(t.adminUrl, (await t.keys.create({ tenant: 'system', role: 'admin', name: 'root' })).key);
  tenantAdmin = adminClient(t.adminUrl, (await t.keys.create({ tenant: 'acme', name: 'acme-admin', group: 'managers' })).key);
  userKey = (await t.keys.create({ tenant: 'acme', name: 'agent' })).key;
  openapi = (await call(t.adminUrl, 'GET', '/openapi.json')).json;
  for (const id of ['openai', 'mcp', 'doomed'] as const) {
    const res = await api(admin, 'POST', '/v1/secrets', { id, name: `${id} token`, value: VALUES[id] });
    expect(res.status, res.text).toBe(201);
  }
});

afterAll(async () => {
  await Promise.all([t?.stop(), bare?.stop()]);
  await up?.close();
});

describe('admin API: /v1/secrets', () => {
  it('adds (201, metadata only) and lists without the value', async () => {
    const res = await api(admin, 'POST', '/v1/secrets', { id: 'listed', name: 'Listed', value: `listed-${VALUES.openai}` });
    expect(res.status, res.text).toBe(201);
    expect(res.json).toEqual({ id: 'listed', name: 'Listed', createdAt: expect.any(String), lastUsedAt: null, keyVersion: expect.stringMatching(/^[0-9a-f]{8}$/) });
    conforms('Secret', res.json);
    const list = await api(admin, 'GET', '/v1/secrets');
    expect(list.status).toBe(200);
    expect(list.json.secrets.map((s: { id: string }) => s.id)).toEqual(['listed', 'doomed', 'mcp', 'openai']);
    for (const s of list.json.secrets) conforms('ListedSecret', s); // Secret plus its usages
    expect(list.text).not.toMatch(/value|envelope|"ct"|nonce/i);
  });

  it('refuses to replace a value, to change one by PATCH, and bad input, naming the field', async () => {
    const dup = await api(admin, 'POST', '/v1/secrets', { id: 'openai', name: 'again', value: VALUES.refused });
    expectProblem(dup, 409, 'conflict');
    const patch = await api(admin, 'PATCH', '/v1/secrets/openai', { value: VALUES.refused });
    expectInvalid(patch, 'body.value');
    expect(patch.json.detail).toMatch(/cannot change/);
    expectInvalid(await api(admin, 'POST', '/v1/secrets', { id: 'big', name: 'big', value: 'x'.repeat(8193) }), 'body.value');
    expectInvalid(await api(admin, 'POST', '/v1/secrets', { id: 'crlf', name: 'crlf', value: `${VALUES.refused}\r\nx-evil: 1` }), 'value');
    expectInvalid(await api(admin, 'POST', '/v1/secrets', { id: 'Bad Id', name: 'n', value: VALUES.refused }), 'body.id');
    expectInvalid(await api(admin, 'POST', '/v1/secrets', { id: 'noname', value: VALUES.refused }), 'body.name');
    expectInvalid(await api(admin, 'PATCH', '/v1/secrets/openai', {}), 'name');
    expectProblem(await api(admin, 'PATCH', '/v1/secrets/nope', { name: 'x' }), 404, 'not_found');
    expectProblem(await api(admin, 'DELETE', '/v1/secrets/nope'), 404, 'not_found');
    // Nothing refused was stored.
    const ids = (await api(admin, 'GET', '/v1/secrets')).json.secrets.map((s: { id: string }) => s.id);
    expect(ids).not.toContain('big');
    expect(ids).not.toContain('crlf');
  });

  it('is for platform admins only: a tenant admin and a plain key get 403 on every endpoint', async () => {
    const user = adminClient(t.adminUrl, userKey);
    for (const client of [tenantAdmin, user]) {
      expectProblem(await api(client, 'GET', '/v1/secrets'), 403, 'forbidden');
      expectProblem(await api(client, 'POST', '/v1/secrets', { id: 'mine', name: 'mine', value: VALUES.refused }), 403, 'forbidden');
      expectProblem(await api(client, 'PATCH', '/v1/secrets/openai', { name: 'mine' }), 403, 'forbidden');
      expectProblem(await api(client, 'DELETE', '/v1/secrets/openai'), 403, 'forbidden');
    }
    expectProblem(await api(adminClient(t.adminUrl, undefined), 'GET', '/v1/secrets'), 401, 'missing_credentials');
    const list = await api(admin, 'GET', '/v1/secrets');
    expect(list.json.secrets.find((s: { id: string }) => s.id === 'openai').name).toBe('openai token');
    expect(list.json.secrets.map((s: { id: string }) => s.id)).not.toContain('mine');
  });

  it('is documented in /openapi.json', () => {
    expect(Object.keys(openapi.paths['/v1/secrets']).sort()).toEqual(['get', 'post']);
    expect(Object.keys(openapi.paths['/v1/secrets/{id}']).sort()).toEqual(['delete', 'patch']);
    expect(openapi.components.schemas.CreateSecret.required.sort()).toEqual(['id', 'name', 'value']);
    expect(Object.keys(openapi.components.schemas.Secret.properties).sort()).toEqual(['createdAt', 'id', 'keyVersion', 'lastUsedAt', 'name']);
  });
});

describe('injection into upstream requests', () => {
  it('sets the route header from the template, replacing the Authorization: Bearer that carried the key', async () => {
    const { res, got } = await through(t.url, '/llm/v1/chat', { authorization: `Bearer ${userKey}` });
    expect(res.status, res.body).toBe(200);
    expect(copies(got!, 'authorization')).toEqual([`Bearer ${VALUES.openai}`]);
    expect(got!.headers['x-tenant-id']).toBe('acme');
    expect(res.body).toBe('upstream ok');
  });

  it("drops the client's own value for that header, every copy of it", async () => {
    const { res, got } = await through(t.url, '/llm/v1/chat', ['X-Api-Key', userKey, 'Authorization', 'Token client-own-token', 'authorization', 'Basic Y2xpZW50OnB3']);
    expect(res.status, res.body).toBe(200);
    expect(copies(got!, 'authorization')).toEqual([`Bearer ${VALUES.openai}`]);
    const custom = await through(t.url, '/mcp/sse', ['X-Api-Key', userKey, 'X-Upstream-Token', 'forged-1', 'x-upstream-token', 'forged-2', 'X-Other', 'kept']);
    expect(custom.res.status).toBe(200);
    expect(copies(custom.got!, 'x-upstream-token')).toEqual([VALUES.mcp]);
    expect(copies(custom.got!, 'x-other')).toEqual(['kept']);
  });

  it('leaves routes without a secret alone', async () => {
    const { res, got } = await through(t.url, '/plain/x', { 'x-api-key': userKey, authorization: 'Basic Y2xpZW50OnB3' });
    expect(res.status).toBe(200);
    expect(copies(got!, 'authorization')).toEqual(['Basic Y2xpZW50OnB3']);
  });

  it('records when a secret was last used', async () => {
    await through(t.url, '/llm/used', { 'x-api-key': userKey });
    await t.keygate.vault.flushLastUsed();
    const list = await api(admin, 'GET', '/v1/secrets');
    const openai = list.json.secrets.find((s: { id: string }) => s.id === 'openai');
    expect(Date.now() - Date.parse(openai.lastUsedAt)).toBeLessThan(10_000);
    expect(list.json.secrets.find((s: { id: string }) => s.id === 'doomed').lastUsedAt).toBeNull();
  });

  it('keeps injecting after a rename; a move to a new id leaves routes naming the old one with 502', async () => {
    const renamed = await api(admin, 'PATCH', '/v1/secrets/mcp', { name: 'MCP server token' });
    expect(renamed.status, renamed.text).toBe(200);
    conforms('Secret', renamed.json);
    expect(renamed.json.name).toBe('MCP server token');
    const after = await through(t.url, '/mcp/a', { 'x-api-key': userKey });
    expect(copies(after.got!, 'x-upstream-token')).toEqual([VALUES.mcp]);

    const moved = await api(admin, 'PATCH', '/v1/secrets/mcp', { id: 'mcp-v2' });
    expect(moved.status, moved.text).toBe(200);
    expect(moved.json).toMatchObject({ id: 'mcp-v2', name: 'MCP server token' });
    const gone = await through(t.url, '/mcp/b', { 'x-api-key': userKey });
    expectSecretUnavailable(gone.res, 'mcp');
    expect(gone.got).toBeUndefined();
    // Moving it back: the value survived both re-encryptions.
    expect((await api(admin, 'PATCH', '/v1/secrets/mcp-v2', { id: 'mcp' })).status).toBe(200);
    const back = await through(t.url, '/mcp/c', { 'x-api-key': userKey });
    expect(copies(back.got!, 'x-upstream-token')).toEqual([VALUES.mcp]);
  });

  it('stops injecting a removed secret at once: 502 upstream_unavailable naming the id, and a warning', async () => {
    const before = await through(t.url, '/doomed/x', { 'x-api-key': userKey });
    expect(copies(before.got!, 'authorization')).toEqual([`Basic ${VALUES.doomed}`]);
    // Route "doomed" names it: refused (409) unless forced (secret-usages.test.ts).
    expectProblem(await api(admin, 'DELETE', '/v1/secrets/doomed'), 409, 'conflict');
    const removed = await api(admin, 'DELETE', '/v1/secrets/doomed?force=true');
    expect(removed.status, removed.text).toBe(200);
    expect(removed.json).toMatchObject({ id: 'doomed', removed: true });
    conforms('RemovedSecret', removed.json);
    const after = await through(t.url, '/doomed/x', { 'x-api-key': userKey, 'content-type': 'text/plain' });
    expectSecretUnavailable(after.res, 'doomed');
    expect(after.got).toBeUndefined();
    expect(t.logs()).toMatch(/"secretId":"doomed".*not stored/);
  });

  it('refuses a tampered ciphertext, and one copied onto another id, instead of decrypting it', async () => {
    expect((await api(admin, 'POST', '/v1/secrets', { id: 'tampered', name: 'tampered', value: VALUES.tampered })).status).toBe(201);
    // Straight into the database file, as an attacker with write access to the store would.
    const db = new DatabaseSync(t.config.store.path);
    try {
      const row = db.prepare("SELECT envelope FROM secrets WHERE id = 'tampered'").get() as { envelope: string };
      const envelope = JSON.parse(row.envelope);
      const ct = Buffer.from(envelope.ct, 'base64');
      ct[3] = ct[3]! ^ 0x20;
      db.prepare("UPDATE secrets SET envelope = ? WHERE id = 'tampered'").run(JSON.stringify({ ...envelope, ct: ct.toString('base64') }));
      const openai = db.prepare("SELECT * FROM secrets WHERE id = 'openai'").get() as Record<string, string | number | null>;
      db.prepare('INSERT INTO secrets (id, name, created_at, last_used_at, key_version, envelope) VALUES (?, ?, ?, ?, ?, ?)').run('copied', 'copied', openai.created_at!, null, openai.key_version!, openai.envelope!);
    } finally {
      db.close();
    }
    const tampered = await through(t.url, '/tampered/x', { 'x-api-key': userKey });
    expectSecretUnavailable(tampered.res, 'tampered');
    expect(tampered.got).toBeUndefined();
    const copied = await through(t.url, '/copied/x', { 'x-api-key': userKey });
    expectSecretUnavailable(copied.res, 'copied');
    expect(copied.got).toBeUndefined();
    expect(t.logs()).toMatch(/"secretId":"tampered".*cannot be decrypted/);
    expect(t.logs()).toMatch(/"secretId":"copied".*cannot be decrypted/);
  });
});

describe('without KEYGATE_MASTER_KEY', () => {
  it('starts, warns, answers 502 on routes that need a secret, serves the others, and cannot store secrets', async () => {
    const key = (await bare.keys.create({ tenant: 'acme', name: 'agent' })).key;
    const root = adminClient(bare.adminUrl, (await bare.keys.create({ tenant: 'system', role: 'admin', name: 'root' })).key);
    const res = await through(bare.url, '/llm/x', { 'x-api-key': key });
    expectSecretUnavailable(res.res, 'openai');
    expect(res.got).toBeUndefined();
    expect((await through(bare.url, '/plain/x', { 'x-api-key': key })).res.status).toBe(200);
    const add = await api(root, 'POST', '/v1/secrets', { id: 'openai', name: 'OpenAI', value: VALUES.refused });
    expectProblem(add, 409, 'conflict');
    expect(add.json.detail).toMatch(/KEYGATE_MASTER_KEY is not set/);
    expect((await api(root, 'GET', '/v1/secrets')).json.secrets).toEqual([]);
    const startup = bare.logs().split('\n').find((line) => line.includes('KEYGATE_MASTER_KEY is not set: these routes inject an upstream secret'));
    expect(startup).toContain('"level":"warn"');
    expect(startup).toContain('"routes":["llm","mcp","doomed","tampered","copied"]');
  });
});

describe('the value never comes back out', () => {
  it('is in no audit entry, and secrets are audited for platform admins only', async () => {
    const entries = (await api(admin, 'GET', '/v1/audit?limit=500')).json.entries as any[];
    const actions = entries.filter((e) => e.action.startsWith('secret.')).map((e) => `${e.action} ${e.target}`);
    expect(actions).toEqual(expect.arrayContaining(['secret.create openai', 'secret.rename mcp', 'secret.rename mcp-v2', 'secret.remove doomed', 'secret.create tampered']));
    for (const e of entries.filter((x) => x.action.startsWith('secret.'))) expect(e.tenant).toBeNull();
    const tenantView = (await api(tenantAdmin, 'GET', '/v1/audit?limit=500')).json.entries as any[];
    expect(tenantView.some((e) => e.action.startsWith('secret.'))).toBe(false);
  });

  it('is in no admin response, proxy response, problem body or log line', () => {
    expect(seen.length).toBeGreaterThan(30);
    expect(proxied.length).toBeGreaterThan(10);
    const texts = [...seen.map((r) => r.text), ...proxied.map((r) => `${JSON.stringify(r.headers)}\n${r.body}`), t.logs(), bare.logs()];
    for (const value of ALL_VALUES) {
      for (const text of texts) {
        expect(text.includes(value)).toBe(false);
        expect(text.includes(value.slice(-20))).toBe(false);
      }
    }
  });
});

function expectSecretUnavailable(res: RawResponse, id: string): void {
  expectProblem(res, 502, 'upstream_unavailable');
  expect(res.json.title).toBe('Upstream unavailable');
  expect(res.json.detail).toContain(`"${id}"`);
}

/**
 * The authenticated request path end to end: a real keygate (embedded store on a temp
 * file) in front of a real upstream, driven over HTTP.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { displayPrefix, generateKey } from '../../src/keys/format.ts';
import { newKeyId } from '../../src/keys/ids.ts';
import type { KeyRecord } from '../../src/keys/record.ts';
import { EmbeddedStore } from '../../src/store/embedded/store.ts';
import { accessLines, expectProblem, rawRequest, type RawResponse, waitFor } from '../helpers/http.ts';
import { startTestKeygate, type TestKeygate } from '../helpers/keygate.ts';
import { startUpstream, type TestUpstream } from '../helpers/upstream.ts';
import { testHasher } from '../helpers/pepper.ts';

const hasher = testHasher;

/** Answers with the body it received. */
function bodyEcho(req: IncomingMessage, res: ServerResponse): void {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ url: req.url, body: Buffer.concat(chunks).toString('utf8'), headers: req.headers }));
  });
}

let up: TestUpstream;
let bodyUp: TestUpstream;
let t: TestKeygate;
/** Every key this file creates, to check none of them (nor their hashes) reached the logs. */
const issued: string[] = [];

async function key(input: Parameters<TestKeygate['keys']['create']>[0]) {
  const created = await t.keys.create(input);
  issued.push(created.key);
  return created;
}


function get(path: string, headers: Record<string, string> = {}) {
  return rawRequest(t.url, { path, headers });
}

beforeAll(async () => {
  up = await startUpstream();
  bodyUp = await startUpstream(bodyEcho);
  t = await startTestKeygate({
    permissionGroups: { writers: ['read', 'write'] },
    routes: [
      { name: 'api', pathPrefix: '/api', upstream: up.url, auth: { permissions: ['read'] } },
      { name: 'open', pathPrefix: '/open', upstream: up.url },
      { name: 'write', pathPrefix: '/write', upstream: up.url, auth: { permissions: ['read', 'write'] } },
      { name: 'mcp', pathPrefix: '/mcp', upstream: up.url, auth: { permissions: ['mcp:use'], clients: ['mcp'] } },
      { name: 'tenant', pathPrefix: '/t', upstream: up.url, auth: { tenantFromPath: true } },
      { name: 'public', pathPrefix: '/public', upstream: up.url, auth: { required: false } },
      { name: 'upload', pathPrefix: '/upload', upstream: bodyUp.url, maxBodyBytes: 64 },
    ],
  });
});

afterAll(async () => {
  await t?.stop();
  await up?.close();
  await bodyUp?.close();
});

describe('credentials', () => {
  it('401 missing_credentials without a key, with the bare Bearer challenge, and nothing forwarded', async () => {
    const before = up.received.length;
    const res = await get('/api/x');
    expectProblem(res, 401, 'missing_credentials');
    expect(res.headers['www-authenticate']).toBe('Bearer realm="keygate"');
    expect(res.headers['cache-control']).toBe('no-store');
    expect(up.received.length).toBe(before);
  });

  it('accepts Authorization: Bearer (any case of the scheme) and removes it', async () => {
    const { key: k, record } = await key({ tenant: 'acme', name: 'b', permissions: ['read'] });
    for (const scheme of ['Bearer', 'bearer', 'BEARER']) {
      const res = await get('/api/x', { authorization: `${scheme} ${k}` });
      expect(res.status, scheme).toBe(200);
      expect(res.json.headers.authorization).toBeUndefined();
      expect(res.json.headers['x-api-key-id']).toBe(record.id);
      expect(res.json.headers['x-tenant-id']).toBe('acme');
    }
  });

  it('accepts X-Api-Key and removes it', async () => {
    const { key: k } = await key({ tenant: 'acme', name: 'x', permissions: ['read'] });
    const res = await get('/api/x', { 'x-api-key': k });
    expect(res.status).toBe(200);
    expect(res.json.headers['x-api-key']).toBeUndefined();
    expect(res.json.headers['x-tenant-id']).toBe('acme');
    expect(JSON.stringify(up.received.at(-1))).not.toContain(k);
  });

  it('keeps a non-Bearer Authorization for the upstream when the key is in X-Api-Key', async () => {
    const { key: k } = await key({ tenant: 'acme', name: 'basic', permissions: ['read'] });
    const res = await get('/api/x', { 'x-api-key': k, authorization: 'Basic dXNlcjpwYXNz' });
    expect(res.status).toBe(200);
    expect(res.json.headers.authorization).toBe('Basic dXNlcjpwYXNz');
  });

  it('accepts the same key in both headers and removes both', async () => {
    const { key: k } = await key({ tenant: 'acme', name: 'both', permissions: ['read'] });
    const res = await get('/api/x', { 'x-api-key': k, authorization: `Bearer ${k}` });
    expect(res.status).toBe(200);
    expect(res.json.headers.authorization).toBeUndefined();
    expect(res.json.headers['x-api-key']).toBeUndefined();
  });

  it('400 conflicting_credentials when X-Api-Key and Bearer differ; nothing forwarded', async () => {
    const a = await key({ tenant: 'acme', name: 'a', permissions: ['read'] });
    const b = await key({ tenant: 'acme', name: 'b', permissions: ['read'] });
    const before = up.received.length;
    expectProblem(await get('/api/x', { 'x-api-key': a.key, authorization: `Bearer ${b.key}` }), 400, 'conflicting_credentials');
    expectProblem(await get('/api/x', { 'x-api-key': a.key, authorization: 'Bearer some-upstream-token' }), 400, 'conflicting_credentials');
    expect(up.received.length).toBe(before);
  });

  it('never accepts a key from the query string, and never logs it', async () => {
    const { key: k } = await key({ tenant: 'acme', name: 'query', permissions: ['read'] });
    const before = up.received.length;
    for (const q of ['api_key', 'apikey', 'key', 'access_token', 'x-api-key', 'token']) {
      const res = await get(`/api/x?${q}=${k}`);
      expectProblem(res, 401, 'missing_credentials');
    }
    expect(up.received.length).toBe(before);
    await waitFor(() => accessLines(t.logs()).length >= 6);
    expect(t.logs()).not.toContain(k);
  });
});

describe('keys that are refused', () => {
  const invalidToken = /^Bearer realm="keygate", error="invalid_token"/;

  it('401 invalid_key for a mistyped key, with no store lookup', async () => {
    const { key: k } = await key({ tenant: 'acme', name: 'typo', permissions: ['read'] });
    const calls = t.keygate.verifier.stats.storeCalls;
    const typo = k.slice(0, 20) + (k[20] === 'a' ? 'b' : 'a') + k.slice(21);
    for (const bad of [typo, k.slice(0, -1), `${k}a`, k.toUpperCase(), k.replace('kg_', 'sk_'), 'hello', 'kg_acme_1234']) {
      const res = await get('/api/x', { 'x-api-key': bad });
      expectProblem(res, 401, 'invalid_key');
      expect(res.headers['www-authenticate']).toMatch(invalidToken);
    }
    expect(t.keygate.verifier.stats.storeCalls).toBe(calls);
  });

  it('401 invalid_key for a well-formed key the store does not know', async () => {
    const unknown = generateKey('kg', 'acme');
    const res = await get('/api/x', { authorization: `Bearer ${unknown}` });
    expectProblem(res, 401, 'invalid_key');
    expect(res.headers['www-authenticate']).toMatch(invalidToken);
  });

  it('401 key_revoked right after revocation, even when the key was cached', async () => {
    const { key: k, record } = await key({ tenant: 'acme', name: 'rev', permissions: ['read'] });
    expect((await get('/api/x', { 'x-api-key': k })).status).toBe(200);
    expect((await get('/api/x', { 'x-api-key': k })).status).toBe(200);
    await t.keys.revoke(record.id);
    const before = up.received.length;
    const res = await get('/api/x', { 'x-api-key': k });
    expectProblem(res, 401, 'key_revoked');
    expect(res.headers['www-authenticate']).toMatch(invalidToken);
    expect(up.received.length).toBe(before);
  });

  it('401 key_revoked after a revocation written by another process on the same store file', async () => {
    const { key: k, record } = await key({ tenant: 'acme', name: 'cli-rev', permissions: ['read'] });
    expect((await get('/api/x', { 'x-api-key': k })).status).toBe(200);
    const cli = new EmbeddedStore({ path: t.config.store.path });
    await cli.revoke(record.id, Date.now());
    await cli.close();
    const start = Date.now();
    const res = await waitFor(async () => {
      const r = await get('/api/x', { 'x-api-key': k });
      return r.status === 401 ? r : null;
    }, 2000);
    expect(Date.now() - start).toBeLessThan(1000); // pollMs is 50 in tests
    expectProblem(res, 401, 'key_revoked');
  });

  it('401 key_expired for a key past its expiry', async () => {
    const k = generateKey('kg', 'acme');
    issued.push(k);
    const record: KeyRecord = {
      id: newKeyId(), tenant: 'acme', name: 'old', role: 'api-user', permissions: ['read'], group: null, user: null, client: null,
      status: 'active', prefix: displayPrefix(k), createdAt: Date.now() - 10_000, expiresAt: Date.now() - 1000, revokedAt: null, revokesAt: null, lastUsedAt: null, permissionsFrom: 'key', environment: 'live', rateLimits: [], quota: null,
    };
    await t.keygate.store.create(record, hasher(k));
    const res = await get('/api/x', { 'x-api-key': k });
    expectProblem(res, 401, 'key_expired');
    expect(res.headers['www-authenticate']).toMatch(invalidToken);
  });

  it('401 key_expired once a cached key passes its expiry', async () => {
    const k = generateKey('kg', 'acme');
    issued.push(k);
    const record: KeyRecord = {
      id: newKeyId(), tenant: 'acme', name: 'soon', role: 'api-user', permissions: ['read'], group: null, user: null, client: null,
      status: 'active', prefix: displayPrefix(k), createdAt: Date.now(), expiresAt: Date.now() + 300, revokedAt: null, revokesAt: null, lastUsedAt: null, permissionsFrom: 'key', environment: 'live', rateLimits: [], quota: null,
    };
    await t.keygate.store.create(record, hasher(k));
    expect((await get('/api/x', { 'x-api-key': k })).status).toBe(200);
    const calls = t.keygate.verifier.stats.storeCalls;
    await new Promise((r) => setTimeout(r, 350));
    expectProblem(await get('/api/x', { 'x-api-key': k }), 401, 'key_expired');
    expect(t.keygate.verifier.stats.storeCalls).toBe(calls); // decided from the cache
  });

  it('serves a valid key from the cache: repeated requests do not hit the store', async () => {
    const { key: k } = await key({ tenant: 'acme', name: 'cache', permissions: ['read'] });
    expect((await get('/api/x', { 'x-api-key': k })).status).toBe(200);
    const calls = t.keygate.verifier.stats.storeCalls;
    for (let i = 0; i < 10; i++) expect((await get('/api/x', { 'x-api-key': k })).status).toBe(200);
    expect(t.keygate.verifier.stats.storeCalls).toBe(calls);
  });
});

describe('route policy (403)', () => {
  it('403 forbidden_permission with an insufficient_scope challenge', async () => {
    const { key: k } = await key({ tenant: 'acme', name: 'ro', permissions: ['read'] });
    const before = up.received.length;
    const res = await get('/write/x', { 'x-api-key': k });
    expectProblem(res, 403, 'forbidden_permission');
    expect(res.headers['www-authenticate']).toMatch(/^Bearer realm="keygate", error="insufficient_scope"/);
    expect(res.headers['www-authenticate']).toContain('scope="read write"');
    expect(up.received.length).toBe(before);
  });

  it('a key without any permissions passes a route that asks for none', async () => {
    const { key: k } = await key({ tenant: 'acme', name: 'none' });
    expect((await get('/open/x', { 'x-api-key': k })).status).toBe(200);
    expectProblem(await get('/api/x', { 'x-api-key': k }), 403, 'forbidden_permission');
  });

  it('permission groups grant their permissions', async () => {
    const { key: k } = await key({ tenant: 'acme', name: 'grp', group: 'writers' });
    const res = await get('/write/x', { 'x-api-key': k });
    expect(res.status).toBe(200);
    expect(res.json.headers['x-auth-permissions']).toBe('read,write');
  });

  it('403 forbidden_client for a key of another client, or of none', async () => {
    const good = await key({ tenant: 'acme', name: 'm', permissions: ['mcp:use'], client: 'mcp' });
    const other = await key({ tenant: 'acme', name: 'w', permissions: ['mcp:use'], client: 'webhook' });
    const none = await key({ tenant: 'acme', name: 'n', permissions: ['mcp:use'] });
    const ok = await get('/mcp', { 'x-api-key': good.key });
    expect(ok.status).toBe(200);
    expect(ok.json.headers['x-auth-client']).toBe('mcp');
    for (const k of [other.key, none.key]) {
      const res = await get('/mcp', { 'x-api-key': k });
      expectProblem(res, 403, 'forbidden_client');
      expect(res.headers['www-authenticate']).toBeUndefined();
    }
  });

  it('403 forbidden_tenant when the tenant in the path is not the key\'s, including via dot segments', async () => {
    const { key: k } = await key({ tenant: 'acme', name: 'ten' });
    expect((await get('/t/acme/orders', { 'x-api-key': k })).status).toBe(200);
    const before = up.received.length;
    for (const path of ['/t/beta/orders', '/t/acme/../beta/orders', '/t/%61cme2/x', '/t', '/t/', '/t/ACME/x']) {
      expectProblem(await get(path, { 'x-api-key': k }), 403, 'forbidden_tenant');
    }
    expect(up.received.length).toBe(before);
  });
});

describe('public routes', () => {
  it('need no key, and still strip identity headers', async () => {
    const res = await get('/public/x', { 'x-tenant-id': 'evil', 'x-auth-role': 'admin', 'x-api-key-id': 'key_evil', 'x-auth-permissions': '*', 'x-auth-user': 'root', 'x-auth-client': 'mcp' });
    expect(res.status).toBe(200);
    for (const name of ['x-tenant-id', 'x-auth-role', 'x-api-key-id', 'x-auth-permissions', 'x-auth-user', 'x-auth-client']) {
      expect(res.json.headers[name], name).toBeUndefined();
    }
  });

  it('do not forward a keygate key sent by mistake, in either header', async () => {
    const { key: k } = await key({ tenant: 'acme', name: 'pub' });
    const bearer = await get('/public/x', { authorization: `Bearer ${k}` });
    expect(bearer.status).toBe(200);
    expect(bearer.json.headers.authorization).toBeUndefined();
    const apiKey = await get('/public/x', { 'x-api-key': k });
    expect(apiKey.status).toBe(200);
    expect(apiKey.json.headers['x-api-key']).toBeUndefined();
    // Even one that is not valid but looks like ours.
    const junk = await get('/public/x', { authorization: 'Bearer kg_acme_deadbeef' });
    expect(junk.json.headers.authorization).toBeUndefined();
  });

  it('forward a Bearer token that is not a keygate key', async () => {
    const res = await get('/public/x', { authorization: 'Bearer upstream-own-token' });
    expect(res.json.headers.authorization).toBe('Bearer upstream-own-token');
  });
});

describe('keygate\'s own errors', () => {
  it('404 no_route as problem+json', async () => {
    expectProblem(await get('/nowhere'), 404, 'no_route');
    expectProblem(await get('/apix'), 404, 'no_route');
  });

  it('413 payload_too_large for a declared body over the route limit, before the upstream sees it', async () => {
    const { key: k } = await key({ tenant: 'acme', name: 'big' });
    const before = bodyUp.received.length;
    const res = await rawRequest(t.url, { method: 'POST', path: '/upload', headers: { 'x-api-key': k }, body: 'x'.repeat(65) });
    expectProblem(res, 413, 'payload_too_large');
    expect(bodyUp.received.length).toBe(before);
    const ok = await rawRequest(t.url, { method: 'POST', path: '/upload', headers: { 'x-api-key': k }, body: 'x'.repeat(64) });
    expect(ok.status).toBe(200);
    expect(ok.json.body).toBe('x'.repeat(64));
  });

  it('413 payload_too_large for a chunked body that grows over the limit', async () => {
    const { key: k } = await key({ tenant: 'acme', name: 'chunked' });
    const res = await rawRequest(t.url, { method: 'POST', path: '/upload', headers: { 'x-api-key': k, 'transfer-encoding': 'chunked' }, body: 'y'.repeat(200) });
    expectProblem(res, 413, 'payload_too_large');
  });
});

describe('Expect: 100-continue', () => {
  it('an authenticated upload gets 100 Continue and its body reaches the upstream', async () => {
    const { key: k } = await key({ tenant: 'acme', name: 'upload' });
    const res = await rawRequest(t.url, { method: 'PUT', path: '/upload/file', headers: { 'x-api-key': k }, body: 'payload-bytes', expectContinue: true });
    expect(res.continued).toBe(true);
    expect(res.status).toBe(200);
    expect(res.json.body).toBe('payload-bytes');
    expect(res.json.headers.expect).toBeUndefined();
  });

  it('an unauthenticated upload gets 401 without 100 Continue; the body is never sent upstream', async () => {
    const before = bodyUp.received.length;
    const res = await rawRequest(t.url, { method: 'PUT', path: '/upload/file', body: 'secret-payload', expectContinue: true });
    expect(res.continued).toBe(false);
    expectProblem(res, 401, 'missing_credentials');
    const bad = await rawRequest(t.url, { method: 'PUT', path: '/upload/file', headers: { 'x-api-key': generateKey('kg', 'acme') }, body: 'secret-payload', expectContinue: true });
    expect(bad.continued).toBe(false);
    expectProblem(bad, 401, 'invalid_key');
    expect(bodyUp.received.length).toBe(before);
  });
});

describe('access log', () => {
  it('has one line per request with route, status, keyId, tenant and outcome', async () => {
    const { key: k, record } = await key({ tenant: 'logco', name: 'log', permissions: ['read'] });
    await get('/api/logged?q=1', { 'x-api-key': k });
    await get('/write/logged', { 'x-api-key': k });
    await get('/api/logged-anon');
    const lines = await waitFor(() => {
      const found = accessLines(t.logs()).filter((l) => String(l.path).includes('logged'));
      return found.length >= 3 ? found : null;
    });
    const ok = lines.find((l) => l.path === '/api/logged')!;
    expect(ok).toMatchObject({ method: 'GET', route: 'api', status: 200, keyId: record.id, tenant: 'logco', outcome: 'ok', code: null });
    expect(typeof ok.ms).toBe('number');
    expect(lines.find((l) => l.path === '/write/logged')).toMatchObject({ route: 'write', status: 403, keyId: record.id, tenant: 'logco', outcome: 'forbidden', code: 'forbidden_permission' });
    expect(lines.find((l) => l.path === '/api/logged-anon')).toMatchObject({ route: 'api', status: 401, keyId: null, tenant: null, outcome: 'missing', code: 'missing_credentials' });
  });

  it('never contains a key or its hash', async () => {
    await waitFor(() => accessLines(t.logs()).length > 20);
    const logs = t.logs();
    expect(issued.length).toBeGreaterThan(20);
    for (const k of issued) {
      expect(logs).not.toContain(k);
      expect(logs).not.toContain(k.slice(-64, -8)); // the random part alone
      expect(logs).not.toContain(hasher(k));
    }
  });
});

describe('store unavailable', () => {
  it('503 auth_unavailable with Retry-After for a key that is not cached; never 200', async () => {
    const u = await startUpstream();
    const t2 = await startTestKeygate({ routes: [{ name: 'api', pathPrefix: '/api', upstream: u.url }] });
    try {
      const { key: cached } = await t2.keys.create({ tenant: 'acme', name: 'c' });
      expect((await rawRequest(t2.url, { path: '/api', headers: { 'x-api-key': cached } })).status).toBe(200);
      const { key: fresh } = await t2.keys.create({ tenant: 'acme', name: 'f' });
      await t2.keygate.store.close();
      const res = await rawRequest(t2.url, { path: '/api', headers: { 'x-api-key': fresh } });
      expectProblem(res, 503, 'auth_unavailable');
      expect(res.headers['retry-after']).toBe('1');
      expect(u.received.length).toBe(1);
      // A key verified moments ago keeps working from the cache (bounded by maxAgeMs).
      expect((await rawRequest(t2.url, { path: '/api', headers: { 'x-api-key': cached } })).status).toBe(200);
      expect(u.received.length).toBe(2);
    } finally {
      await t2.stop();
      await u.close();
    }
  });
});

/**
 * The forward-auth endpoint (src/transports/forward-auth.ts) over HTTP, as each kind of proxy
 * calls it: a real keygate with `forwardAuth:` on its own listener, asked about original
 * requests by nginx-style (/nginx, X-Original-*), Caddy/Traefik-style (/forwarded,
 * X-Forwarded-*) and Envoy-style (/envoy/<path>) auth requests. The answers are the proxy's:
 * 200 with the identity headers, or the same problem answers (401 with WWW-Authenticate, 403,
 * 404, 429 with Retry-After, 503); route policy is applied to the original method, host and
 * path; only trusted proxy addresses are answered; the key is never in an answer or a log.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { accessLines, expectProblem, rawRequest, waitFor, type RawResponse } from '../helpers/http.ts';
import { startTestKeygate, type TestKeygate } from '../helpers/keygate.ts';
import { testHasher } from '../helpers/pepper.ts';
import { generateKey } from '../../src/keys/format.ts';

let t: TestKeygate;
let fa: string;
const issued: string[] = [];

async function key(input: Parameters<TestKeygate['keys']['create']>[0]): Promise<string> {
  const created = await t.keys.create(input);
  issued.push(created.key);
  return created.key;
}

/** What nginx's auth_request location sends (docs/forward-auth.md). */
function nginx(method: string, uri: string, host: string, headers: Record<string, string> = {}, base = fa): Promise<RawResponse> {
  return rawRequest(base, { path: '/nginx', headers: { 'x-original-method': method, 'x-original-uri': uri, 'x-original-host': host, 'x-forwarded-for': '198.51.100.1', ...headers } });
}

/** What Caddy's forward_auth and Traefik's forwardAuth send. */
function forwarded(method: string, uri: string, host: string, headers: Record<string, string> = {}): Promise<RawResponse> {
  return rawRequest(fa, { path: '/forwarded', headers: { 'x-forwarded-method': method, 'x-forwarded-uri': uri, 'x-forwarded-host': host, 'x-forwarded-proto': 'https', 'x-forwarded-for': '198.51.100.1', ...headers } });
}

/** What Envoy's ext_authz http_service sends (path_prefix /envoy). */
function envoy(method: string, path: string, host: string, headers: Record<string, string> = {}): Promise<RawResponse> {
  return rawRequest(fa, { method, path: `/envoy${path}`, headers: { host, 'x-forwarded-for': '198.51.100.1', ...headers } });
}

const UPSTREAM = 'http://127.0.0.1:9'; // never contacted: the proxy in front forwards

beforeAll(async () => {
  t = await startTestKeygate({
    forwardAuth: { host: '127.0.0.1', port: 0 },
    limits: { failedAuth: { max: 2, windowMs: 60_000 } },
    routes: [
      { name: 'api', pathPrefix: '/api', upstream: UPSTREAM, auth: { permissions: ['read'] } },
      { name: 'write', pathPrefix: '/write', upstream: UPSTREAM, auth: { permissions: ['read', 'write'] } },
      { name: 'tenant', pathPrefix: '/t', upstream: UPSTREAM, auth: { tenantFromPath: true } },
      { name: 'public', pathPrefix: '/public', upstream: UPSTREAM, auth: { required: false } },
      { name: 'hosted', host: 'app.example.com', pathPrefix: '/', upstream: UPSTREAM, auth: { permissions: ['app'] } },
      { name: 'limited', pathPrefix: '/limited', upstream: UPSTREAM, limits: { rates: [{ by: 'key', rate: '2/60s' }] } },
      { name: 'sandboxed', pathPrefix: '/sandboxed', upstream: UPSTREAM, sandbox: { upstream: 'http://127.0.0.1:10' } },
      { name: 'mcp', pathPrefix: '/mcp', upstream: UPSTREAM, mcp: { resource: 'https://mcp.example.com/mcp', policy: {} } },
    ],
  });
  fa = `http://127.0.0.1:${t.keygate.forwardAuthPort}`;
});

afterAll(async () => {
  await t?.stop();
});

describe('200: the identity headers, the values keygate\'s proxy injects', () => {
  it('nginx, Caddy/Traefik and Envoy styles answer alike for the same original request', async () => {
    const k = await key({ tenant: 'acme', name: 'reader', permissions: ['read', 'extra'], user: 'ann', client: 'cli' });
    const id = (await t.keys.list({ tenant: 'acme' })).find((r) => r.name === 'reader')!.id;
    const expected = { 'x-tenant-id': 'acme', 'x-api-key-id': id, 'x-auth-role': 'api-user', 'x-auth-permissions': 'read,extra', 'x-auth-user': 'ann', 'x-auth-client': 'cli', 'x-auth-environment': 'live' };
    for (const res of [await nginx('GET', '/api/orders?x=1', 'api.example.com', { 'x-api-key': k }), await forwarded('GET', '/api/orders', 'api.example.com', { authorization: `Bearer ${k}` })]) {
      expect(res.status, res.body).toBe(200);
      expect(res.headers).toMatchObject(expected);
      expect(res.headers['cache-control']).toBe('no-store');
      expect(res.body).toBe('');
      expect(res.rawHeaders.join('\n')).not.toContain(k);
    }
    const e = await envoy('POST', '/api/orders?x=1', 'api.example.com', { authorization: `Bearer ${k}` });
    expect(e.status).toBe(200);
    expect(e.headers).toMatchObject(expected);
    expect(e.headers['x-envoy-auth-headers-to-remove']).toBe('x-api-key, authorization');
  });

  it('identity headers without a value are sent empty (a proxy that copies them overwrites the client\'s); Envoy is told to remove them', async () => {
    const k = await key({ tenant: 'acme', name: 'bare', permissions: ['read'] });
    const res = await forwarded('GET', '/api', 'api.example.com', { 'x-api-key': k, 'x-auth-user': 'forged' });
    expect(res.status).toBe(200);
    expect(res.headers['x-auth-user']).toBe('');
    expect(res.headers['x-auth-client']).toBe('');
    const e = await envoy('GET', '/api', 'api.example.com', { 'x-api-key': k });
    expect(e.headers['x-auth-user']).toBeUndefined();
    expect(e.headers['x-envoy-auth-headers-to-remove']).toBe('x-api-key, x-auth-user, x-auth-client');
  });

  it('a public route: 200, every identity header empty (no key needed)', async () => {
    const res = await nginx('GET', '/public/page', 'api.example.com', { 'x-tenant-id': 'forged' });
    expect(res.status).toBe(200);
    for (const name of ['x-tenant-id', 'x-api-key-id', 'x-auth-role', 'x-auth-permissions', 'x-auth-user', 'x-auth-client', 'x-auth-environment']) expect(res.headers[name]).toBe('');
  });
});

describe('refusals: the proxy\'s own problem answers', () => {
  it('no key: 401 missing_credentials with WWW-Authenticate; /nginx repeats the problem in X-Keygate-Problem', async () => {
    const res = await nginx('GET', '/api/x', 'api.example.com');
    expectProblem(res, 401, 'missing_credentials');
    expect(res.headers['www-authenticate']).toBe('Bearer realm="keygate"');
    expect(JSON.parse(res.headers['x-keygate-problem'] as string)).toEqual(res.json);
    const f = await forwarded('GET', '/api/x', 'api.example.com');
    expectProblem(f, 401, 'missing_credentials');
    expect(f.headers['x-keygate-problem']).toBeUndefined();
  });

  it('a made-up key: 401 invalid_key; a revoked one: 401 key_revoked at the very next check', async () => {
    const bad = await nginx('GET', '/api/x', 'api.example.com', { 'x-api-key': 'kg_acme_' + 'ab'.repeat(32) });
    expectProblem(bad, 401, 'invalid_key');
    expect(bad.headers['www-authenticate']).toContain('error="invalid_token"');
    const k = await key({ tenant: 'acme', name: 'soon-revoked', permissions: ['read'] });
    expect((await forwarded('GET', '/api/x', 'api.example.com', { 'x-api-key': k })).status).toBe(200);
    const id = (await t.keys.list({ tenant: 'acme' })).find((r) => r.name === 'soon-revoked')!.id;
    await t.keys.revoke(id);
    expectProblem(await forwarded('GET', '/api/x', 'api.example.com', { 'x-api-key': k }), 401, 'key_revoked');
  });

  it('route policy on the original method, host and path: permissions, tenant in path, host routes, no route', async () => {
    const k = await key({ tenant: 'acme', name: 'policy', permissions: ['read'] });
    expect((await nginx('GET', '/api/a', 'x.example', { 'x-api-key': k })).status).toBe(200);
    const denied = await nginx('POST', '/write/a', 'x.example', { 'x-api-key': k });
    expectProblem(denied, 403, 'forbidden_permission');
    expect(denied.headers['www-authenticate']).toContain('error="insufficient_scope"');
    expect((await forwarded('GET', '/t/acme/items', 'x.example', { 'x-api-key': k })).status).toBe(200);
    expectProblem(await forwarded('GET', '/t/globex/items', 'x.example', { 'x-api-key': k }), 403, 'forbidden_tenant');
    // The host route needs `app`; on another host the same path has no route.
    expectProblem(await forwarded('GET', '/dashboard', 'app.example.com', { 'x-api-key': k }), 403, 'forbidden_permission');
    expectProblem(await forwarded('GET', '/dashboard', 'other.example.com', { 'x-api-key': k }), 404, 'no_route');
    // The path as the upstream will read it: dot segments resolved, misleading paths refused.
    expectProblem(await nginx('GET', '/public/../write/a', 'x.example', { 'x-api-key': k }), 403, 'forbidden_permission');
    expectProblem(await nginx('GET', '/public/%2e%2e/write/a', 'x.example', { 'x-api-key': k }), 403, 'forbidden_permission');
    expectProblem(await nginx('GET', '/public/..%2fwrite', 'x.example', { 'x-api-key': k }), 400, 'bad_request');
    expectProblem(await nginx('TRACE', '/api/a', 'x.example', { 'x-api-key': k }), 405, 'method_not_allowed');
  });

  it('only the path\'s own convention counts: headers of the other one a client slipped through change nothing', async () => {
    // A client behind Caddy sends X-Original-URI: /public; Caddy sets X-Forwarded-Uri to what it forwards.
    expectProblem(await forwarded('GET', '/api/x', 'x.example', { 'x-original-uri': '/public', 'x-original-host': 'x.example', 'x-original-method': 'GET' }), 401, 'missing_credentials');
    // A client behind nginx sends X-Forwarded-Uri: /public; nginx sets X-Original-URI.
    expectProblem(await nginx('GET', '/api/x', 'x.example', { 'x-forwarded-uri': '/public', 'x-forwarded-host': 'x.example', 'x-forwarded-method': 'GET' }), 401, 'missing_credentials');
  });

  it('rate limits: 429 with Retry-After and the RateLimit fields', async () => {
    const k = await key({ tenant: 'acme', name: 'limited' });
    const first = await forwarded('GET', '/limited', 'x.example', { 'x-api-key': k });
    expect(first.status).toBe(200);
    expect(first.headers['ratelimit-policy']).toBeDefined();
    expect((await forwarded('GET', '/limited', 'x.example', { 'x-api-key': k })).status).toBe(200);
    const limited = await nginx('GET', '/limited', 'x.example', { 'x-api-key': k });
    expectProblem(limited, 429, 'rate_limited');
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    expect(JSON.parse(limited.headers['x-keygate-problem'] as string).code).toBe('rate_limited');
  });

  it('the failed-auth limit counts the original client (right-most X-Forwarded-For), not the proxy', async () => {
    // Well-formed keys the store does not know: the only failures that count.
    const unknown = () => generateKey('kg', 'acme');
    for (let i = 0; i < 2; i++) expectProblem(await nginx('GET', '/api', 'x.example', { 'x-api-key': unknown(), 'x-forwarded-for': '203.0.113.50' }), 401, 'invalid_key');
    const blocked = await nginx('GET', '/api', 'x.example', { 'x-api-key': unknown(), 'x-forwarded-for': '203.0.113.50' });
    expectProblem(blocked, 429, 'rate_limited');
    expect(blocked.headers['retry-after']).toBeDefined();
    // Another client behind the same proxy is not blocked.
    expectProblem(await nginx('GET', '/api', 'x.example', { 'x-api-key': unknown(), 'x-forwarded-for': '203.0.113.51' }), 401, 'invalid_key');
  });

  it('a sandbox key: 403 forbidden_environment (the proxy cannot send it to the sandbox upstream)', async () => {
    const k = await key({ tenant: 'acme', name: 'sbx', environment: 'sandbox' });
    expectProblem(await forwarded('GET', '/sandboxed/x', 'x.example', { 'x-api-key': k }), 403, 'forbidden_environment');
    expectProblem(await forwarded('GET', '/api/x', 'x.example', { 'x-api-key': k }), 403, 'forbidden_environment');
  });

  it('a route that judges request bodies (mcp.policy, webhook): refused, never let through unjudged', async () => {
    const k = await key({ tenant: 'acme', name: 'mcp' });
    const res = await forwarded('POST', '/mcp', 'mcp.example.com', { 'x-api-key': k });
    expectProblem(res, 404, 'no_route');
    expect(res.json.detail).toContain('mcp.policy');
  });

  it('an auth request that does not say what it is about: 400 naming the header; an unknown path: 404', async () => {
    const res = await rawRequest(fa, { path: '/nginx', headers: { 'x-original-method': 'GET', 'x-original-host': 'x.example' } });
    expectProblem(res, 400, 'bad_request');
    expect(res.json.detail).toContain('x-original-uri');
    expect(res.headers['x-keygate-problem']).toBeDefined();
    expectProblem(await rawRequest(fa, { path: '/', headers: {} }), 404, 'not_found');
  });
});

describe('trust', () => {
  it('an address outside forwardAuth.trustedProxies gets 403 whatever it asks', async () => {
    const other = await startTestKeygate({ forwardAuth: { host: '127.0.0.1', port: 0, trustedProxies: ['192.0.2.0/24', '::1'] }, routes: [{ name: 'public', pathPrefix: '/', upstream: UPSTREAM, auth: { required: false } }] });
    try {
      const res = await nginx('GET', '/anything', 'x.example', {}, `http://127.0.0.1:${other.keygate.forwardAuthPort}`);
      expectProblem(res, 403, 'forbidden');
      expect(res.headers['x-tenant-id']).toBeUndefined();
    } finally {
      await other.stop();
    }
  });
});

describe('store unavailable', () => {
  it('503 auth_unavailable with Retry-After for a key that is not cached; never 200', async () => {
    const t2 = await startTestKeygate({ forwardAuth: { host: '127.0.0.1', port: 0 }, routes: [{ name: 'api', pathPrefix: '/api', upstream: UPSTREAM }] });
    try {
      const base = `http://127.0.0.1:${t2.keygate.forwardAuthPort}`;
      const { key: fresh } = await t2.keys.create({ tenant: 'acme', name: 'f' });
      issued.push(fresh);
      await t2.keygate.store.close();
      const res = await nginx('GET', '/api/x', 'x.example', { 'x-api-key': fresh }, base);
      expectProblem(res, 503, 'auth_unavailable');
      expect(res.headers['retry-after']).toBe('1');
      expect(JSON.parse(res.headers['x-keygate-problem'] as string).status).toBe(503);
    } finally {
      await t2.stop();
    }
  });
});

describe('logs', () => {
  it('one access line per check (transport forward-auth, the original method and path); never a key or its hash', async () => {
    const lines = await waitFor(() => {
      const found = accessLines(t.logs()).filter((l) => l.transport === 'forward-auth');
      return found.length > 10 ? found : null;
    });
    expect(lines.some((l) => l.method === 'POST' && l.path === '/write/a' && l.status === 403 && l.code === 'forbidden_permission')).toBe(true);
    const logs = t.logs();
    for (const k of issued) {
      expect(logs).not.toContain(k);
      expect(logs).not.toContain(testHasher(k));
    }
  });
});

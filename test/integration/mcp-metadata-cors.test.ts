/**
 * What a browser or an MCP client meets before it has a credential: RFC 9728 metadata
 * served by keygate (URL exactness, trailing slashes, the root form, host scoping), the
 * challenges that point to it, CORS (preflight, allowed, refused, exposed headers, the
 * upstream's CORS headers dropped), the Origin check of MCP routes, and all of it following
 * a config reload.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RawConfig } from '../../src/config/schema.ts';
import { createLoggers } from '../../src/observability/logger.ts';
import { startKeygate, type Keygate } from '../../src/server.ts';
import { rawRequest, type RawResponse } from '../helpers/http.ts';
import { captureStream, startTestKeygate, testConfig, type TestKeygate } from '../helpers/keygate.ts';
import { startTestIssuer, type TestIssuer } from '../helpers/oauth-issuer.ts';
import { startUpstream, type TestUpstream } from '../helpers/upstream.ts';
import { TEST_PEPPER } from '../helpers/pepper.ts';

const WK = '/.well-known/oauth-protected-resource';
const APP = 'https://app.example.com';

let up: TestUpstream;
/** Sets CORS headers and a session id of its own, to see what keygate does with them. */
let corsUp: TestUpstream;
let a: TestKeygate, b: TestKeygate;
let keyA: string;
let keyB: string;

function req(t: TestKeygate, path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<RawResponse> {
  return rawRequest(t.url, { path, headers, method });
}

beforeAll(async () => {
  up = await startUpstream();
  corsUp = await startUpstream((request, res) => {
    request.resume();
    res.writeHead(200, {
      'content-type': 'application/json',
      'access-control-allow-origin': '*',
      'access-control-allow-headers': '*',
      'access-control-expose-headers': 'x-secret-internal',
      vary: 'Accept-Encoding',
      'mcp-session-id': 'session-1',
    });
    res.end(JSON.stringify({ origin: request.headers.origin ?? null }));
  });
  a = await startTestKeygate({
    routes: [
      {
        name: 'mcp',
        pathPrefix: '/mcp',
        upstream: up.url,
        auth: { permissions: ['mcp:use'] },
        mcp: { resource: 'https://mcp.example.com/mcp', authorizationServers: ['https://id.example.com/realms/corp'], resourceName: 'Example MCP' },
      },
      { name: 'slash', pathPrefix: '/slash', upstream: up.url, mcp: { resource: 'https://mcp.example.com/slash/', scopesSupported: ['a', 'b'] } },
      { name: 'ext', pathPrefix: '/internal', upstream: up.url, mcp: { resource: 'https://api.example.com:8443/public/mcp', resourceDocumentation: 'https://docs.example.com/mcp-keys' } },
      { name: 'open-mcp', pathPrefix: '/open-mcp', upstream: up.url, auth: { required: false }, mcp: { resource: 'https://mcp.example.com/open-mcp' } },
      { name: 'rooted', host: 'root.test', pathPrefix: '/', upstream: up.url, mcp: { resource: 'https://root.test' } },
      { name: 'plain', pathPrefix: '/plain', upstream: up.url },
    ],
  });
  keyA = (await a.keys.create({ tenant: 'acme', name: 'a', permissions: ['mcp:use'] })).key;
  b = await startTestKeygate({
    routes: [
      {
        name: 'app',
        pathPrefix: '/mcp',
        upstream: corsUp.url,
        mcp: { resource: 'https://mcp.example.com/mcp' },
        cors: { origins: [APP, 'http://localhost:5173'], credentials: true, exposeHeaders: ['X-Request-Id'] },
      },
      { name: 'legacy', pathPrefix: '/legacy', upstream: corsUp.url, cors: { origins: [APP], methods: ['GET', 'POST'], maxAgeSeconds: 60 } },
      { name: 'open', pathPrefix: '/open', upstream: corsUp.url },
    ],
  });
  keyB = (await b.keys.create({ tenant: 'acme', name: 'b' })).key;
});

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  await Promise.all([up?.close(), corsUp?.close()]);
});

describe('protected resource metadata', () => {
  it('is served by keygate, without a key, and never forwarded', async () => {
    const before = up.received.length;
    const res = await req(a, `${WK}/mcp`);
    expect(res.status, res.body).toBe(200);
    expect(res.headers['content-type']).toBe('application/json');
    expect(res.headers['cache-control']).toBe('public, max-age=300');
    expect(res.headers['access-control-allow-origin']).toBe('*');
    expect(res.json).toEqual({
      resource: 'https://mcp.example.com/mcp',
      authorization_servers: ['https://id.example.com/realms/corp'],
      scopes_supported: ['mcp:use'],
      bearer_methods_supported: ['header'],
      resource_name: 'Example MCP',
      keygate_api_keys: { headers: ['X-Api-Key', 'Authorization: Bearer'] },
    });
    expect(up.received.length).toBe(before);
  });

  it('on a key-only route: no authorization_servers (there is none), but keygate_api_keys and resource_documentation say how to get in', async () => {
    const doc = await req(a, `${WK}/public/mcp`);
    expect(doc.json).toEqual({
      resource: 'https://api.example.com:8443/public/mcp',
      bearer_methods_supported: ['header'],
      resource_documentation: 'https://docs.example.com/mcp-keys',
      keygate_api_keys: { headers: ['X-Api-Key', 'Authorization: Bearer'] },
    });
  });

  it('on a public MCP route (no key needed) it does not advertise keys', async () => {
    const doc = await req(a, `${WK}/open-mcp`);
    expect(doc.status).toBe(200);
    expect(doc.json.keygate_api_keys).toBeUndefined();
  });

  it('the 401 points at it, from the configured resource, whatever Host the request names', async () => {
    for (const host of ['127.0.0.1', 'evil.example:1234']) {
      const res = await rawRequest(a.url, { path: '/mcp/x', headers: ['Host', host] });
      expect(res.status).toBe(401);
      expect(res.headers['www-authenticate']).toBe('Bearer realm="keygate", resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp", scope="mcp:use"');
    }
    const invalid = await req(a, '/mcp/x', { 'x-api-key': 'kg_acme_nope' });
    expect(invalid.headers['www-authenticate']).toMatch(/^Bearer realm="keygate", resource_metadata="https:\/\/mcp\.example\.com\/\.well-known\/oauth-protected-resource\/mcp", scope="mcp:use", error="invalid_token", error_description="/);
  });

  it('keeps a trailing slash exactly as configured, and also answers without it', async () => {
    const res = await req(a, '/slash/x');
    expect(res.headers['www-authenticate']).toBe('Bearer realm="keygate", resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/slash/"');
    for (const path of [`${WK}/slash/`, `${WK}/slash`]) {
      const doc = await req(a, path);
      expect(doc.status, path).toBe(200);
      expect(doc.json.resource).toBe('https://mcp.example.com/slash/');
      expect(doc.json.scopes_supported).toEqual(['a', 'b']);
      expect(doc.json.authorization_servers).toBeUndefined();
    }
  });

  it("is derived from the resource's path and port, and also served at the route's own path", async () => {
    expect((await req(a, '/internal/x')).headers['www-authenticate']).toBe('Bearer realm="keygate", resource_metadata="https://api.example.com:8443/.well-known/oauth-protected-resource/public/mcp"');
    for (const path of [`${WK}/public/mcp`, `${WK}/internal`]) expect((await req(a, path)).json?.resource, path).toBe('https://api.example.com:8443/public/mcp');
  });

  it('a resource without a path has its document at the root form, and keeps its exact spelling', async () => {
    const res = await rawRequest(a.url, { path: '/x', headers: ['Host', 'root.test'] });
    expect(res.headers['www-authenticate']).toBe('Bearer realm="keygate", resource_metadata="https://root.test/.well-known/oauth-protected-resource"');
    const doc = await rawRequest(a.url, { path: WK, headers: ['Host', 'root.test'] });
    expect(doc.status).toBe(200);
    expect(doc.json.resource).toBe('https://root.test');
  });

  it('the root form is 404 where several resources share the host, and the only one where one does', async () => {
    const ambiguous = await req(a, WK);
    expect(ambiguous.status).toBe(404);
    expect(ambiguous.json.code).toBe('not_found');
    expect(ambiguous.json.detail).toMatch(/several protected resources/);
    const single = await req(b, WK);
    expect(single.status).toBe(200);
    expect(single.json.resource).toBe('https://mcp.example.com/mcp');
  });

  it('HEAD, a preflight and other methods', async () => {
    const head = await req(a, `${WK}/mcp`, {}, 'HEAD');
    expect(head.status).toBe(200);
    expect(head.body).toBe('');
    expect(Number(head.headers['content-length'])).toBeGreaterThan(50);
    const preflight = await req(a, `${WK}/mcp`, { origin: 'https://anywhere.example', 'access-control-request-method': 'GET', 'access-control-request-headers': 'mcp-protocol-version' }, 'OPTIONS');
    expect(preflight.status).toBe(204);
    expect(preflight.headers['access-control-allow-origin']).toBe('*');
    expect(preflight.headers['access-control-allow-headers']).toBe('*');
    const post = await req(a, `${WK}/mcp`, {}, 'POST');
    expect(post.status).toBe(405);
    expect(post.json.code).toBe('method_not_allowed');
    expect(post.headers.allow).toBe('GET, HEAD, OPTIONS');
  });

  it('unknown well-known paths are routed as usual', async () => {
    const res = await req(a, `${WK}/nothing-here`);
    expect(res.status).toBe(404);
    expect(res.json.code).toBe('no_route');
  });
});

describe('Origin on MCP routes without cors', () => {
  it('a foreign Origin is 403 forbidden_origin, even with a valid key; the upstream sees nothing', async () => {
    const before = up.received.length;
    const res = await req(a, '/mcp/x', { 'x-api-key': keyA, origin: 'http://evil.example' });
    expect(res.status).toBe(403);
    expect(res.json.code).toBe('forbidden_origin');
    expect(res.headers['access-control-allow-origin']).toBeUndefined();
    expect((await req(a, '/mcp/x', { 'x-api-key': keyA, origin: 'null' })).status).toBe(403);
    expect(up.received.length).toBe(before);
  });

  it("the resource's own origin (a same-origin page) and no Origin pass", async () => {
    expect((await req(a, '/mcp/x', { 'x-api-key': keyA, origin: 'https://mcp.example.com' })).status).toBe(200);
    expect((await req(a, '/mcp/x', { 'x-api-key': keyA })).status).toBe(200);
  });

  it('routes without mcp or cors pass Origin and the upstream CORS headers through untouched', async () => {
    const res = await req(b, '/open/x', { 'x-api-key': keyB, origin: 'http://evil.example' });
    expect(res.status).toBe(200);
    expect(res.json.origin).toBe('http://evil.example');
    expect(res.headers['access-control-allow-origin']).toBe('*');
    expect((await req(a, '/plain/x', { 'x-api-key': keyA, origin: 'http://evil.example' })).status).toBe(200);
  });
});

describe('CORS', () => {
  it('a preflight from a listed origin is answered by keygate, with no key', async () => {
    const before = corsUp.received.length;
    const res = await req(b, '/mcp', { origin: APP, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type, mcp-session-id, mcp-protocol-version' }, 'OPTIONS');
    expect(res.status).toBe(204);
    expect(res.headers['access-control-allow-origin']).toBe(APP);
    expect(res.headers['access-control-allow-methods']).toBe('GET, HEAD, POST, PUT, PATCH, DELETE');
    expect(res.headers['access-control-allow-headers']).toBe('Authorization, Content-Type, Mcp-Session-Id, MCP-Protocol-Version, Last-Event-ID, X-Api-Key');
    expect(res.headers['access-control-allow-credentials']).toBe('true');
    expect(res.headers['access-control-max-age']).toBe('600');
    expect(res.headers.vary).toContain('Origin');
    expect(corsUp.received.length).toBe(before);
    const legacy = await req(b, '/legacy', { origin: APP, 'access-control-request-method': 'GET' }, 'OPTIONS');
    expect(legacy.headers['access-control-allow-methods']).toBe('GET, POST');
    expect(legacy.headers['access-control-max-age']).toBe('60');
    expect(legacy.headers['access-control-allow-credentials']).toBeUndefined();
  });

  it('a preflight or a request from any other origin is 403 forbidden_origin', async () => {
    for (const origin of ['https://evil.example', 'https://app.example.com.evil.example', 'http://app.example.com', 'null']) {
      const preflight = await req(b, '/mcp', { origin, 'access-control-request-method': 'POST' }, 'OPTIONS');
      expect(preflight.status, origin).toBe(403);
      expect(preflight.json.code).toBe('forbidden_origin');
      expect(preflight.headers['access-control-allow-origin']).toBeUndefined();
      expect((await req(b, '/mcp', { origin, 'x-api-key': keyB }, 'POST')).status).toBe(403);
    }
  });

  it("keygate's own 401 is readable by the page: allow-origin and the exposed challenge", async () => {
    const res = await req(b, '/mcp', { origin: APP }, 'POST');
    expect(res.status).toBe(401);
    expect(res.headers['access-control-allow-origin']).toBe(APP);
    expect(res.headers['access-control-allow-credentials']).toBe('true');
    expect(res.headers['access-control-expose-headers']).toBe('Mcp-Session-Id, WWW-Authenticate, x-request-id');
    expect(res.headers.vary).toBe('Origin');
    expect(res.headers['www-authenticate']).toContain('resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp"');
  });

  it("an allowed request gets keygate's CORS headers only; the upstream's are dropped, its Vary kept", async () => {
    const res = await req(b, '/mcp', { origin: APP, 'x-api-key': keyB }, 'POST');
    expect(res.status, res.body).toBe(200);
    expect(res.json.origin).toBe(APP);
    expect(res.headers['access-control-allow-origin']).toBe(APP);
    expect(res.headers['access-control-allow-headers']).toBeUndefined();
    expect(res.headers['access-control-expose-headers']).toBe('Mcp-Session-Id, WWW-Authenticate, x-request-id');
    expect(res.headers['mcp-session-id']).toBe('session-1');
    expect(res.headers.vary).toBe('Accept-Encoding, Origin');
  });

  it('without an Origin: no CORS headers at all, Vary: Origin for caches', async () => {
    const res = await req(b, '/mcp', { 'x-api-key': keyB }, 'POST');
    expect(res.status).toBe(200);
    expect(Object.keys(res.headers).filter((h) => h.startsWith('access-control-'))).toEqual([]);
    expect(res.headers.vary).toBe('Accept-Encoding, Origin');
  });

  it('a preflight asking for Mcp-* headers (Mcp-Method, Mcp-Name, Mcp-Param-<name>) gets them allowed by pattern', async () => {
    const res = await req(b, '/mcp', { origin: APP, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type,mcp-method,mcp-name,mcp-param-foo,mcp-param-region,mcp-protocol-version' }, 'OPTIONS');
    expect(res.status).toBe(204);
    const allowed = res.headers['access-control-allow-headers']!.split(', ').map((h) => h.toLowerCase());
    for (const name of ['content-type', 'mcp-method', 'mcp-name', 'mcp-param-foo', 'mcp-param-region', 'mcp-protocol-version', 'authorization']) expect(allowed, name).toContain(name);
    // Already in the fixed list: not repeated.
    expect(allowed.filter((h) => h === 'mcp-protocol-version')).toHaveLength(1);
    expect(res.headers.vary).toContain('Access-Control-Request-Headers');
    // The browser then sends them, and they reach the upstream untouched.
    const sent = await req(b, '/mcp', { origin: APP, 'x-api-key': keyB, 'mcp-method': 'tools/call', 'mcp-name': 'get_weather', 'mcp-param-region': 'us-west1' }, 'POST');
    expect(sent.status).toBe(200);
    const received = corsUp.received.at(-1)!.headers;
    expect(received).toMatchObject({ 'mcp-method': 'tools/call', 'mcp-name': 'get_weather', 'mcp-param-region': 'us-west1' });
  });

  it('only Mcp-* names of header-name shape are echoed: other headers, look-alikes and floods are not', async () => {
    const ask = (requested: string) => req(b, '/mcp', { origin: APP, 'access-control-request-method': 'POST', 'access-control-request-headers': requested }, 'OPTIONS');
    const forged = await ask('x-tenant-id, x-evil, mcp-, mcp-param-a"b, mcpx-param-y, xmcp-param-z, mcp-param-ok, mcp-param-ok, MCP-PARAM-UPPER');
    expect(forged.status).toBe(204);
    const allowed = forged.headers['access-control-allow-headers']!;
    expect(allowed).toBe('Authorization, Content-Type, Mcp-Session-Id, MCP-Protocol-Version, Last-Event-ID, X-Api-Key, mcp-param-ok, mcp-param-upper');
    // A thousand made-up names: at most 64 are echoed.
    const many = Array.from({ length: 1000 }, (_, i) => `mcp-param-p${i}`);
    const flooded = await ask(many.slice(0, 500).join(','));
    expect(flooded.headers['access-control-allow-headers']!.split(', ').filter((h) => h.startsWith('mcp-param-'))).toHaveLength(64);
    // A list longer than any browser sends (8 KB) is read no further: the fixed list only.
    const huge = await ask(many.join(','));
    expect(huge.status).toBe(204);
    expect(huge.headers['access-control-allow-headers']).toBe('Authorization, Content-Type, Mcp-Session-Id, MCP-Protocol-Version, Last-Event-ID, X-Api-Key');
    // And an Origin not on the list gets nothing, whatever it asks for.
    const other = await req(b, '/mcp', { origin: 'https://evil.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'mcp-param-foo' }, 'OPTIONS');
    expect(other.status).toBe(403);
    expect(other.headers['access-control-allow-headers']).toBeUndefined();
  });

  it('an OPTIONS without Access-Control-Request-Method is an ordinary request (key needed)', async () => {
    const res = await req(b, '/mcp', { origin: APP }, 'OPTIONS');
    expect(res.status).toBe(401);
  });
});

describe('after a config reload', () => {
  let dir: string;
  let keygate: Keygate;
  let idp: TestIssuer;
  let raw: RawConfig;
  const url = () => `http://127.0.0.1:${keygate.proxyPort}`;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'keygate-mcp-reload-'));
    idp = await startTestIssuer();
    raw = {
      oauth: { issuers: [{ name: 'test', issuer: idp.issuer, jwksUri: idp.jwksUri, tenant: 'acme' }] },
      routes: [{ name: 'mcp', pathPrefix: '/mcp', upstream: up.url, mcp: { resource: 'https://one.example/mcp' }, auth: { issuers: ['test'] } }],
    };
    const capture = captureStream();
    const loggers = createLoggers({ level: 'info', destination: capture.stream });
    keygate = await startKeygate({ config: testConfig(raw, dir), env: { KEYGATE_PEPPER: TEST_PEPPER }, logger: loggers.logger, accessLogger: loggers.access, reloadConfig: () => testConfig(raw, dir) });
  });

  afterAll(async () => {
    await keygate?.close(500);
    await idp?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('serves the new resource and CORS policy; an unchanged issuer keeps its fetched keys', async () => {
    const token = await idp.token('https://one.example/mcp');
    expect((await rawRequest(url(), { path: '/mcp/x', headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
    const fetches = idp.fetches;
    raw = { ...raw, routes: [{ ...raw.routes![0]!, mcp: { resource: 'https://two.example/mcp/' }, cors: { origins: [APP] } }] };
    expect(keygate.reload().applied).toEqual(['routes']);
    const doc = await rawRequest(url(), { path: `${WK}/mcp/` });
    expect(doc.json.resource).toBe('https://two.example/mcp/');
    expect(doc.json.authorization_servers).toEqual([idp.issuer]);
    const challenge = await rawRequest(url(), { path: '/mcp/x', headers: { origin: APP } });
    expect(challenge.headers['www-authenticate']).toBe('Bearer realm="keygate", resource_metadata="https://two.example/.well-known/oauth-protected-resource/mcp/"');
    expect(challenge.headers['access-control-allow-origin']).toBe(APP);
    // The old audience is no longer this route's; the new one is, with the keys already fetched.
    expect((await rawRequest(url(), { path: '/mcp/x', headers: { authorization: `Bearer ${token}` } })).json.code).toBe('invalid_token');
    const next = await idp.token('https://two.example/mcp/');
    expect((await rawRequest(url(), { path: '/mcp/x', headers: { authorization: `Bearer ${next}` } })).status).toBe(200);
    expect(idp.fetches).toBe(fetches);
  });

  it('a reload adding an introspection issuer whose secret is not in the environment is refused; what runs stays', async () => {
    const before = raw;
    raw = {
      oauth: { issuers: [...raw.oauth!.issuers!, { name: 'opaque', issuer: 'https://as.example', tenant: 'acme', introspection: { endpoint: 'https://as.example/introspect', clientId: 'kg', clientSecretEnv: 'KG_TEST_UNSET_SECRET' } }] },
      routes: [{ ...raw.routes![0]!, auth: { issuers: ['test', 'opaque'] } }],
    };
    try {
      expect(() => keygate.reload()).toThrow(/oauth\.issuers\[1\]\.introspection\.clientSecretEnv: the environment variable KG_TEST_UNSET_SECRET is not set/);
    } finally {
      raw = before;
    }
    const token = await idp.token((raw.routes![0]!.mcp as { resource: string }).resource);
    expect((await rawRequest(url(), { path: '/mcp/x', headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
  });

  it('an issuer added by a reload is used at once', async () => {
    const second = await startTestIssuer();
    try {
      raw = {
        oauth: { issuers: [...raw.oauth!.issuers!, { name: 'second', issuer: second.issuer, jwksUri: second.jwksUri, tenant: 'globex' }] },
        routes: [{ name: 'mcp', pathPrefix: '/mcp', upstream: up.url, mcp: { resource: 'https://one.example/mcp' }, auth: { issuers: ['test', 'second'] } }],
      };
      expect(keygate.reload().applied).toEqual(['oauth', 'routes']);
      const res = await rawRequest(url(), { path: '/mcp/x', headers: { authorization: `Bearer ${await second.token('https://one.example/mcp')}` } });
      expect(res.status, res.body).toBe(200);
      expect(res.json.headers['x-tenant-id']).toBe('globex');
    } finally {
      await second.close();
    }
  });
});

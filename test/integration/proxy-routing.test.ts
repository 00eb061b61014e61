/**
 * Routing on the normalised path: dot segments, encoded dots and slashes, doubled slashes
 * and host names must never let a request reach a route (or upstream path) it does not
 * belong to. Plus stripPrefix, upstream base paths and the query string.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectProblem, rawRequest, type RawResponse } from '../helpers/http.ts';
import { startTestKeygate, type TestKeygate } from '../helpers/keygate.ts';
import { startUpstream, type TestUpstream } from '../helpers/upstream.ts';
import { rawSocket } from '../helpers/raw-socket.ts';

let mcpUp: TestUpstream;
let adminUp: TestUpstream;
let publicUp: TestUpstream;
let hostUp: TestUpstream;
let up: TestUpstream;
let t: TestKeygate;
let mcpKey: string;
let adminKey: string;

beforeAll(async () => {
  [mcpUp, adminUp, publicUp, hostUp, up] = await Promise.all([startUpstream(), startUpstream(), startUpstream(), startUpstream(), startUpstream()]);
  t = await startTestKeygate({
    routes: [
      { name: 'mcp', pathPrefix: '/mcp', upstream: mcpUp.url, auth: { permissions: ['mcp:use'] } },
      { name: 'admin', pathPrefix: '/admin', upstream: adminUp.url, auth: { permissions: ['admin'] } },
      { name: 'public', pathPrefix: '/public', upstream: publicUp.url, auth: { required: false } },
      { name: 'mcp-host', pathPrefix: '/mcp', host: 'tenant.example.com', upstream: hostUp.url },
      { name: 'strip', pathPrefix: '/strip', upstream: up.url, stripPrefix: true },
      { name: 'base', pathPrefix: '/base', upstream: `${up.url}/svc/v1/` },
      { name: 'base-strip', pathPrefix: '/bs', upstream: `${up.url}/svc`, stripPrefix: true },
    ],
  });
  mcpKey = (await t.keys.create({ tenant: 'acme', name: 'mcp', permissions: ['mcp:use'] })).key;
  adminKey = (await t.keys.create({ tenant: 'acme', name: 'admin', permissions: ['admin'] })).key;
});

afterAll(async () => {
  await t?.stop();
  await Promise.all([mcpUp, adminUp, publicUp, hostUp, up].map((u) => u?.close()));
});

function get(path: string, headers: Record<string, string> | string[] = {}): Promise<RawResponse> {
  return rawRequest(t.url, { path, headers });
}

function counts() {
  return { mcp: mcpUp.received.length, admin: adminUp.received.length, public: publicUp.received.length, host: hostUp.received.length, up: up.received.length };
}


describe('path tricks', () => {
  const intoAdmin = ['/mcp/../admin/x', '/mcp/%2e%2e/admin/x', '/mcp/%2E%2E/admin/x', '/mcp/.%2e/admin/x', '/mcp/%2e./admin/x', '/mcp/./../admin/x', '/mcp/a/../../admin/x', '//admin/x', '/mcp/..//admin/x'];

  it.each(intoAdmin)('%s is the admin route: refused for an mcp key, and the mcp upstream sees nothing', async (path) => {
    const before = counts();
    const res = await get(path, { 'x-api-key': mcpKey });
    expectProblem(res, 403, 'forbidden_permission');
    expect(counts()).toEqual(before);
  });

  it.each(intoAdmin)('%s with an admin key reaches the admin upstream as /admin/x', async (path) => {
    const before = counts();
    const res = await get(path, { 'x-api-key': adminKey });
    expect(res.status).toBe(200);
    expect(res.json.url).toBe('/admin/x');
    expect(counts()).toEqual({ ...before, admin: before.admin + 1 });
  });

  it.each(['/public/../admin/x', '/public/%2e%2e/admin/x', '/public/%2E%2e/admin', '//admin', '/public/x/../../admin'])('%s does not ride a public route: 401 without a key', async (path) => {
    const before = counts();
    expectProblem(await get(path), 401, 'missing_credentials');
    expect(counts()).toEqual(before);
  });

  it.each([
    '/mcp%2f..%2fadmin/x',
    '/mcp/..%2fadmin/x',
    '/mcp/..%2Fadmin/x',
    '/mcp/%2e%2e%2fadmin/x',
    '/mcp%2F../admin/x',
    '/mcp/..%5cadmin/x',
    '/mcp/%5c..%5cadmin',
    '/mcp/%00/x',
    '/mcp/%zz',
  ])('%s is refused with 400 and forwarded nowhere', async (path) => {
    const before = counts();
    const res = await get(path, { 'x-api-key': adminKey });
    expectProblem(res, 400, 'bad_request');
    expect(counts()).toEqual(before);
  });

  it('a raw backslash is refused (or rejected by the HTTP parser), never routed', async () => {
    const before = counts();
    const res = await rawSocket(t.url, `GET /mcp\\..\\admin/x HTTP/1.1\r\nHost: gw\r\nX-Api-Key: ${adminKey}\r\nConnection: close\r\n\r\n`);
    expect(res.status).toBe(400);
    expect(counts()).toEqual(before);
  });

  it('an absolute-form target is normalised the same way', async () => {
    const before = counts();
    const res = await rawSocket(t.url, `GET http://gw.example/mcp/../admin/x HTTP/1.1\r\nHost: gw.example\r\nX-Api-Key: ${mcpKey}\r\nConnection: close\r\n\r\n`);
    expect(res.status).toBe(403);
    expect(JSON.parse(res.body)).toMatchObject({ code: 'forbidden_permission' });
    expect(counts()).toEqual(before);
  });

  it('//mcp/x is the mcp route and the upstream gets the clean path', async () => {
    const res = await get('//mcp//x', { 'x-api-key': mcpKey });
    expect(res.status).toBe(200);
    expect(res.json.url).toBe('/mcp/x');
  });

  it('an encoded unreserved character in the prefix still selects that route', async () => {
    expectProblem(await get('/%61dmin/x', { 'x-api-key': mcpKey }), 403, 'forbidden_permission');
    const res = await get('/%6dcp/x', { 'x-api-key': mcpKey });
    expect(res.status).toBe(200);
    expect(res.json.url).toBe('/mcp/x');
  });

  it('matches whole segments, case-sensitively', async () => {
    expectProblem(await get('/mcpx', { 'x-api-key': mcpKey }), 404, 'no_route');
    expectProblem(await get('/MCP/x', { 'x-api-key': mcpKey }), 404, 'no_route');
    expectProblem(await get('/adminx/../mcpz', { 'x-api-key': mcpKey }), 404, 'no_route');
  });

  it('a trailing dot segment stays inside the route', async () => {
    const res = await get('/mcp/x/..', { 'x-api-key': mcpKey });
    expect(res.status).toBe(200);
    expect(res.json.url).toBe('/mcp/');
  });

  it('no upstream ever received a dot segment or an encoded slash', () => {
    for (const u of [mcpUp, adminUp, publicUp, hostUp, up]) {
      for (const r of u.received) {
        const path = r.url.split('?')[0]!;
        expect(path).not.toMatch(/(^|\/)\.\.?(\/|$)/);
        expect(path).not.toMatch(/%2e|%2f|%5c|\/\/|\\/i);
      }
    }
  });
});

describe('host routes', () => {
  it('a route with a host wins for that host, whatever its case or port', async () => {
    for (const host of ['tenant.example.com', 'TENANT.Example.com:9999']) {
      const before = counts();
      const res = await get('/mcp/x', ['Host', host, 'X-Api-Key', adminKey]);
      expect(res.status, host).toBe(200); // this host's route asks for no permission
      expect(counts()).toEqual({ ...before, host: before.host + 1 });
    }
  });

  it('other hosts get the host-less route', async () => {
    const before = counts();
    expectProblem(await get('/mcp/x', ['Host', 'tenant.example.com.evil.net', 'X-Api-Key', adminKey]), 403, 'forbidden_permission');
    expectProblem(await get('/mcp/x', ['Host', 'other.example.com', 'X-Api-Key', adminKey]), 403, 'forbidden_permission');
    expect(counts()).toEqual(before);
  });
});

describe('upstream path', () => {
  it('stripPrefix removes the route prefix, leaving at least "/"', async () => {
    const k = { 'x-api-key': mcpKey };
    expect((await get('/strip/a/b', k)).json.url).toBe('/a/b');
    expect((await get('/strip', k)).json.url).toBe('/');
    expect((await get('/strip/', k)).json.url).toBe('/');
    expect((await get('/strip?x=1', k)).json.url).toBe('/?x=1');
    expect((await get('/strip/../strip/c', k)).json.url).toBe('/c');
  });

  it('the upstream URL\'s base path goes in front', async () => {
    const k = { 'x-api-key': mcpKey };
    expect((await get('/base/a', k)).json.url).toBe('/svc/v1/base/a');
    expect((await get('/bs/a/b', k)).json.url).toBe('/svc/a/b');
    expect((await get('/bs', k)).json.url).toBe('/svc/');
  });
});

describe('query string', () => {
  it('reaches the upstream exactly as sent, even when the path was normalised', async () => {
    const query = '?a=1&b=%2F..%2f&c=d%20e&a=2&path=../admin&empty=&flag';
    const plain = await get(`/mcp/x${query}`, { 'x-api-key': mcpKey });
    expect(plain.json.url).toBe(`/mcp/x${query}`);
    const normalised = await get(`/mcp/y/../x${query}`, { 'x-api-key': mcpKey });
    expect(normalised.json.url).toBe(`/mcp/x${query}`);
    const stripped = await get(`/strip/x${query}`, { 'x-api-key': mcpKey });
    expect(stripped.json.url).toBe(`/x${query}`);
  });

  it('does not decide the route', async () => {
    const res = await get('/mcp/x?/../../admin', { 'x-api-key': mcpKey });
    expect(res.status).toBe(200);
    expect(res.json.url).toBe('/mcp/x?/../../admin');
  });
});

/**
 * Smaller doors (the hardening issue, parts 6-8), against a real keygate, a real upstream
 * and a test OAuth issuer:
 *
 *  - claims become permissions only in the shape of a permission: a token whose scope has a
 *    comma is refused (401 invalid_token), never split into several permissions upstream;
 *  - a key is never forwarded, whatever the whitespace: `Bearer␠␠<key>`, `Bearer<TAB><key>`,
 *    a comma-joined or repeated Authorization, a padded X-Api-Key — on a public route the
 *    upstream sees none of them; on an authenticated one they are the credential;
 *  - TRACE is refused on every route (405) and never reaches the upstream, which would echo
 *    the headers keygate adds (here: an injected upstream secret);
 *  - the admin listener answers only its configured Host names (DNS rebinding), and /metrics
 *    wants its bearer token;
 *  - X-Forwarded-Host carries the client's Host only when it is a configured host.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rawRequest } from '../helpers/http.ts';
import { startTestIssuer, type TestIssuer } from '../helpers/oauth-issuer.ts';
import { startUpstream, type Received, type TestUpstream } from '../helpers/upstream.ts';
import { rawSocket } from '../helpers/raw-socket.ts';
import { startHostileKeygate, type HostileKeygate } from './helpers/capture.ts';
import { closeAll } from '../helpers/close.ts';

const RESOURCE = 'http://mcp.example.com/mcp';
const SECRET = 'upstream-secret-value-9f8e7d6c5b4a';
const METRICS_TOKEN = 'metrics-token-0123456789abcdef0123';

let upstream: TestUpstream;
let idp: TestIssuer;
let kg: HostileKeygate;
let trusting: HostileKeygate;
let key: string;
let adminPort: number;

/** Every header value the upstream received, one string per header. */
function allValues(received: Received): string[] {
  return received.rawHeaders.filter((_v, i) => i % 2 === 1);
}

function values(received: Received, name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < received.rawHeaders.length; i += 2) if (received.rawHeaders[i]!.toLowerCase() === name) out.push(received.rawHeaders[i + 1]!);
  return out;
}

beforeAll(async () => {
  // Reflects the request like a TRACE-implementing server would: headers in the body.
  upstream = await startUpstream((req, res) => {
    req.resume();
    req.on('end', () => res.end(JSON.stringify(req.rawHeaders)));
  });
  idp = await startTestIssuer();
  kg = await startHostileKeygate(
    'doors',
    {
      admin: { host: '127.0.0.1', port: 0, hosts: ['keygate-admin.internal', 'localhost'], metricsTokenEnv: 'DOORS_METRICS_TOKEN' },
      oauth: { issuers: [{ name: 'idp', issuer: idp.issuer, jwksUri: idp.jwksUri, tenant: 'acme' }] },
      routes: [
        { name: 'mcp', pathPrefix: '/mcp', upstream: upstream.url, mcp: { resource: RESOURCE }, auth: { permissions: ['mcp:use'], issuers: ['idp'] } },
        { name: 'api', pathPrefix: '/api', host: 'api.example.com', upstream: upstream.url },
        { name: 'sec', pathPrefix: '/sec', upstream: upstream.url, secret: { id: 'token', header: 'authorization', template: 'Bearer {value}' } },
        { name: 'pub', pathPrefix: '/pub', upstream: upstream.url, auth: { required: false } },
        { name: 'private', pathPrefix: '/private', upstream: upstream.url },
      ],
    },
    { env: { DOORS_METRICS_TOKEN: METRICS_TOKEN } },
  );
  kg.remember({ kind: 'secret', value: METRICS_TOKEN });
  await kg.addSecret('token', SECRET);
  key = (await kg.keys.create({ tenant: 'acme', name: 'doors', permissions: ['mcp:use'] })).key;
  adminPort = kg.keygate.adminPort;
  trusting = await startHostileKeygate('doors-trusting', {
    forwarded: { trustClient: true },
    routes: [{ name: 'pub', pathPrefix: '/pub', upstream: upstream.url, auth: { required: false }, host: 'www.example.com' }],
  });
});

afterAll(() => closeAll(kg, trusting, idp, upstream));

describe('claims become permissions only in the shape of a permission', () => {
  it('a token with scope "mcp:use read,billing:admin" is refused with 401 invalid_token and never reaches the upstream', async () => {
    const token = await idp.token(RESOURCE, { claims: { scope: 'mcp:use read,billing:admin' } });
    kg.remember({ kind: 'secret', value: token });
    const before = upstream.received.length;
    const res = await rawRequest(kg.url, { path: '/mcp', headers: { authorization: `Bearer ${token}` } });
    expect(res.status, res.body).toBe(401);
    expect(res.json.code).toBe('invalid_token');
    expect(res.headers['www-authenticate']).toContain('error="invalid_token"');
    expect(upstream.received.length).toBe(before);
    // The reason is logged: which claim, what is wrong; not the token, not the value.
    const line = kg.logs().split('\n').find((l) => l.includes('a claim cannot become an identity header'));
    expect(line).toBeDefined();
    expect(line).toContain('"claim":"scope"');
    expect(line).not.toContain('billing:admin');
    // The same token without the comma is served, with its permissions one by one.
    const fine = await idp.token(RESOURCE, { claims: { scope: 'mcp:use read billing:admin' } });
    kg.remember({ kind: 'secret', value: fine });
    const ok = await rawRequest(kg.url, { path: '/mcp', headers: { authorization: `Bearer ${fine}` } });
    expect(ok.status, ok.body).toBe(200);
    expect(values(upstream.received.at(-1)!, 'x-auth-permissions')).toEqual(['mcp:use,read,billing:admin']);
  });

  it('a user claim with a line break or a client claim too long for a key is refused the same way', async () => {
    for (const claims of [{ sub: 'alice\nx-auth-role: admin' }, { client_id: 'c'.repeat(65) }]) {
      const token = await idp.token(RESOURCE, { claims: { scope: 'mcp:use', ...claims } });
      kg.remember({ kind: 'secret', value: token });
      const before = upstream.received.length;
      const res = await rawRequest(kg.url, { path: '/mcp', headers: { authorization: `Bearer ${token}` } });
      expect(res.status, JSON.stringify(claims)).toBe(401);
      expect(res.json.code).toBe('invalid_token');
      expect(upstream.received.length).toBe(before);
    }
  });
});

describe('a key is never forwarded, whatever the whitespace', () => {
  const variants = (k: string): (string[] | string)[] => [
    ['Authorization', `Bearer  ${k}`],
    ['Authorization', `Bearer\t${k}`],
    ['Authorization', `bEARER \t ${k}`],
    ['Authorization', `Basic dXNlcjpwYXNz, Bearer ${k}`],
    ['Authorization', `Bearer upstream-token,Bearer ${k}`],
    ['Authorization', 'Basic dXNlcjpwYXNz', 'Authorization', `Bearer\t${k}`],
    ['X-Api-Key', `${k}`, 'X-Api-Key', `${k}`],
    // Written raw: node's client would not send a value with surrounding whitespace.
    `X-Api-Key: \t${k}\t \r\n`,
    `Authorization:\tBearer\t\t${k}\t\r\n`,
  ];

  it('on a public route, the upstream never sees a key sent in any of these spellings', async () => {
    for (const variant of variants(key)) {
      const before = upstream.received.length;
      const res =
        typeof variant === 'string'
          ? await rawSocket(kg.url, `GET /pub HTTP/1.1\r\nHost: gw.example\r\n${variant}Connection: close\r\n\r\n`)
          : await rawRequest(kg.url, { path: '/pub', headers: ['Host', 'gw.example', ...variant] });
      expect(res.status, JSON.stringify(variant)).toBe(200);
      expect(upstream.received.length).toBe(before + 1);
      const got = upstream.received.at(-1)!;
      for (const value of allValues(got)) expect(value, JSON.stringify(variant)).not.toContain(key);
    }
  });

  it('on an authenticated route, the same spellings are the credential (verified, then removed)', async () => {
    for (const variant of [['Authorization', `Bearer  ${key}`], ['Authorization', `Bearer\t${key}`], ['Authorization', `Basic dXNlcjpwYXNz, Bearer ${key}`], ['X-Api-Key', `\t${key}`]]) {
      const res = await rawRequest(kg.url, { path: '/private', headers: ['Host', 'gw.example', ...variant] });
      expect(res.status, JSON.stringify(variant)).toBe(200);
      const got = upstream.received.at(-1)!;
      expect(values(got, 'x-tenant-id')).toEqual(['acme']);
      for (const value of allValues(got)) expect(value).not.toContain(key);
    }
  });

  it('two different keys in one comma-joined Authorization are a conflict (400); repeated X-Api-Key is not a key (401)', async () => {
    const other = (await kg.keys.create({ tenant: 'acme', name: 'other' })).key;
    for (const [variant, status] of [[['Authorization', `Bearer ${key}, Bearer ${other}`], 400], [['X-Api-Key', key, 'X-Api-Key', other], 401], [['X-Api-Key', key, 'X-Api-Key', key], 401]] as const) {
      const before = upstream.received.length;
      const res = await rawRequest(kg.url, { path: '/private', headers: ['Host', 'gw.example', ...variant] });
      expect(res.status, JSON.stringify(variant)).toBe(status);
      expect(res.json.code).toBe(status === 400 ? 'conflicting_credentials' : 'invalid_key');
      expect(upstream.received.length).toBe(before);
    }
  });
});

describe('TRACE', () => {
  it('is refused with 405 on every route, known or not, and the upstream is never called', async () => {
    const before = upstream.received.length;
    for (const path of ['/sec/x', '/pub', '/private', '/mcp', '/nowhere']) {
      const res = await rawRequest(kg.url, { method: 'TRACE', path, headers: { 'x-api-key': key } });
      expect(res.status, path).toBe(405);
      expect(res.headers['content-type']).toBe('application/problem+json');
      expect(res.json.code).toBe('method_not_allowed');
      expect(res.body).not.toContain(SECRET);
    }
    // With a body too (which TRACE must not have): answered, and the connection closed.
    const withBody = await rawSocket(kg.url, `TRACE /sec HTTP/1.1\r\nHost: gw.example\r\nX-Api-Key: ${key}\r\nContent-Length: 5\r\n\r\nhello`);
    expect(withBody.status).toBe(405);
    expect(upstream.received.length).toBe(before);
    expect(upstream.received.some((r) => r.method === 'TRACE')).toBe(false);
  });
});

describe('the admin listener', () => {
  const get = (path: string, host: string, headers = '') => rawSocket(`http://127.0.0.1:${adminPort}`, `GET ${path} HTTP/1.1\r\nHost: ${host}\r\n${headers}Connection: close\r\n\r\n`);

  it('refuses a Host it is not configured for (DNS rebinding) with 421, on every path', async () => {
    for (const path of ['/metrics', '/healthz', '/readyz', '/v1/keys', '/console/', '/openapi.json']) {
      for (const host of ['rebind.evil.example', `rebind.evil.example:${adminPort}`, 'localhost.evil.example', 'keygate-admin.internal.evil.example']) {
        const res = await get(path, host, `Authorization: Bearer ${METRICS_TOKEN}\r\n`);
        expect(res.status, `${host}${path}`).toBe(421);
        expect(res.head.toLowerCase()).toContain('content-type: application/problem+json');
        expect(JSON.parse(res.body).code).toBe('misdirected_request');
        expect(res.body).not.toContain('keygate_');
      }
    }
  });

  it('answers its configured names (any port, case and trailing dot aside) and IP addresses', async () => {
    for (const host of ['keygate-admin.internal', `KEYGATE-ADMIN.internal:${adminPort}`, `localhost:${adminPort}`, 'localhost.', `127.0.0.1:${adminPort}`, `[::1]:${adminPort}`]) {
      const res = await get('/healthz', host);
      expect(res.status, host).toBe(200);
    }
  });

  it('/metrics wants the bearer token: 401 without it or with another, 200 with it', async () => {
    const host = `127.0.0.1:${adminPort}`;
    const none = await get('/metrics', host);
    expect(none.status).toBe(401);
    expect(JSON.parse(none.body).code).toBe('missing_credentials');
    expect(none.head.toLowerCase()).toContain('www-authenticate: bearer realm="keygate-metrics"');
    const wrong = await get('/metrics', host, `Authorization: Bearer ${METRICS_TOKEN}x\r\n`);
    expect(wrong.status).toBe(401);
    expect(JSON.parse(wrong.body).code).toBe('invalid_token');
    const asKey = await get('/metrics', host, `X-Api-Key: ${METRICS_TOKEN}\r\n`);
    expect(asKey.status).toBe(401);
    const ok = await get('/metrics', host, `Authorization: Bearer ${METRICS_TOKEN}\r\n`);
    expect(ok.status).toBe(200);
    expect(ok.body).toContain('keygate_requests_total');
    // The one Bearer parser: any whitespace after the scheme.
    const tab = await get('/metrics', host, `Authorization: bearer\t${METRICS_TOKEN}\r\n`);
    expect(tab.status).toBe(200);
  });
});

describe('X-Forwarded-Host', () => {
  it('is the client\'s Host only when that is a configured host (routes[].host, mcp.resource); otherwise not sent', async () => {
    const send = async (host: string) => {
      const res = await rawSocket(kg.url, `GET /pub HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
      expect(res.status, host).toBe(200);
      return values(upstream.received.at(-1)!, 'x-forwarded-host');
    };
    expect(await send('mcp.example.com')).toEqual(['mcp.example.com']);
    expect(await send('API.example.com:8443')).toEqual(['API.example.com:8443']);
    expect(await send('evil.example')).toEqual([]);
    expect(await send('mcp.example.com,evil.example')).toEqual([]);
    // The client's own X-Forwarded-Host is never taken without trust.
    const spoofed = await rawSocket(kg.url, `GET /pub HTTP/1.1\r\nHost: evil.example\r\nX-Forwarded-Host: mcp.example.com\r\nConnection: close\r\n\r\n`);
    expect(spoofed.status).toBe(200);
    expect(values(upstream.received.at(-1)!, 'x-forwarded-host')).toEqual([]);
  });

  it('behind a trusted proxy, is what the proxy said: the right-most entry, when it is one well-formed host', async () => {
    const send = async (xfh: string[]) => {
      const headers = xfh.map((v) => `X-Forwarded-Host: ${v}\r\n`).join('');
      const res = await rawSocket(trusting.url, `GET /pub HTTP/1.1\r\nHost: www.example.com\r\n${headers}X-Forwarded-Proto: https, javascript\r\nConnection: close\r\n\r\n`);
      expect(res.status).toBe(200);
      const got = upstream.received.at(-1)!;
      return { host: values(got, 'x-forwarded-host'), proto: values(got, 'x-forwarded-proto') };
    };
    expect(await send(['public.example.com'])).toEqual({ host: ['public.example.com'], proto: ['http'] });
    expect(await send(['evil.example, public.example.com'])).toEqual({ host: ['public.example.com'], proto: ['http'] });
    expect((await send(['evil.example', 'public.example.com'])).host).toEqual(['public.example.com']);
    // Not a host: the request's own (configured) Host instead.
    expect((await send(['public.example.com;evil=1'])).host).toEqual(['www.example.com']);
  });
});

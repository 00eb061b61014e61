/**
 * Attacks on the front door, part 3: spoofing. Every header keygate owns — the identity
 * headers (`headers.*`, here with one renamed), the credential header, X-Forwarded-*,
 * Forwarded, and a route's injected secret header — sent by the client in lower, upper and
 * mixed case, with `_` for `-` (CGI-style upstreams — WSGI, Rack, PHP — read `X_Tenant_Id`
 * and `X-Tenant-Id` as the same variable), once and repeated, on an authenticated route, a
 * public route and a route with an upstream secret, and named in `Connection` to make
 * keygate drop its own. No client-sent value may ever reach the upstream: every spoofed
 * value carries a marker, and the upstream's raw headers must never contain it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rawRequest } from '../helpers/http.ts';
import { startUpstream, type Received, type TestUpstream } from '../helpers/upstream.ts';
import { startHostileKeygate, type HostileKeygate } from './helpers/capture.ts';

const MARK = 'spoofed';
const SECRET = 'upstream-token-value-0123456789';

let upstream: TestUpstream;
let kg: HostileKeygate;
let key: string, keyId: string;

beforeAll(async () => {
  // Answers without echoing anything: the secret route's upstream sees the secret.
  upstream = await startUpstream((req, res) => {
    req.resume();
    req.on('end', () => res.end('ok'));
  });
  kg = await startHostileKeygate('spoofing', {
    headers: { user: 'x-remote-user' },
    routes: [
      { name: 'api', pathPrefix: '/api', upstream: upstream.url },
      { name: 'pub', pathPrefix: '/pub', upstream: upstream.url, auth: { required: false } },
      { name: 'sec', pathPrefix: '/sec', upstream: upstream.url, secret: { id: 'token', header: 'x-upstream-token', template: 'Token {value}' } },
    ],
  }, { notifications: true });
  await kg.addSecret('token', SECRET);
  const created = await kg.keys.create({ tenant: 'acme', name: 'spoof', permissions: ['read', 'write'], user: 'alice', client: 'mcp' });
  key = created.key;
  keyId = created.record.id;
});

afterAll(async () => {
  await kg?.stop();
  await upstream?.close();
});

const IDENTITY = ['x-tenant-id', 'x-api-key-id', 'x-auth-role', 'x-auth-permissions', 'x-remote-user', 'x-auth-client'];
const OWNED = [...IDENTITY, 'x-api-key', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'forwarded', 'x-upstream-token'];

/** The spellings a client might try for `name`. */
function spellings(name: string): string[] {
  const mixed = name.replace(/(^|-)([a-z])/g, (_m, dash: string, c: string) => dash + c.toUpperCase());
  const alternating = [...name].map((c, i) => (i % 2 ? c.toUpperCase() : c)).join('');
  return [...new Set([name, name.toUpperCase(), mixed, alternating, name.replaceAll('-', '_'), mixed.replaceAll('-', '_'), name.replace('-', '_')])];
}

function values(received: Received, name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < received.rawHeaders.length; i += 2) if (received.rawHeaders[i]!.toLowerCase().replaceAll('_', '-') === name) out.push(received.rawHeaders[i + 1]!);
  return out;
}

/** What the upstream must see for each owned header on each route: keygate's value, once, or nothing. */
function expected(route: 'api' | 'pub' | 'sec'): Record<string, string[]> {
  const identity: Record<string, string[]> = route === 'pub' ? {} : { 'x-tenant-id': ['acme'], 'x-api-key-id': [keyId], 'x-auth-role': ['api-user'], 'x-auth-permissions': ['read,write'], 'x-remote-user': ['alice'], 'x-auth-client': ['mcp'] };
  const all: Record<string, string[]> = Object.fromEntries(OWNED.filter((n) => route === 'sec' || n !== 'x-upstream-token').map((name) => [name, []]));
  return { ...all, ...identity, 'x-forwarded-for': ['127.0.0.1'], 'x-forwarded-proto': ['http'], 'x-forwarded-host': ['gw.example'], ...(route === 'sec' ? { 'x-upstream-token': [`Token ${SECRET}`] } : ({} as Record<string, string[]>)) };
}

const attempts: { route: 'api' | 'pub' | 'sec'; spelling: string; copies: number }[] = [];
// The secret header is keygate's only on the route that injects it; elsewhere it is the client's.
for (const route of ['api', 'pub', 'sec'] as const) for (const name of OWNED.filter((n) => route === 'sec' || n !== 'x-upstream-token')) for (const spelling of spellings(name)) for (const copies of [1, 3]) attempts.push({ route, spelling, copies });

describe('spoofed headers', () => {
  it(`${attempts.length} spellings and repetitions of the ${OWNED.length} headers keygate owns never reach the upstream`, async () => {
    const failures: string[] = [];
    for (const { route, spelling, copies } of attempts) {
      const headers = ['Host', 'gw.example'];
      if (route !== 'pub' && spelling.toLowerCase() !== 'x-api-key') headers.push('X-Api-Key', key);
      for (let i = 0; i < copies; i++) headers.push(spelling, spelling.toLowerCase() === 'x-api-key' && route !== 'pub' && i === 0 ? key : `${MARK}-${i}`);
      const before = upstream.received.length;
      const res = await rawRequest(kg.url, { path: `/${route}/x`, headers });
      const label = `${route} ${spelling} ×${copies}`;
      if (upstream.received.length !== before + 1) {
        // Repeated X-Api-Key copies that differ are refused outright: nothing forwarded, fine.
        if (res.status >= 400 && res.status < 500) continue;
        failures.push(`${label}: status ${res.status}, upstream saw ${upstream.received.length - before} requests`);
        continue;
      }
      const got = upstream.received.at(-1)!;
      if (JSON.stringify(got.rawHeaders).includes(MARK)) failures.push(`${label}: a spoofed value reached the upstream: ${JSON.stringify(got.rawHeaders)}`);
      if (JSON.stringify(got.rawHeaders).includes(key.slice(-64, -8))) failures.push(`${label}: the key reached the upstream`);
      for (const [name, want] of Object.entries(expected(route))) {
        const have = values(got, name);
        if (JSON.stringify(have) !== JSON.stringify(want)) failures.push(`${label}: ${name} is ${JSON.stringify(have)}, expected ${JSON.stringify(want)}`);
      }
    }
    console.log(`[hostile spoofing] ${attempts.length} requests, ${failures.length} failures`);
    expect(failures).toEqual([]);
  });

  it('a key sent as X_Api_Key (or x-api_key) is not forwarded: to a CGI upstream it is the credential header', async () => {
    for (const route of ['api', 'pub'] as const) {
      for (const spelling of ['X_Api_Key', 'x-api_key', 'X_API_KEY']) {
        const headers = ['Host', 'gw.example', spelling, key, ...(route === 'api' ? ['X-Api-Key', key] : [])];
        const res = await rawRequest(kg.url, { path: `/${route}/x`, headers });
        expect(res.status, `${route} ${spelling}`).toBe(200);
        expect(JSON.stringify(upstream.received.at(-1)!.rawHeaders), `${route} ${spelling}`).not.toContain(key.slice(-64, -8));
      }
    }
  });

  it('naming keygate\'s headers in Connection does not make keygate drop its own', async () => {
    for (const route of ['api', 'sec'] as const) {
      const res = await rawRequest(kg.url, {
        path: `/${route}/x`,
        headers: ['Host', 'gw.example', 'X-Api-Key', key, 'Connection', `keep-alive, ${OWNED.join(', ')}`, 'X-Tenant-Id', MARK],
      });
      expect(res.status).toBe(200);
      const got = upstream.received.at(-1)!;
      for (const [name, want] of Object.entries(expected(route))) expect(values(got, name), `${route} ${name}`).toEqual(want);
    }
  });

  it('with forwarded.trustClient, X-Forwarded-* are extended, never replaced by a spelling variant', async () => {
    const trusting = await startHostileKeygate('spoofing-trust', { forwarded: { trustClient: true }, routes: [{ name: 'api', pathPrefix: '/api', upstream: upstream.url }] });
    try {
      const { key: k } = await trusting.keys.create({ tenant: 'acme', name: 'lb' });
      const res = await rawRequest(trusting.url, {
        path: '/api/x',
        headers: ['Host', 'gw.example', 'X-Api-Key', k, 'X-Forwarded-For', '198.51.100.7', 'X_Forwarded_For', MARK, 'x-forwarded_for', MARK, 'X_Tenant_Id', MARK],
      });
      expect(res.status).toBe(200);
      const got = upstream.received.at(-1)!;
      expect(JSON.stringify(got.rawHeaders)).not.toContain(MARK);
      expect(values(got, 'x-forwarded-for')).toEqual(['198.51.100.7, 127.0.0.1']);
    } finally {
      await trusting.stop();
    }
  });
});

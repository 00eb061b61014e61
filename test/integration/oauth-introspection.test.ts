/**
 * Opaque access tokens checked by RFC 7662 introspection: a real keygate, a real upstream and
 * a test introspection endpoint on loopback (test/helpers/introspection-server.ts). Only an
 * active answer with this route's audience and a future exp passes; answers are cached (one
 * introspection for many requests, one for many concurrent first uses) for at most
 * cacheMaxAgeMs; an endpoint that fails or is slow is 503 with Retry-After; a flood of made-up
 * tokens is bounded (concurrent introspections, waiting ones, the cache, and per address by the
 * failed-authentication limit); the token reaches neither the upstream nor the logs.
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { rawRequest, type RawResponse } from '../helpers/http.ts';
import { startTestKeygate, type TestKeygate } from '../helpers/keygate.ts';
import { startIntrospection, type TestIntrospection } from '../helpers/introspection-server.ts';
import { startTestIssuer, type TestIssuer } from '../helpers/oauth-issuer.ts';
import { startUpstream, type TestUpstream } from '../helpers/upstream.ts';
import { closeAll } from '../helpers/close.ts';

const RESOURCE = 'http://mcp.test/mcp';
const ALIAS = 'https://mcp.internal.example/mcp';
const OTHER = 'http://mcp.test/other';
const SHORT = 'http://mcp.test/short';
const AS = 'https://as.test/realms/corp';
const CLIENT = 'keygate-gw';
const SECRET = 's3cr:et/+x';

let up: TestUpstream;
let intro: TestIntrospection;
let idp: TestIssuer;
let t: TestKeygate;
const seen: string[] = [];
let address = 0;

/** A fresh client address for each test's requests (trusted X-Forwarded-For), so the failure limit of one does not reach another. */
function nextAddress(): string {
  address++;
  return `198.51.100.${address % 250}`;
}

function opaque(): string {
  const value = `at_${randomBytes(24).toString('base64url')}`;
  seen.push(value);
  return value;
}

function claims(extra: Record<string, unknown> = {}): Record<string, unknown> {
  const now = Math.floor(Date.now() / 1000);
  return { iss: AS, aud: RESOURCE, sub: 'alice', tid: 'acme', scope: 'mcp:use files.read', client_id: 'chat-ui', exp: now + 300, iat: now, token_type: 'Bearer', ...extra };
}

function active(extra: Record<string, unknown> = {}): string {
  const value = opaque();
  intro.add(value, claims(extra));
  return value;
}

function call(path: string, bearer: string, from = '203.0.113.9'): Promise<RawResponse> {
  return rawRequest(t.url, { path, headers: { authorization: `Bearer ${bearer}`, 'x-forwarded-for': from } });
}

function expectInvalid(res: RawResponse, detail: RegExp): void {
  expect(res.status, res.body).toBe(401);
  expect(res.json.code).toBe('invalid_token');
  expect(res.json.detail).toMatch(detail);
  expect(res.headers['www-authenticate']).toMatch(/error="invalid_token", error_description="[^"\\]+"$/);
}

function expectUnavailable(res: RawResponse, detail: RegExp): void {
  expect(res.status, res.body).toBe(503);
  expect(res.json.code).toBe('auth_unavailable');
  expect(res.json.detail).toMatch(detail);
  expect(res.headers['retry-after']).toBe('1');
}

beforeAll(async () => {
  up = await startUpstream();
  intro = await startIntrospection(CLIENT, SECRET);
  idp = await startTestIssuer();
  const introspection = { endpoint: intro.url, clientId: CLIENT, clientSecretEnv: 'KG_TEST_INTROSPECTION_SECRET', timeoutMs: 1000, maxConcurrent: 4, maxPending: 8 };
  t = await startTestKeygate(
    {
      forwarded: { trustClient: true },
      limits: { failedAuth: { max: 5, windowMs: 60_000 }, maxHeaderBytes: 65_536 },
      oauth: {
        tokenCache: { max: 64 },
        issuers: [
          { name: 'corp', issuer: AS, claims: { tenant: 'tid' }, introspection },
          { name: 'jwt', issuer: idp.issuer, jwksUri: idp.jwksUri, tenant: 'acme' },
          { name: 'short', issuer: 'https://as.test/realms/short', claims: { tenant: 'tid' }, introspection: { ...introspection, cacheMaxAgeMs: 300 } },
        ],
      },
      routes: [
        { name: 'mcp', pathPrefix: '/mcp', upstream: up.url, mcp: { resource: RESOURCE, audiences: [ALIAS] }, auth: { permissions: ['mcp:use'], issuers: ['corp', 'jwt'] } },
        { name: 'other', pathPrefix: '/other', upstream: up.url, mcp: { resource: OTHER }, auth: { issuers: ['corp'] } },
        { name: 'short', pathPrefix: '/short', upstream: up.url, mcp: { resource: SHORT }, auth: { issuers: ['short'] } },
        { name: 'jwt-only', pathPrefix: '/jwt-only', upstream: up.url, mcp: { resource: 'http://mcp.test/jwt-only' }, auth: { issuers: ['jwt'] } },
      ],
    },
    { KG_TEST_INTROSPECTION_SECRET: SECRET },
  );
});

afterAll(() => closeAll(t, up, intro, idp));

beforeEach(() => intro.reset());

describe('an active opaque token', () => {
  it('reaches the upstream as identity headers, without the token; the endpoint was asked as RFC 7662 says', async () => {
    const value = active();
    const res = await call('/mcp/x', value);
    expect(res.status, res.body).toBe(200);
    const headers = res.json.headers;
    expect(headers).toMatchObject({ 'x-tenant-id': 'acme', 'x-auth-user': 'alice', 'x-auth-permissions': 'mcp:use,files.read', 'x-auth-client': 'chat-ui', 'x-auth-role': 'api-user' });
    expect(headers.authorization).toBeUndefined();
    expect(headers['x-api-key-id']).toBeUndefined();
    expect(JSON.stringify(res.json)).not.toContain(value);
    expect(intro.requests).toHaveLength(1);
    const [asked] = intro.requests;
    expect(asked).toMatchObject({ method: 'POST', contentType: 'application/x-www-form-urlencoded', form: { token: value, token_type_hint: 'access_token' } });
    expect(asked!.authorization).toBe(`Basic ${Buffer.from(`${encodeURIComponent(CLIENT).replace(/%20/g, '+')}:${encodeURIComponent(SECRET)}`).toString('base64')}`);
  });

  it('is introspected once for many requests, and once for many concurrent first uses', async () => {
    const value = active();
    for (let i = 0; i < 20; i++) expect((await call('/mcp/x', value)).status).toBe(200);
    expect(intro.callsFor(value)).toBe(1);
    intro.delayMs = 100;
    const fresh = active();
    const results = await Promise.all(Array.from({ length: 30 }, () => call('/mcp/x', fresh)));
    expect(results.map((r) => r.status)).toEqual(Array(30).fill(200));
    expect(intro.callsFor(fresh)).toBe(1);
  });

  it('may carry another accepted audience (mcp.audiences), alone or in a list', async () => {
    expect((await call('/mcp/x', active({ aud: ALIAS }))).status).toBe(200);
    expect((await call('/mcp/x', active({ aud: ['https://elsewhere.example', ALIAS] }))).status).toBe(200);
  });

  it('is trusted for cacheMaxAgeMs at most: a token revoked at the issuer stops working within it', async () => {
    const value = active({ aud: SHORT, iss: 'https://as.test/realms/short' });
    expect((await call('/short/x', value)).status).toBe(200);
    intro.revoke(value);
    // Within the revocation lag: still the cached answer.
    expect((await call('/short/x', value)).status).toBe(200);
    await sleep(350);
    expectInvalid(await call('/short/x', value, nextAddress()), /not active/);
    expect(intro.callsFor(value)).toBe(2);
  });

  it('a JWT on a route with an introspecting issuer is still verified locally, never introspected', async () => {
    const jwt = await idp.token(RESOURCE, { claims: { scope: 'mcp:use' } });
    seen.push(jwt);
    expect((await call('/mcp/x', jwt)).status).toBe(200);
    expect(intro.calls).toBe(0);
  });
});

describe('opaque tokens that are refused', () => {
  it('inactive: 401 invalid_token, remembered (no second introspection)', async () => {
    const from = nextAddress();
    const value = opaque();
    expectInvalid(await call('/mcp/x', value, from), /not active at its issuer/);
    expectInvalid(await call('/mcp/x', value, from), /not active/);
    expect(intro.callsFor(value)).toBe(1);
    expect(up.received.some((r) => r.headers.authorization?.includes(value))).toBe(false);
  });

  it('for another audience, or with none: 401 naming the audience; another route with its own audience judges the cached answer again', async () => {
    const from = nextAddress();
    expectInvalid(await call('/mcp/x', active({ aud: OTHER }), from), /audience \(aud\) is not this resource/);
    expectInvalid(await call('/mcp/x', active({ aud: undefined }), from), /audience/);
    expectInvalid(await call('/mcp/x', active({ aud: `${ALIAS}/` }), from), /audience/);
    const forMcp = active();
    expect((await call('/mcp/x', forMcp, from)).status).toBe(200);
    expectInvalid(await call('/other/x', forMcp, from), /audience/);
    expect(intro.callsFor(forMcp)).toBe(1);
  });

  it('expired, not yet valid, without exp, or from another issuer', async () => {
    const from = nextAddress();
    const now = Math.floor(Date.now() / 1000);
    expectInvalid(await call('/mcp/x', active({ exp: now - 120 }), from), /expired/);
    expectInvalid(await call('/mcp/x', active({ exp: undefined }), from), /exp/);
    expectInvalid(await call('/mcp/x', active({ exp: 'tomorrow' }), from), /exp/);
    expectInvalid(await call('/mcp/x', active({ nbf: now + 600 }), from), /not valid yet/);
    expectInvalid(await call('/mcp/x', active({ iss: 'https://evil.example' }), from), /issuer/);
    // Within the clock tolerance: accepted.
    expect((await call('/mcp/x', active({ exp: now - 5 }), from)).status).toBe(200);
  });

  it('claims that cannot be identity headers (a forged scope, a header in the user) are refused', async () => {
    const from = nextAddress();
    expectInvalid(await call('/mcp/x', active({ scope: 'mcp:use read,billing:admin' }), from), /scope/);
    expectInvalid(await call('/mcp/x', active({ sub: 'alice\r\nx-auth-role: admin' }), from), /claims/);
    expectInvalid(await call('/mcp/x', active({ tid: 'Not A Tenant' }), from), /tenant/);
  });

  it('anything that is not a b64token is malformed and never sent to the endpoint; a token with + / = goes as it is', async () => {
    const from = nextAddress();
    for (const bad of ['tok%en', 'a&token=b', `x${'a'.repeat(17 * 1024)}`]) expectInvalid(await call('/mcp/x', bad, from), /neither an API key nor/);
    expect(intro.calls).toBe(0);
    const odd = active({ aud: RESOURCE });
    const plus = `${odd}+/x==`;
    intro.add(plus, claims());
    expect((await call('/mcp/x', plus, from)).status).toBe(200);
    expect(intro.requests.at(-1)!.form.token).toBe(plus);
  });

  it('on a route whose issuers have no introspection, an opaque token is malformed (no endpoint is asked)', async () => {
    expectInvalid(await call('/jwt-only/x', active(), nextAddress()), /neither/);
    expect(intro.calls).toBe(0);
  });
});

describe('the introspection endpoint failing', () => {
  it.each([
    ['answers 500', 'error'],
    ['answers a login page instead of JSON', 'not-json'],
    ['answers JSON without "active"', 'no-active'],
  ] as const)('%s: 503 auth_unavailable with Retry-After, never a pass, not remembered', async (_what, mode) => {
    const value = active();
    intro.mode = mode;
    expectUnavailable(await call('/mcp/x', value, nextAddress()), /introspection endpoint cannot be reached/);
    intro.mode = 'ok';
    expect((await call('/mcp/x', value)).status).toBe(200);
  });

  it('does not answer: 503 after timeoutMs', async () => {
    intro.mode = 'hang';
    const started = performance.now();
    expectUnavailable(await call('/mcp/x', active(), nextAddress()), /cannot be reached/);
    const took = performance.now() - started;
    expect(took).toBeGreaterThan(900);
    expect(took).toBeLessThan(3000);
  });

  it('refuses keygate as a client (wrong secret): 503, and the log names the issuer and status, never a token or secret', async () => {
    const own = await startTestKeygate(
      {
        oauth: { issuers: [{ name: 'corp', issuer: AS, claims: { tenant: 'tid' }, introspection: { endpoint: intro.url, clientId: CLIENT, clientSecretEnv: 'KG_WRONG_SECRET' } }] },
        routes: [{ name: 'mcp', pathPrefix: '/mcp', upstream: up.url, mcp: { resource: RESOURCE }, auth: { issuers: ['corp'] } }],
      },
      { KG_WRONG_SECRET: 'not-the-secret' },
    );
    try {
      const value = active();
      expectUnavailable(await rawRequest(own.url, { path: '/mcp/x', headers: { authorization: `Bearer ${value}` } }), /cannot be reached/);
      const logs = own.logs();
      expect(logs).toContain('"issuer":"corp"');
      expect(logs).toContain('"status":401');
      expect(logs).not.toContain(value);
      expect(logs).not.toContain('not-the-secret');
    } finally {
      await own.stop();
    }
  });
});

describe('a flood of made-up tokens', () => {
  it('is bounded: at most maxConcurrent introspections at once, at most maxPending waiting, the rest 503 at once', async () => {
    intro.delayMs = 150;
    // Spread over many addresses, as a distributed flood would be: the per-address limit does not help here.
    const results = await Promise.all(Array.from({ length: 150 }, (_, i) => call('/mcp/x', opaque(), `192.0.2.${i % 250}`)));
    const statuses = results.map((r) => r.status);
    expect(new Set(statuses)).toEqual(new Set([401, 503]));
    expect(intro.maxInFlight).toBeLessThanOrEqual(4);
    // 4 under way + 8 waiting when the flood lands, a few more as places free up (16 here): far from 150.
    expect(intro.calls).toBeLessThanOrEqual(40);
    expect(statuses.filter((s) => s === 401).length).toBe(intro.calls);
    const busy = results.find((r) => r.status === 503)!;
    expectUnavailable(busy, /too many new tokens/);
    // A token already cached is served as before, while and after.
    intro.delayMs = 0;
    const known = active();
    expect((await call('/mcp/x', known)).status).toBe(200);
    intro.delayMs = 150;
    const during = Promise.all(Array.from({ length: 60 }, (_, i) => call('/mcp/x', opaque(), `192.0.2.${i}`)));
    expect((await call('/mcp/x', known)).status).toBe(200);
    await during;
    expect(intro.callsFor(known)).toBe(1);
  });

  it('is bounded in memory: remembered refusals are an LRU of tokenCache.max', async () => {
    const first = opaque();
    expectInvalid(await call('/mcp/x', first, nextAddress()), /not active/);
    expectInvalid(await call('/mcp/x', first, nextAddress()), /not active/);
    expect(intro.callsFor(first)).toBe(1);
    // 100 more (tokenCache.max is 64) push the first one out: it is asked about again.
    for (let i = 0; i < 100; i++) await call('/mcp/x', opaque(), `192.0.2.${i}`);
    expectInvalid(await call('/mcp/x', first, nextAddress()), /not active/);
    expect(intro.callsFor(first)).toBe(2);
  });

  it('from one address is cut off by the failed-authentication limit: inactive tokens count, then new tokens are not even introspected', async () => {
    const from = '203.0.113.77';
    const known = active();
    expect((await call('/mcp/x', known, from)).status).toBe(200);
    for (let i = 0; i < 5; i++) expectInvalid(await call('/mcp/x', opaque(), from), /not active/);
    const before = intro.calls;
    const limited = await call('/mcp/x', opaque(), from);
    expect(limited.status).toBe(429);
    expect(limited.json.code).toBe('rate_limited');
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    expect(intro.calls).toBe(before);
    // What works is still served from that address: a cached token, and a JWT (checked locally).
    expect((await call('/mcp/x', known, from)).status).toBe(200);
    const jwt = await idp.token(RESOURCE, { claims: { scope: 'mcp:use' } });
    seen.push(jwt);
    expect((await call('/mcp/x', jwt, from)).status).toBe(200);
    // Other addresses are not affected.
    expect((await call('/mcp/x', active(), nextAddress())).status).toBe(200);
  });
});

describe('logs', () => {
  it('never contain a token or the client secret', () => {
    const logs = t.logs();
    expect(seen.length).toBeGreaterThan(100);
    for (const value of seen) expect(logs).not.toContain(value);
    expect(logs).not.toContain(SECRET);
  });
});

/**
 * OAuth JWT access tokens on MCP routes: a real keygate, a real upstream, and test issuers
 * whose JWKS is served over HTTP on loopback (keys generated and tokens signed by jose).
 * Every way a token can be wrong is refused with 401 invalid_token (never 200, never 500),
 * a JWKS that cannot be fetched is 503, and the token never reaches the upstream or the logs.
 */
import { generateKey } from '../../src/keys/format.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { base64url, SignJWT } from 'jose';
import { accessLines, rawRequest, type RawResponse } from '../helpers/http.ts';
import { startTestKeygate, type TestKeygate } from '../helpers/keygate.ts';
import { startTestIssuer, type TestIssuer } from '../helpers/oauth-issuer.ts';
import { startUpstream, type TestUpstream } from '../helpers/upstream.ts';
import { closeAll } from '../helpers/close.ts';

const RESOURCE = 'http://mcp.test/mcp';
const OTHER = 'http://mcp.test/other';
/** One server under several names (mcp.audiences). */
const ALIASED = 'http://mcp.test/aliases';
const ALIASES = ['https://mcp.internal.example/mcp', 'urn:example:mcp'];

let up: TestUpstream;
let idp: TestIssuer;
let downIdp: TestIssuer;
let t: TestKeygate;
const tokens: string[] = [];

async function token(audience = RESOURCE, options: Parameters<TestIssuer['token']>[1] = {}): Promise<string> {
  const value = await idp.token(audience, { ...options, claims: { tid: 'acme', scope: 'mcp:use tools:call', client_id: 'mcp-app', ...options.claims } });
  tokens.push(value);
  return value;
}

function call(path: string, bearer: string | null, headers: Record<string, string> = {}): Promise<RawResponse> {
  return rawRequest(t.url, { path, headers: bearer === null ? headers : { authorization: `Bearer ${bearer}`, ...headers } });
}

function expectInvalidToken(res: RawResponse, description: RegExp): void {
  expect(res.status, res.body).toBe(401);
  expect(res.json.code).toBe('invalid_token');
  expect(res.json.detail).toMatch(description);
  const challenge = res.headers['www-authenticate']!;
  expect(challenge).toContain('Bearer realm="keygate", resource_metadata="http://mcp.test/.well-known/oauth-protected-resource/mcp"');
  expect(challenge).toContain('error="invalid_token"');
  expect(challenge).toMatch(/error_description="[^"]+"/);
}

beforeAll(async () => {
  up = await startUpstream();
  idp = await startTestIssuer();
  downIdp = await startTestIssuer();
  downIdp.setDown(true);
  t = await startTestKeygate({
    oauth: {
      issuers: [
        { name: 'test', issuer: idp.issuer, jwksUri: idp.jwksUri, claims: { tenant: 'tid' }, jwks: { cooldownMs: 0 } },
        { name: 'down', issuer: downIdp.issuer, jwksUri: downIdp.jwksUri, tenant: 'acme', jwks: { timeoutMs: 1000 } },
      ],
    },
    routes: [
      { name: 'mcp', pathPrefix: '/mcp', upstream: up.url, mcp: { resource: RESOURCE }, auth: { permissions: ['mcp:use'], issuers: ['test'] } },
      { name: 'tools', pathPrefix: '/tools', upstream: up.url, mcp: { resource: 'http://mcp.test/tools' }, auth: { permissions: ['tools:admin'], issuers: ['test'] } },
      { name: 'app-only', pathPrefix: '/app-only', upstream: up.url, mcp: { resource: 'http://mcp.test/app-only' }, auth: { clients: ['other-app'], issuers: ['test'] } },
      { name: 'other', pathPrefix: '/other', upstream: up.url, mcp: { resource: OTHER }, auth: { issuers: ['test'] } },
      { name: 'aliases', pathPrefix: '/aliases', upstream: up.url, mcp: { resource: ALIASED, audiences: ALIASES }, auth: { issuers: ['test'] } },
      { name: 'keys-only', pathPrefix: '/keys-only', upstream: up.url },
      { name: 'down', pathPrefix: '/down', upstream: up.url, mcp: { resource: 'http://mcp.test/down' }, auth: { issuers: ['down'] } },
    ],
  });
});

afterAll(() => closeAll(t, up, idp, downIdp));

describe('a valid access token', () => {
  it('reaches the upstream as identity headers, without the token', async () => {
    const value = await token();
    const res = await call('/mcp/x', value, { 'x-tenant-id': 'spoofed', 'x-auth-user': 'mallory' });
    expect(res.status, res.body).toBe(200);
    const headers = res.json.headers;
    expect(headers['x-tenant-id']).toBe('acme');
    expect(headers['x-auth-user']).toBe('alice');
    expect(headers['x-auth-permissions']).toBe('mcp:use,tools:call');
    expect(headers['x-auth-client']).toBe('mcp-app');
    expect(headers['x-auth-role']).toBe('api-user');
    expect(headers['x-api-key-id']).toBeUndefined();
    expect(headers.authorization).toBeUndefined();
    expect(JSON.stringify(res.json)).not.toContain(value);
  });

  it('is accepted from the cache the second time, without another JWKS fetch', async () => {
    const value = await token();
    expect((await call('/mcp/a', value)).status).toBe(200);
    const fetches = idp.fetches;
    for (let i = 0; i < 5; i++) expect((await call('/mcp/a', value)).status).toBe(200);
    expect(idp.fetches).toBe(fetches);
  });

  it('may carry the resource among several audiences', async () => {
    const res = await call('/mcp/x', await token(RESOURCE, { claims: { aud: ['https://elsewhere.example', RESOURCE] } }));
    expect(res.status, res.body).toBe(200);
  });

  it('maps an array scope claim', async () => {
    const res = await call('/mcp/x', await token(RESOURCE, { claims: { scope: ['mcp:use', 'extra'] } }));
    expect(res.status, res.body).toBe(200);
    expect(res.json.headers['x-auth-permissions']).toBe('mcp:use,extra');
  });

  it('does not replace API keys on the same route', async () => {
    const created = await t.keys.create({ tenant: 'acme', name: 'k', permissions: ['mcp:use'] });
    const res = await call('/mcp/x', created.key);
    expect(res.status, res.body).toBe(200);
    expect(res.json.headers['x-api-key-id']).toBe(created.record.id);
    expect(res.json.headers.authorization).toBeUndefined();
  });
});

describe('tokens that are refused', () => {
  it('without a credential: 401 with resource_metadata and the scope to ask for', async () => {
    const res = await call('/mcp/x', null);
    expect(res.status).toBe(401);
    expect(res.json.code).toBe('missing_credentials');
    expect(res.headers['www-authenticate']).toBe('Bearer realm="keygate", resource_metadata="http://mcp.test/.well-known/oauth-protected-resource/mcp", scope="mcp:use"');
  });

  it('from another issuer', async () => {
    const other = await startTestIssuer();
    try {
      const forged = await other.token(RESOURCE, { claims: { tid: 'acme', scope: 'mcp:use' } });
      expectInvalidToken(await call('/mcp/x', forged), /issuer/);
      // Same keys as our issuer would not help either: iss decides which JWKS is used.
      const sameIss = await other.token(RESOURCE, { claims: { iss: idp.issuer, tid: 'acme', scope: 'mcp:use' } });
      expectInvalidToken(await call('/mcp/x', sameIss), /key|signature/);
    } finally {
      await other.close();
    }
  });

  it('for another audience, or without one', async () => {
    expectInvalidToken(await call('/mcp/x', await token(OTHER)), /audience/);
    expectInvalidToken(await call('/mcp/x', await token('http://mcp.test/mcp/')), /audience/);
    expectInvalidToken(await call('/mcp/x', await token(RESOURCE, { claims: { aud: undefined } })), /audience/);
    // The same token is fine on the route it was meant for.
    expect((await call('/other/x', await token(OTHER))).status).toBe(200);
  });

  it('expired, or not valid yet, or without exp', async () => {
    const now = Math.floor(Date.now() / 1000);
    const expired = await call('/mcp/x', await token(RESOURCE, { claims: { exp: now - 120 } }));
    expectInvalidToken(expired, /expired/);
    expectInvalidToken(await call('/mcp/x', await token(RESOURCE, { claims: { nbf: now + 600 } })), /not valid yet/);
    expectInvalidToken(await call('/mcp/x', await token(RESOURCE, { claims: { exp: undefined } })), /exp/);
    // Within the 30 s clock tolerance: accepted.
    expect((await call('/mcp/x', await token(RESOURCE, { claims: { exp: now - 5 } }))).status).toBe(200);
  });

  it('alg none, and HS256 signed with the public key (algorithm confusion)', async () => {
    const header = base64url.encode(JSON.stringify({ alg: 'none', typ: 'JWT' }));
    const claims = base64url.encode(JSON.stringify({ iss: idp.issuer, aud: RESOURCE, sub: 'alice', tid: 'acme', scope: 'mcp:use', exp: Math.floor(Date.now() / 1000) + 300 }));
    expectInvalidToken(await call('/mcp/x', `${header}.${claims}.`), /algorithm/);
    const jwks = (await (await fetch(idp.jwksUri)).json()) as { keys: object[] };
    const secret = new TextEncoder().encode(JSON.stringify(jwks.keys[0]));
    const hs = await new SignJWT({ tid: 'acme', scope: 'mcp:use' }).setProtectedHeader({ alg: 'HS256', kid: idp.kid }).setIssuer(idp.issuer).setAudience(RESOURCE).setExpirationTime('5m').sign(secret);
    expectInvalidToken(await call('/mcp/x', hs), /algorithm/);
  });

  it('with a tampered payload or signature', async () => {
    const [h, p, s] = (await token()).split('.');
    const claims = JSON.parse(Buffer.from(p!, 'base64url').toString()) as Record<string, unknown>;
    const tampered = base64url.encode(JSON.stringify({ ...claims, tid: 'globex' }));
    expectInvalidToken(await call('/mcp/x', `${h}.${tampered}.${s}`), /signature/);
    const flipped = s!.slice(0, 10) + (s![10] === 'A' ? 'B' : 'A') + s!.slice(11);
    expectInvalidToken(await call('/mcp/x', `${h}.${p}.${flipped}`), /signature/);
  });

  it('without a usable tenant, or with claims that cannot be headers', async () => {
    expectInvalidToken(await call('/mcp/x', await token(RESOURCE, { claims: { tid: undefined } })), /tenant/);
    expectInvalidToken(await call('/mcp/x', await token(RESOURCE, { claims: { tid: 'Not A Tenant' } })), /tenant/);
    expectInvalidToken(await call('/mcp/x', await token(RESOURCE, { claims: { sub: 'alice\r\nx-admin: 1' } })), /claims/);
    expectInvalidToken(await call('/mcp/x', await token(RESOURCE, { claims: { scope: 42 } })), /claims/);
  });

  it('garbage is invalid_token; a key-shaped bearer is still judged as a key', async () => {
    expectInvalidToken(await call('/mcp/x', 'not-a-jwt'), /neither an API key nor/);
    expectInvalidToken(await call('/mcp/x', 'a.b'), /neither/);
    const keyShaped = await call('/mcp/x', `kg_acme_${'0'.repeat(64)}`);
    expect(keyShaped.status).toBe(401);
    expect(keyShaped.json.code).toBe('invalid_key');
  });

  it('on a route that accepts keys only, a token is an invalid key', async () => {
    const res = await call('/keys-only/x', await token());
    expect(res.status).toBe(401);
    expect(res.json.code).toBe('invalid_key');
    expect(res.headers['www-authenticate']).toMatch(/^Bearer realm="keygate", error="invalid_token"/);
  });
});

describe('several audiences on one route (mcp.audiences)', () => {
  it('a token for the resource or for each other name is accepted', async () => {
    for (const aud of [ALIASED, ...ALIASES, [ALIASES[1]!, 'https://elsewhere.example']]) {
      const res = await call('/aliases/x', await token(ALIASED, { claims: { aud } }));
      expect(res.status, `${JSON.stringify(aud)}: ${res.body}`).toBe(200);
    }
  });

  it('any other audience is refused with invalid_token saying so, a near miss included; the names are not shared with other routes', async () => {
    for (const aud of ['https://mcp.internal.example/mcp/', 'https://MCP.internal.example/mcp', 'urn:example', OTHER, ['https://elsewhere.example'], [], 42]) {
      const res = await call('/aliases/x', await token(ALIASED, { claims: { aud } }));
      expect(res.status, JSON.stringify(aud)).toBe(401);
      expect(res.json.code).toBe('invalid_token');
      expect(res.json.detail).toBe('the token audience (aud) is not this resource: it names neither its resource identifier nor another name this route accepts');
      expect(res.headers['www-authenticate']).toBe(`Bearer realm="keygate", resource_metadata="http://mcp.test/.well-known/oauth-protected-resource/aliases", error="invalid_token", error_description="${res.json.detail}"`);
    }
    expectInvalidToken(await call('/mcp/x', await token(ALIASES[0]!)), /audience/);
  });

  it('the metadata still names the one canonical resource', async () => {
    const doc = await call('/.well-known/oauth-protected-resource/aliases', null);
    expect(doc.json.resource).toBe(ALIASED);
    expect(JSON.stringify(doc.json)).not.toContain('internal');
  });
});

describe('route policy applies to tokens', () => {
  it('a missing scope is 403 insufficient_scope naming it, with the metadata', async () => {
    const res = await call('/tools/x', await token('http://mcp.test/tools'));
    expect(res.status).toBe(403);
    expect(res.json.code).toBe('forbidden_permission');
    expect(res.headers['www-authenticate']).toBe('Bearer realm="keygate", resource_metadata="http://mcp.test/.well-known/oauth-protected-resource/tools", error="insufficient_scope", scope="tools:admin"');
  });

  it('clients: the token client_id must be listed', async () => {
    const res = await call('/app-only/x', await token('http://mcp.test/app-only'));
    expect(res.status).toBe(403);
    expect(res.json.code).toBe('forbidden_client');
    const ok = await call('/app-only/x', await token('http://mcp.test/app-only', { claims: { client_id: 'other-app' } }));
    expect(ok.status, ok.body).toBe(200);
  });
});

describe('the issuer key set', () => {
  it('is fetched again for an unknown kid (rotation); a kid it does not have is refused until published', async () => {
    expect((await call('/mcp/x', await token())).status).toBe(200);
    const before = idp.fetches;
    await idp.rotate();
    const rotated = await token();
    expect((await call('/mcp/x', rotated)).status).toBe(200);
    expect(idp.fetches).toBe(before + 1);
    // Signed with a key the issuer has not published yet: no key matches.
    await idp.rotate(false);
    const early = await token();
    expectInvalidToken(await call('/mcp/x', early), /no key/);
    // Not remembered as bad: once the key is published the same token works.
    idp.publish();
    expect((await call('/mcp/x', early)).status).toBe(200);
  });

  it('unreachable: 503 auth_unavailable, never a pass', async () => {
    const value = await downIdp.token('http://mcp.test/down', { claims: { scope: 'x' } });
    tokens.push(value);
    const res = await call('/down/x', value);
    expect(res.status, res.body).toBe(503);
    expect(res.json.code).toBe('auth_unavailable');
    expect(res.headers['retry-after']).toBe('1');
    expect(up.received.some((r) => r.url === '/down/x')).toBe(false);
    // Once it is back, the same token is accepted.
    downIdp.setDown(false);
    expect((await call('/down/x', value)).status).toBe(200);
  });

  it('down after a successful fetch: keys already fetched keep working', async () => {
    expect((await call('/mcp/x', await token())).status).toBe(200);
    idp.setDown(true);
    try {
      expect((await call('/mcp/x', await token())).status).toBe(200);
    } finally {
      idp.setDown(false);
    }
  });
});

describe('logs', () => {
  it('never contain a token; token requests are logged with their issuer and tenant', async () => {
    const logs = t.logs();
    expect(tokens.length).toBeGreaterThan(10);
    for (const value of tokens) {
      expect(logs).not.toContain(value);
      expect(logs).not.toContain(value.split('.')[2]);
    }
    const ok = accessLines(logs).find((l) => l.route === 'mcp' && l.outcome === 'ok' && l.issuer === 'test');
    expect(ok).toMatchObject({ keyId: null, tenant: 'acme' });
    expect(accessLines(logs).some((l) => l.code === 'invalid_token' && l.outcome === 'expired')).toBe(true);
  });
});

describe('failed-authentication limit', () => {
  it('tokens cost the key store nothing and are never limited; unknown keys from the same address are', async () => {
    const own = await startTestKeygate({
      limits: { failedAuth: { max: 2, windowMs: 60_000 } },
      oauth: { issuers: [{ name: 'test', issuer: idp.issuer, jwksUri: idp.jwksUri, claims: { tenant: 'tid' } }] },
      routes: [{ name: 'mcp', pathPrefix: '/mcp', upstream: up.url, mcp: { resource: RESOURCE }, auth: { issuers: ['test'] } }],
    });
    try {
      const good = await token();
      const expired = await token(RESOURCE, { claims: { exp: Math.floor(Date.now() / 1000) - 3600 } });
      const wrongAudience = await token(OTHER);
      const send = (bearer: string) => rawRequest(own.url, { path: '/mcp/x', headers: { authorization: `Bearer ${bearer}` } });
      expect((await send(good)).status).toBe(200);
      for (let i = 0; i < 5; i++) {
        expect((await send(expired)).json.code).toBe('invalid_token');
        expect((await send(wrongAudience)).json.code).toBe('invalid_token');
      }
      expect((await send(good)).status).toBe(200);
      const madeUp = () => rawRequest(own.url, { path: '/mcp/x', headers: { 'x-api-key': generateKey('kg', 'acme') } });
      expect((await madeUp()).json.code).toBe('invalid_key');
      expect((await madeUp()).json.code).toBe('invalid_key');
      const limited = await madeUp();
      expect(limited.status).toBe(429);
      expect(limited.json.code).toBe('rate_limited');
      expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
      // A working token from the limited address is still served.
      expect((await send(good)).status).toBe(200);
    } finally {
      await own.stop();
    }
  });
});

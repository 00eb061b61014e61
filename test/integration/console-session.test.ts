/**
 * The web console's sessions over HTTP, no browser (issue 11): sign-in refused for wrong
 * and non-admin keys, the cookie's attributes (Secure and `__Host-` behind an https
 * origin), CSRF token and Origin on every state-changing request, Sec-Fetch-Site, a
 * revoked admin key ending its sessions at once, expired, tampered and signed-out cookies,
 * sign-out holding across instances (embedded store and Redis), the admin API unchanged for
 * X-Api-Key callers, the console's files and headers, and no key in any response after
 * creation or in any log line.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONTENT_SECURITY_POLICY } from '../../src/admin/console/assets.ts';
import { SessionTokens, type SessionPayload } from '../../src/admin/console/session-token.ts';
import { CLI_CALLER } from '../../src/keys/service.ts';
import { type AdminTestKeygate, type ApiResponse, call, startAdminKeygate } from '../helpers/admin.ts';
import { expectProblem } from '../helpers/http.ts';
import { startRedisPair, type RedisPair } from '../helpers/redis-fixture.ts';
import { rawCommand, type RedisServer } from '../helpers/redis-server.ts';
import { TEST_PEPPER } from '../helpers/pepper.ts';

const tokens = new SessionTokens(TEST_PEPPER);

let t: AdminTestKeygate;
let root: { key: string; id: string };
/** Every full key this file saw, to prove none comes back after creation or reaches the logs. */
const issued: string[] = [];
/** Every response after the ones that legitimately carry a new key. */
const responses: ApiResponse[] = [];

interface ConsoleSession {
  base: string;
  /** `name=value`, as a Cookie header. */
  cookie: string;
  csrf: string;
  info: any;
  setCookie: string;
}

async function signIn(base: string, key: string, headers: Record<string, string> = { origin: base }): Promise<ApiResponse> {
  return call(base, 'POST', '/console/api/session', { headers: { 'x-api-key': key, ...headers } });
}

async function session(base: string, key: string, origin = base): Promise<ConsoleSession> {
  const res = await signIn(base, key, { origin });
  expect(res.status, res.text).toBe(200);
  const setCookie = res.headers.get('set-cookie')!;
  return { base, cookie: setCookie.split(';')[0]!, csrf: res.json.csrfToken, info: res.json, setCookie };
}

/** A request with the session's cookie; unsafe methods get Origin and the CSRF token unless told otherwise. */
async function as(s: ConsoleSession, method: string, path: string, options: { body?: unknown; origin?: string | null; csrf?: string | null; headers?: Record<string, string> } = {}): Promise<ApiResponse> {
  const headers: Record<string, string> = { cookie: s.cookie, ...options.headers };
  if (method !== 'GET') {
    const origin = options.origin === undefined ? s.base : options.origin;
    const csrf = options.csrf === undefined ? s.csrf : options.csrf;
    if (origin !== null) headers.origin = origin;
    if (csrf !== null) headers['x-csrf-token'] = csrf;
  }
  const res = await call(s.base, method, path, options.body === undefined ? { headers } : { headers, body: options.body });
  responses.push(res);
  return res;
}

function payloadOf(setCookie: string): SessionPayload {
  const value = setCookie.split(';')[0]!.split('=')[1]!;
  return JSON.parse(Buffer.from(value.split('.')[1]!, 'base64url').toString('utf8'));
}

function forged(payload: Partial<SessionPayload>, name = 'keygate_console'): string {
  const now = Date.now();
  return `${name}=${tokens.sign({ sid: 'forged-session-id', kid: root.id, ten: null, iat: now, exp: now + 60_000, max: now + 120_000, ...payload })}`;
}

async function cliKey(input: Parameters<AdminTestKeygate['keys']['create']>[0]) {
  const created = await t.keys.create(input);
  issued.push(created.key);
  return { key: created.key, id: created.record.id };
}

beforeAll(async () => {
  t = await startAdminKeygate({ permissionGroups: { managers: ['keys:manage'] } });
  root = await cliKey({ tenant: 'system', role: 'admin', name: 'root' });
});

afterAll(async () => {
  await t?.stop();
});

describe('sign-in', () => {
  it('sets an HttpOnly, SameSite=Strict session cookie and answers who is signed in (never the key)', async () => {
    const res = await signIn(t.adminUrl, root.key);
    expect(res.status, res.text).toBe(200);
    const cookie = res.headers.get('set-cookie')!;
    expect(cookie).toMatch(/^keygate_console=v1\.[\w-]+\.[\w-]+; Path=\/; Max-Age=900; HttpOnly; SameSite=Strict$/);
    expect(cookie).not.toContain('Secure');
    expect(res.text).not.toContain(root.key);
    expect(cookie).not.toContain(root.key.slice(-64));
    expect(res.json).toMatchObject({ key: { id: root.id, name: 'root', tenant: 'system', role: 'admin' }, scope: { platform: true, tenant: null }, csrfToken: expect.any(String) });
    expect(res.json.session.idleMs).toBe(900_000);
    expect(res.headers.get('content-security-policy')).toBe(CONTENT_SECURITY_POLICY);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const payload = payloadOf(cookie);
    expect(payload).toMatchObject({ kid: root.id, ten: null });
    expect(payload.exp - payload.iat).toBe(900_000);
    expect(payload.max - payload.iat).toBe(28_800_000);
    const audit = (await t.keygate.store.listAudit({ limit: 5 })).entries.find((e) => e.action === 'console.sign_in');
    expect(audit).toMatchObject({ actor: root.id, tenant: 'system', target: root.id });
  });

  it('refuses a wrong key (audited as a failed login) and sets no cookie', async () => {
    const wrong = `${root.key.slice(0, -8)}00000000`;
    const res = await signIn(t.adminUrl, wrong);
    expectProblem(res, 401, 'invalid_key');
    expect(res.headers.get('set-cookie')).toBeNull();
    const failed = (await t.keygate.store.listAudit({ limit: 5 })).entries.find((e) => e.action === 'admin.login_failed');
    expect(failed?.detail.path).toBe('/console/api/session');
    expectProblem(await call(t.adminUrl, 'POST', '/console/api/session', { headers: { origin: t.adminUrl } }), 401, 'missing_credentials');
  });

  it('refuses a key that may not use the admin API (403), and revoked or expired admin keys (401)', async () => {
    const plain = await cliKey({ tenant: 'acme', name: 'reader', permissions: ['read'] });
    const res = await signIn(t.adminUrl, plain.key);
    expectProblem(res, 403, 'forbidden');
    expect(res.headers.get('set-cookie')).toBeNull();
    const gone = await cliKey({ tenant: 'system', role: 'admin', name: 'gone' });
    await t.keys.revoke(gone.id);
    expectProblem(await signIn(t.adminUrl, gone.key), 401, 'key_revoked');
  });

  it('refuses a sign-in without Origin, from another origin, or marked cross-site', async () => {
    expectProblem(await signIn(t.adminUrl, root.key, {}), 403, 'csrf_rejected');
    const foreign = await signIn(t.adminUrl, root.key, { origin: 'http://evil.example' });
    expectProblem(foreign, 403, 'csrf_rejected');
    expect(foreign.json.detail).toContain('http://evil.example');
    expect(foreign.headers.get('set-cookie')).toBeNull();
    expectProblem(await signIn(t.adminUrl, root.key, { origin: t.adminUrl, 'sec-fetch-site': 'cross-site' }), 403, 'csrf_rejected');
    // A page on another port of the same host is "same-site" to the browser: refused too.
    expectProblem(await signIn(t.adminUrl, root.key, { origin: t.adminUrl, 'sec-fetch-site': 'same-site' }), 403, 'csrf_rejected');
  });
});

describe('a session on the admin API', () => {
  let s: ConsoleSession;
  beforeAll(async () => {
    s = await session(t.adminUrl, root.key);
  });

  it('reads without a CSRF token and slides the idle deadline on every request', async () => {
    const before = payloadOf(s.setCookie);
    await new Promise((resolve) => setTimeout(resolve, 20));
    const res = await as(s, 'GET', '/v1/keys');
    expect(res.status, res.text).toBe(200);
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    const after = payloadOf(res.headers.get('set-cookie')!);
    expect(after.sid).toBe(before.sid);
    expect(after.exp).toBeGreaterThan(before.exp);
    expect(after.max).toBe(before.max);
    const info = await as(s, 'GET', '/console/api/session');
    expect(info.json.csrfToken).toBe(s.csrf);
  });

  it('creates with the CSRF token and Origin; refuses (403) without the token, with another session’s, or from another origin', async () => {
    const body = { tenant: 'acme', name: 'via-console', permissions: ['read'] };
    const created = await call(s.base, 'POST', '/v1/keys', { headers: { cookie: s.cookie, origin: s.base, 'x-csrf-token': s.csrf }, body });
    expect(created.status, created.text).toBe(201);
    issued.push(created.json.key);
    const other = await session(t.adminUrl, root.key);
    for (const res of [
      await as(s, 'POST', '/v1/keys', { body, csrf: null }),
      await as(s, 'POST', '/v1/keys', { body, csrf: other.csrf }),
      await as(s, 'POST', '/v1/keys', { body, csrf: 'x'.repeat(43) }),
      await as(s, 'POST', '/v1/keys', { body, origin: 'http://evil.example' }),
      await as(s, 'POST', '/v1/keys', { body, origin: null }),
      await as(s, 'POST', '/v1/keys', { body, headers: { 'sec-fetch-site': 'same-site' } }),
      await as(s, 'PATCH', `/v1/keys/${created.json.id}`, { body: { name: 'x' }, csrf: null }),
      await as(s, 'POST', `/v1/keys/${created.json.id}/revoke`, { csrf: null }),
      await as(s, 'POST', '/v1/tenants/acme/keys/revoke', { origin: 'null' }),
    ]) {
      expectProblem(res, 403, 'csrf_rejected');
    }
    // Nothing of that happened.
    expect((await t.keys.list({ tenant: 'acme' })).filter((k) => k.name === 'via-console')).toHaveLength(1);
    expect((await t.keys.get(created.json.id))?.status).toBe('active');
  });

  it('refuses a cross-site read too (Sec-Fetch-Site)', async () => {
    expectProblem(await as(s, 'GET', '/v1/keys', { headers: { 'sec-fetch-site': 'cross-site' } }), 403, 'csrf_rejected');
    expect((await as(s, 'GET', '/v1/keys', { headers: { 'sec-fetch-site': 'same-origin' } })).status).toBe(200);
  });

  it('ends at once when the admin key behind it is revoked, and the cookie is cleared', async () => {
    const admin2 = await cliKey({ tenant: 'system', role: 'admin', name: 'admin2' });
    const s2 = await session(t.adminUrl, admin2.key);
    expect((await as(s2, 'GET', '/v1/keys')).status).toBe(200);
    await t.keys.revoke(admin2.id);
    const res = await as(s2, 'GET', '/v1/keys');
    expectProblem(res, 401, 'invalid_session');
    expect(res.json.detail).toContain('revoked');
    expect(res.headers.get('set-cookie')).toMatch(/^keygate_console=; Path=\/; Max-Age=0; HttpOnly; SameSite=Strict$/);
    expectProblem(await as(s2, 'GET', '/console/api/session'), 401, 'invalid_session');
  });

  it('ends when the tenant admin’s key loses keys:manage (a group edited on reload)', async () => {
    const manager = await cliKey({ tenant: 'acme', name: 'acme-manager', group: 'managers' });
    const sm = await session(t.adminUrl, manager.key);
    expect(sm.info.scope).toEqual({ platform: false, tenant: 'acme' });
    expect((await as(sm, 'GET', '/v1/keys')).status).toBe(200);
    const live = t.keygate.config.permissionGroups as Record<string, string[]>;
    const saved = live.managers!;
    live.managers = ['read'];
    try {
      expectProblem(await as(sm, 'GET', '/v1/keys'), 401, 'invalid_session');
    } finally {
      live.managers = saved;
    }
  });

  it('refuses expired, past-their-maximum, tampered, unsigned and doubled cookies', async () => {
    const now = Date.now();
    const get = (cookie: string) => call(t.adminUrl, 'GET', '/v1/keys', { headers: { cookie } });
    expect((await get(forged({}))).status).toBe(200); // the forgery helper itself makes valid cookies
    expectProblem(await get(forged({ exp: now - 1 })), 401, 'invalid_session');
    expectProblem(await get(forged({ max: now - 1 })), 401, 'invalid_session');
    const valid = forged({});
    const [name, value] = valid.split('=') as [string, string];
    const [v, body, mac] = value.split('.') as [string, string, string];
    const other = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(body, 'base64url').toString()), kid: 'key_someoneelse' })).toString('base64url');
    expectProblem(await get(`${name}=${v}.${other}.${mac}`), 401, 'invalid_session');
    expectProblem(await get(`${name}=${v}.${body}.`), 401, 'invalid_session');
    expectProblem(await get(`${name}=${v}.${body}`), 401, 'invalid_session');
    expectProblem(await get(`${name}=garbage`), 401, 'invalid_session');
    expectProblem(await get(`${valid}; ${valid}`), 401, 'invalid_session');
    // A token signed with another pepper (another deployment) is not accepted.
    const foreign = new SessionTokens('another-pepper-0123456789').sign({ sid: 's', kid: root.id, ten: null, iat: now, exp: now + 60_000, max: now + 60_000 });
    expectProblem(await get(`keygate_console=${foreign}`), 401, 'invalid_session');
    // The CSRF token is derived from the session id with its own key: neither key works as the other.
    expect(tokens.csrfToken('forged-session-id')).not.toBe(mac);
  });

  it('expires: a session past its idle deadline is refused even though its signature is good', async () => {
    const now = Date.now();
    const stale = forged({ iat: now - 2_000_000, exp: now - 1000, max: now + 1_000_000 });
    const res = await call(t.adminUrl, 'GET', '/console/api/session', { headers: { cookie: stale } });
    expectProblem(res, 401, 'invalid_session');
    expect(res.json.detail).toContain('expired');
  });

  it('signs out: the cookie is cleared and a copy of it is refused afterwards', async () => {
    const s3 = await session(t.adminUrl, root.key);
    expectProblem(await as(s3, 'DELETE', '/console/api/session', { csrf: null }), 403, 'csrf_rejected');
    expect((await as(s3, 'GET', '/v1/keys')).status).toBe(200);
    const out = await as(s3, 'DELETE', '/console/api/session');
    expect(out.status).toBe(204);
    expect(out.headers.get('set-cookie')).toContain('Max-Age=0');
    expectProblem(await as(s3, 'GET', '/v1/keys'), 401, 'invalid_session');
    const audit = (await t.keygate.store.listAudit({ limit: 5 })).entries.find((e) => e.action === 'console.sign_out');
    expect(audit).toMatchObject({ actor: root.id, tenant: 'system' });
    // Signing out again, or without a valid session, just clears the cookie.
    expect((await as(s3, 'DELETE', '/console/api/session')).status).toBe(204);
  });

  it('a tenant admin’s session sees its own tenant only', async () => {
    const acmeAdmin = await cliKey({ tenant: 'acme', name: 'acme-admin', permissions: ['keys:manage'] });
    await cliKey({ tenant: 'globex', name: 'globex-key' });
    const sa = await session(t.adminUrl, acmeAdmin.key);
    const keys = await as(sa, 'GET', '/v1/keys?revoked=true');
    expect(new Set(keys.json.keys.map((k: { tenant: string }) => k.tenant))).toEqual(new Set(['acme']));
    expect((await as(sa, 'GET', '/v1/keys?tenant=globex')).json.keys).toEqual([]);
    expect((await as(sa, 'GET', '/v1/tenants')).json.tenants.map((x: { tenant: string }) => x.tenant)).toEqual(['acme']);
    expectProblem(await as(sa, 'POST', '/v1/tenants/globex/keys/revoke'), 404, 'not_found');
    expectProblem(await as(sa, 'GET', '/v1/secrets'), 403, 'forbidden');
    expect(sa.info.secrets.manage).toBe(false);
  });
});

describe('a session signed in with a key that is rotated', () => {
  it("ends when the key's rotation overlap ends, on its own (no sweep), and the cookie's limit is the key's end", async () => {
    const admin = await cliKey({ tenant: 'system', role: 'admin', name: 'rotated-admin' });
    const s = await session(t.adminUrl, admin.key);
    expect((await as(s, 'GET', '/v1/keys')).status).toBe(200);
    const rotated = await t.keygate.service.rotate(CLI_CALLER, admin.id, 1);
    issued.push(rotated.key);
    const revokesAt = rotated.previous.revokesAt!;
    // Still inside the overlap: the session works.
    expect((await as(s, 'GET', '/v1/keys')).status).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, revokesAt - Date.now()) + 50));
    // Past revokesAt, before any sweep has marked it revoked in the store: the session is over,
    // and it cannot mint a key on its way out.
    expect((await t.keygate.store.get(admin.id))!.status).toBe('active');
    const after = await as(s, 'GET', '/v1/keys');
    expectProblem(after, 401, 'invalid_session');
    expect(after.json.detail).toContain('has been revoked');
    expectProblem(await as(s, 'POST', '/v1/keys', { body: { tenant: 'system', name: 'minted', role: 'admin' } }), 401, 'invalid_session');
    expect((await t.keygate.store.list({ includeRevoked: true })).some((r) => r.name === 'minted')).toBe(false);
    // A new sign-in with a key that ends soon gets a cookie that ends with it.
    const soon = await t.keygate.service.create(CLI_CALLER, { tenant: 'system', role: 'admin', name: 'ends-soon', expires: new Date(Date.now() + 60_000).toISOString() });
    issued.push(soon.key);
    const short = await session(t.adminUrl, soon.key);
    expect(payloadOf(short.setCookie).max).toBeLessThanOrEqual(soon.record.expiresAt!);
  });
});

describe('X-Api-Key callers', () => {
  it('work exactly as before: no Origin, no CSRF token, no cookie needed (and a stray cookie changes nothing)', async () => {
    const created = await call(t.adminUrl, 'POST', '/v1/keys', { key: root.key, body: { tenant: 'scripts', name: 'from-curl' } });
    expect(created.status, created.text).toBe(201);
    issued.push(created.json.key);
    expect(created.headers.get('set-cookie')).toBeNull();
    const revoked = await call(t.adminUrl, 'POST', `/v1/keys/${created.json.id}/revoke`, { key: root.key, headers: { cookie: 'keygate_console=garbage' } });
    expect(revoked.status, revoked.text).toBe(200);
    expect(revoked.headers.get('set-cookie')).toBeNull();
    const none = await call(t.adminUrl, 'GET', '/v1/keys');
    expectProblem(none, 401, 'missing_credentials');
    expect(none.headers.get('www-authenticate')).toBe('Bearer realm="keygate-admin"');
  });
});

describe('GET /v1/tenants', () => {
  it('lists every tenant with key counts for a platform admin, and is in /openapi.json', async () => {
    const res = await call(t.adminUrl, 'GET', '/v1/tenants', { key: root.key });
    expect(res.status).toBe(200);
    const names = res.json.tenants.map((x: { tenant: string }) => x.tenant);
    expect(names).toEqual([...names].sort());
    expect(names).toEqual(expect.arrayContaining(['acme', 'globex', 'system', 'scripts']));
    const scripts = res.json.tenants.find((x: { tenant: string }) => x.tenant === 'scripts');
    expect(scripts).toEqual({ tenant: 'scripts', active: 0, expired: 0, revoked: 1 });
    const openapi = (await call(t.adminUrl, 'GET', '/openapi.json')).json;
    expect(Object.keys(openapi.paths['/v1/tenants'])).toEqual(['get']);
    expect(openapi.components.schemas.Tenant.required.sort()).toEqual(['active', 'expired', 'revoked', 'tenant']);
  });

  it('counts expired keys apart, and refuses keys that may not use the admin API', async () => {
    const service = t.keygate.service;
    const soon = await service.create(CLI_CALLER, { tenant: 'expiring', name: 'e', expires: new Date(Date.now() + 150).toISOString() });
    issued.push(soon.key);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const res = await call(t.adminUrl, 'GET', '/v1/tenants', { key: root.key });
    expect(res.json.tenants.find((x: { tenant: string }) => x.tenant === 'expiring')).toEqual({ tenant: 'expiring', active: 0, expired: 1, revoked: 0 });
    const plain = await cliKey({ tenant: 'acme', name: 'plain' });
    expectProblem(await call(t.adminUrl, 'GET', '/v1/tenants', { key: plain.key }), 403, 'forbidden');
  });
});

describe('the console’s files', () => {
  it('serves the page and its assets with their content types and the security headers', async () => {
    const page = await call(t.adminUrl, 'GET', '/console/');
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(page.headers.get('content-security-policy')).toBe(CONTENT_SECURITY_POLICY);
    expect(CONTENT_SECURITY_POLICY).toContain("default-src 'none'");
    expect(CONTENT_SECURITY_POLICY).toContain("frame-ancestors 'none'");
    expect(page.headers.get('x-content-type-options')).toBe('nosniff');
    expect(page.headers.get('referrer-policy')).toBe('no-referrer');
    expect(page.headers.get('x-frame-options')).toBe('DENY');
    expect(page.headers.get('cache-control')).toBe('no-store');
    // No inline script or style anywhere (the policy would block it), and nothing from elsewhere.
    expect(page.text).not.toMatch(/<script(?![^>]*\ssrc=)|<style|\sstyle=|\son[a-z]+=/i);
    for (const ref of page.text.matchAll(/(?:src|href)="([^"]+)"/g)) expect(ref[1]).toMatch(/^(\/console\/|#)/);
    const types: Record<string, string> = {
      '/console/app.js': 'text/javascript; charset=utf-8',
      '/console/keys-page.js': 'text/javascript; charset=utf-8',
      '/console/console.css': 'text/css; charset=utf-8',
      '/console/favicon.svg': 'image/svg+xml',
    };
    for (const [path, type] of Object.entries(types)) {
      const res = await call(t.adminUrl, 'GET', path);
      expect(res.status, path).toBe(200);
      expect(res.headers.get('content-type'), path).toBe(type);
      expect(res.headers.get('content-security-policy'), path).toBe(CONTENT_SECURITY_POLICY);
      const etag = res.headers.get('etag')!;
      const again = await fetch(t.adminUrl + path, { headers: { 'if-none-match': etag } });
      expect(again.status, path).toBe(304);
    }
    const js = await call(t.adminUrl, 'GET', '/console/app.js');
    expect(js.text).not.toMatch(/https?:\/\/(?!www\.w3\.org)/);
  });

  it('404s unknown console paths, 405s other methods, redirects /console', async () => {
    for (const path of ['/console/nope.js', '/console/index.html', '/console/../src/server.ts', '/console/%2e%2e/config.ts', '/console/api/nope', '/console/web/app.js', '/consolex']) {
      const res = await call(t.adminUrl, 'GET', path);
      expect(res.status, path).toBe(404);
    }
    expectProblem(await call(t.adminUrl, 'POST', '/console/app.js', { headers: { origin: t.adminUrl } }), 405, 'method_not_allowed');
    expectProblem(await call(t.adminUrl, 'PUT', '/console/api/session'), 405, 'method_not_allowed');
    const redirect = await fetch(`${t.adminUrl}/console`, { redirect: 'manual' });
    expect(redirect.status).toBe(308);
    expect(redirect.headers.get('location')).toBe('/console/');
  });

  it('no key comes back in any response after its creation, nor in any log line', () => {
    expect(responses.length).toBeGreaterThan(20);
    for (const res of responses) {
      for (const key of issued) {
        expect(res.text).not.toContain(key);
        expect(res.headers.get('set-cookie') ?? '').not.toContain(key);
      }
    }
    const logs = t.logs();
    for (const key of issued) expect(logs).not.toContain(key);
    expect(logs).not.toContain('keygate_console=');
  });
});

describe('behind an https origin', () => {
  let secure: AdminTestKeygate;
  const origin = 'https://keygate-admin.example.com';
  beforeAll(async () => {
    secure = await startAdminKeygate({ admin: { host: '127.0.0.1', port: 0, console: { origin, sessionIdleMs: 600_000, sessionMaxMs: 3_600_000 } } });
  });
  afterAll(async () => {
    await secure?.stop();
  });

  it('the cookie is Secure and __Host- prefixed, and only that origin may change anything', async () => {
    const key = (await secure.keys.create({ tenant: 'system', role: 'admin', name: 'root' })).key;
    expectProblem(await signIn(secure.adminUrl, key), 403, 'csrf_rejected');
    const s = await session(secure.adminUrl, key, origin);
    expect(s.setCookie).toMatch(/^__Host-keygate_console=v1\.[^;]+; Path=\/; Max-Age=600; HttpOnly; SameSite=Strict; Secure$/);
    const p = payloadOf(s.setCookie);
    expect(p.max - p.iat).toBe(3_600_000);
    // The unprefixed name is not this console's cookie here.
    expectProblem(await call(secure.adminUrl, 'GET', '/v1/keys', { headers: { cookie: s.cookie.replace('__Host-', '') } }), 401, 'missing_credentials');
    const created = await call(secure.adminUrl, 'POST', '/v1/keys', { headers: { cookie: s.cookie, origin, 'x-csrf-token': s.csrf }, body: { tenant: 'acme', name: 'x' } });
    expect(created.status, created.text).toBe(201);
    const local = await call(secure.adminUrl, 'POST', '/v1/keys', { headers: { cookie: s.cookie, origin: secure.adminUrl, 'x-csrf-token': s.csrf }, body: { tenant: 'acme', name: 'x' } });
    expectProblem(local, 403, 'csrf_rejected');
  });
});

describe('several instances', () => {
  it('embedded store: a session started on one instance works on the other; sign-out ends it on both', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'keygate-console-')), 'keygate.db');
    const [a, b] = await Promise.all([startAdminKeygate({ store: { path } }), startAdminKeygate({ store: { path } })]);
    try {
      const key = (await a.keys.create({ tenant: 'system', role: 'admin', name: 'root' })).key;
      const s = await session(a.adminUrl, key);
      const onB: ConsoleSession = { ...s, base: b.adminUrl };
      expect((await as(onB, 'GET', '/v1/keys')).status).toBe(200);
      expect((await as(s, 'DELETE', '/console/api/session')).status).toBe(204);
      expectProblem(await as(onB, 'GET', '/v1/keys'), 401, 'invalid_session');
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  });

  describe('on Redis', () => {
    let pair: RedisPair<AdminTestKeygate>;
    let redis: RedisServer;
    let a: AdminTestKeygate;
    let b: AdminTestKeygate;
    beforeAll(async () => {
      pair = await startRedisPair({
        start: startAdminKeygate,
        config: (_, server) => ({ store: { kind: 'redis', redis: { url: server.url } }, lifecycle: { sweepMs: 3_600_000, lastUsedFlushMs: 3_600_000 } }),
      });
      ({ redis, a, b } = pair);
    });
    afterAll(() => pair?.stop());

    it('sign-out on one instance is refused by the other; revoking the key on one ends sessions on the other', async () => {
      const key = (await a.keygate.service.create(CLI_CALLER, { tenant: 'system', role: 'admin', name: 'root' })).key;
      const s = await session(a.adminUrl, key);
      const onB: ConsoleSession = { ...s, base: b.adminUrl };
      expect((await as(onB, 'GET', '/v1/keys')).status).toBe(200);
      expect((await as(s, 'DELETE', '/console/api/session')).status).toBe(204);
      expectProblem(await as(onB, 'GET', '/v1/keys'), 401, 'invalid_session');
      const ttl = Number((await rawCommand(redis.port, `PTTL kg:session:ended:${payloadOf(s.setCookie).sid}`)).slice(1).trim());
      expect(ttl).toBeGreaterThan(28_700_000);
      expect(ttl).toBeLessThanOrEqual(28_800_000);

      const other = await a.keygate.service.create(CLI_CALLER, { tenant: 'system', role: 'admin', name: 'other' });
      const s2 = await session(b.adminUrl, other.key);
      expect((await as(s2, 'GET', '/v1/keys')).status).toBe(200);
      await a.keygate.service.revoke(CLI_CALLER, other.record.id);
      expectProblem(await as(s2, 'GET', '/v1/keys'), 401, 'invalid_session');
    });
  });
});

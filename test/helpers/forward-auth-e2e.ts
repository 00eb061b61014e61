/**
 * The forward-auth end-to-end scenarios, the same for every proxy (test/e2e/forward-auth-*.test.ts):
 * a real proxy in front (front-proxy.ts) of a real upstream, asking a real keygate whose config
 * is docs/forward-auth.md's. What a client sees and what the upstream receives:
 * a valid key → the identity headers, never the credential; no key or a bad one → keygate's 401
 * problem; forged identity headers never reach the upstream; a key revoked through the admin
 * API is refused by the very next request; route policy (a permission, the tenant in the path,
 * a rate limit) applies to the original path; keygate gone → the proxy fails closed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import type { RawConfig } from '../../src/config/schema.ts';
import { expectProblem, rawRequest, type RawResponse } from './http.ts';
import { startTestKeygate, type TestKeygate } from './keygate.ts';
import { docBlock, type FrontProxy } from './front-proxy.ts';
import { freePorts } from './process.ts';
import { startUpstream, type TestUpstream } from './upstream.ts';

export interface ProxyUnderTest {
  name: string;
  /** Starts the proxy on `port` in front of keygate's forward-auth port and the upstream's. */
  start(ports: { proxy: number; forwardAuth: number; upstream: number }): Promise<FrontProxy>;
  /** What the client gets when keygate cannot be reached (never the upstream's answer). */
  unreachable(res: RawResponse): void;
}

const HOST = 'api.example.com';

export function forwardAuthScenarios(proxyUnderTest: ProxyUnderTest): void {
  let t: TestKeygate;
  let up: TestUpstream;
  let proxy: FrontProxy;
  let admin: string;
  let reader: { key: string; id: string };
  let other: { key: string; id: string };

  async function key(input: Parameters<TestKeygate['keys']['create']>[0]): Promise<{ key: string; id: string }> {
    const created = await t.keys.create(input);
    return { key: created.key, id: created.record.id };
  }

  /** A client request through the proxy. */
  function call(path: string, headers: Record<string, string> | string[] = {}, method = 'GET'): Promise<RawResponse> {
    const list = Array.isArray(headers) ? ['Host', HOST, ...headers] : ['Host', HOST, ...Object.entries(headers).flat()];
    return rawRequest(proxy.url, { method, path, headers: list });
  }

  /** The request the upstream received last, after `before` requests. */
  function lastReceived(before: number) {
    expect(up.received.length, proxy.output()).toBe(before + 1);
    return up.received[before]!;
  }

  beforeAll(async () => {
    up = await startUpstream();
    // keygate's config is the doc's, with free ports.
    const raw = parseYaml(docBlock('keygate')) as RawConfig;
    t = await startTestKeygate({ ...raw, forwardAuth: { ...raw.forwardAuth, port: 0 }, routes: raw.routes!.map((r) => ({ ...r, upstream: up.url })) });
    const [port] = (await freePorts(1)) as [number];
    proxy = await proxyUnderTest.start({ proxy: port, forwardAuth: t.keygate.forwardAuthPort!, upstream: up.port });
    admin = (await key({ tenant: 'system', name: 'admin', role: 'admin' })).key;
    reader = await key({ tenant: 'acme', name: 'reader', permissions: ['orders:read'], user: 'ann' });
    other = await key({ tenant: 'acme', name: 'no-orders', permissions: ['other'] });
  }, 60_000);

  afterAll(async () => {
    await proxy?.stop();
    await t?.stop();
    await up?.close();
  });

  describe(`${proxyUnderTest.name} in front, keygate forward-auth`, () => {
    it('a valid key: the upstream gets the identity headers and neither the credential nor a forged identity', async () => {
      for (const credential of [['X-Api-Key', reader.key], ['Authorization', `Bearer ${reader.key}`]]) {
        const before = up.received.length;
        const res = await call('/orders/42?expand=items', [...credential, 'X-Tenant-Id', 'globex', 'X-Auth-Permissions', 'admin:*', 'X_Tenant_Id', 'globex']);
        expect(res.status, `${res.body}\n${proxy.output()}`).toBe(200);
        const got = lastReceived(before);
        expect(got.url).toBe('/orders/42?expand=items');
        expect(got.headers).toMatchObject({ 'x-tenant-id': 'acme', 'x-api-key-id': reader.id, 'x-auth-role': 'api-user', 'x-auth-permissions': 'orders:read', 'x-auth-user': 'ann', 'x-auth-environment': 'live' });
        expect(got.headers['x-api-key']).toBeUndefined();
        expect(got.headers.authorization).toBeUndefined();
        expect(got.headers['x_tenant_id']).toBeUndefined();
        // Without a value: not sent, or (Caddy < 2.9) sent empty — never the client's.
        expect(got.headers['x-auth-client'] ?? '').toBe('');
        expect(got.rawHeaders.join('\n')).not.toContain(reader.key);
      }
    });

    it("no key, or a bad one: keygate's 401 problem with WWW-Authenticate; the upstream is not reached", async () => {
      const before = up.received.length;
      const none = await call('/orders/42');
      expectProblem(none, 401, 'missing_credentials');
      expect(none.headers['www-authenticate']).toBe('Bearer realm="keygate"');
      expect(none.headers['retry-after']).toBeUndefined();
      expect(none.headers['cache-control']).toBe('no-store');
      const bad = await call('/orders/42', { 'X-Api-Key': `kg_acme_${'ab'.repeat(32)}` });
      expectProblem(bad, 401, 'invalid_key');
      expect(bad.headers['www-authenticate']).toContain('error="invalid_token"');
      expect(up.received.length).toBe(before);
    });

    it('a public route: no key needed, and a forged identity does not reach the upstream', async () => {
      const before = up.received.length;
      const res = await call('/status', { 'X-Tenant-Id': 'globex', 'X-Auth-Role': 'admin', 'X-Api-Key-Id': 'forged' });
      expect(res.status, res.body).toBe(200);
      const got = lastReceived(before);
      for (const name of ['x-tenant-id', 'x-auth-role', 'x-api-key-id']) expect(got.headers[name] ?? '').toBe('');
    });

    it('route policy on the original path: a permission, the tenant in the path, dot segments', async () => {
      const before = up.received.length;
      const denied = await call('/orders/42', { 'X-Api-Key': other.key });
      expectProblem(denied, 403, 'forbidden_permission');
      expect(denied.headers['www-authenticate']).toContain('error="insufficient_scope"');
      expectProblem(await call('/tenants/globex/items', { 'X-Api-Key': reader.key }), 403, 'forbidden_tenant');
      expectProblem(await call('/status/../orders/1'), 401, 'missing_credentials');
      expect(up.received.length).toBe(before);
      expect((await call('/tenants/acme/items', { 'X-Api-Key': reader.key })).status).toBe(200);
      expect(lastReceived(before).url).toBe('/tenants/acme/items');
    });

    it("a rate limit: keygate's 429 with Retry-After", async () => {
      const limited = await key({ tenant: 'acme', name: 'searcher' });
      for (let i = 0; i < 3; i++) expect((await call('/search?q=x', { 'X-Api-Key': limited.key })).status).toBe(200);
      const before = up.received.length;
      const res = await call('/search?q=x', { 'X-Api-Key': limited.key });
      expectProblem(res, 429, 'rate_limited');
      expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
      expect(up.received.length).toBe(before);
    });

    it('a key revoked through the admin API is refused by the very next request', async () => {
      const soon = await key({ tenant: 'acme', name: 'soon-revoked', permissions: ['orders:read'] });
      expect((await call('/orders/1', { 'X-Api-Key': soon.key })).status).toBe(200);
      const revoked = await fetch(`${t.adminUrl}/v1/keys/${soon.id}/revoke`, { method: 'POST', headers: { 'x-api-key': admin } });
      expect(revoked.status).toBe(200);
      const before = up.received.length;
      expectProblem(await call('/orders/1', { 'X-Api-Key': soon.key }), 401, 'key_revoked');
      expect(up.received.length).toBe(before);
    });

    it('keygate cannot be reached: the proxy fails closed', async () => {
      const before = up.received.length;
      await t.stop();
      proxyUnderTest.unreachable(await call('/orders/1', { 'X-Api-Key': reader.key }));
      expect(up.received.length).toBe(before);
    });
  });
}

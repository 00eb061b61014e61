/**
 * AccessTokens on its own: the verified-token cache (synchronous hits, never past exp, bad
 * tokens remembered, retryable failures not), claim mapping (paths, namespaced claims), and
 * issuers kept or replaced by update(); introspected tokens (refused unasked for a limited
 * address, bounded waiting, a missing secret). The JWKS and the introspection endpoint are
 * served on loopback.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AccessTokens, type RouteTokens } from '../../../src/auth/access-token.ts';
import type { Identity } from '../../../src/auth/identity.ts';
import { ConfigError, parseConfig } from '../../../src/config/load.ts';
import { LOOKUP_REFUSED } from '../../../src/auth/verify.ts';
import { startIntrospection, type TestIntrospection } from '../../helpers/introspection-server.ts';
import type { Config } from '../../../src/config/schema.ts';
import { createLogger } from '../../../src/observability/logger.ts';
import { captureStream } from '../../helpers/keygate.ts';
import { startTestIssuer, type TestIssuer } from '../../helpers/oauth-issuer.ts';

const AUD = 'https://mcp.example.com/mcp';
const logger = createLogger({ level: 'silent' });
let idp: TestIssuer;

function setup(issuer: Record<string, unknown>, log = logger): { config: Config; tokens: AccessTokens; route: RouteTokens } {
  const config = parseConfig(
    {
      oauth: { issuers: [{ name: 'test', issuer: idp.issuer, jwksUri: idp.jwksUri, ...issuer }] },
      routes: [{ name: 'mcp', pathPrefix: '/mcp', upstream: 'http://127.0.0.1:1', mcp: { resource: AUD }, auth: { issuers: ['test'] } }],
    },
    'test',
  );
  const tokens = new AccessTokens(config.oauth, { keyPrefix: 'kg', logger: log });
  return { config, tokens, route: tokens.forRoute(config.routes[0]!)! };
}

beforeAll(async () => {
  idp = await startTestIssuer();
});

afterAll(async () => {
  await idp?.close();
});

describe('the verified-token cache', () => {
  it('answers a token seen before synchronously, with the same identity object', async () => {
    const { route } = setup({ tenant: 'acme' });
    const token = await idp.token(AUD);
    const first = route.verify(token);
    expect(first).toBeInstanceOf(Promise);
    const identity = (await first) as Identity;
    expect(identity.record.tenant).toBe('acme');
    const again = route.verify(token);
    expect(again).toBe(identity);
  });

  it('never serves a token past its exp (the cache entry ends with it)', async () => {
    const { route } = setup({ tenant: 'acme', clockToleranceSeconds: 0 });
    const token = await idp.token(AUD, { claims: { exp: Math.floor(Date.now() / 1000) + 2 } });
    expect(typeof (await route.verify(token))).toBe('object');
    await sleep(2100);
    expect(await route.verify(token)).toBe('token_expired');
  });

  it('remembers a bad signature (sync the second time), not a token that is only early', async () => {
    const { route } = setup({ tenant: 'acme' });
    const [h, p, s] = (await idp.token(AUD)).split('.');
    const bad = `${h}.${p}.${s!.startsWith('A') ? 'B' : 'A'}${s!.slice(1)}`;
    expect(await route.verify(bad)).toBe('token_signature');
    expect(route.verify(bad)).toBe('token_signature');
    const early = await idp.token(AUD, { claims: { nbf: Math.floor(Date.now() / 1000) + 600 } });
    expect(await route.verify(early)).toBe('token_not_yet_valid');
    expect(route.verify(early)).toBeInstanceOf(Promise);
  });

  it('concurrent first uses of one token share one verification', async () => {
    const { route } = setup({ tenant: 'acme' });
    const token = await idp.token(AUD);
    const results = await Promise.all(Array.from({ length: 20 }, () => route.verify(token)));
    expect(new Set(results).size).toBe(1);
    expect(typeof results[0]).toBe('object');
  });
});

describe('claim mapping', () => {
  it('walks a dotted path when no claim has that name, and takes a namespaced claim as it is', async () => {
    const { route } = setup({ claims: { tenant: 'https://example.com/tenant', permissions: 'realm_access.roles', client: 'azp', user: 'preferred_username' } });
    const token = await idp.token(AUD, { claims: { 'https://example.com/tenant': 'globex', realm_access: { roles: ['mcp:use', 'admin'] }, azp: 'chat-ui', preferred_username: 'bob' } });
    const identity = (await route.verify(token)) as Identity;
    expect(identity.record).toMatchObject({ id: '', tenant: 'globex', user: 'bob', client: 'chat-ui', role: 'api-user' });
    expect(identity.permissionsHeader).toBe('mcp:use,admin');
    expect(identity.issuer).toBe('test');
  });

  it('a token without scope has no permissions; one without client has none', async () => {
    const { route } = setup({ tenant: 'acme' });
    const identity = (await route.verify(await idp.token(AUD))) as Identity;
    expect(identity.permissions).toEqual([]);
    expect(identity.record.client).toBeNull();
  });
});

describe('update()', () => {
  it('keeps an unchanged issuer (its fetched keys too) and replaces a changed one', async () => {
    const { config, tokens } = setup({ tenant: 'acme' });
    const route = tokens.forRoute(config.routes[0]!)!;
    const before = route.issuers.get(idp.issuer);
    tokens.update(config.oauth);
    expect(tokens.forRoute(config.routes[0]!)!.issuers.get(idp.issuer)).toBe(before);
    tokens.update({ ...config.oauth, issuers: [{ ...config.oauth.issuers[0]!, tenant: 'globex' }] });
    const replaced = tokens.forRoute(config.routes[0]!)!;
    expect(replaced.issuers.get(idp.issuer)).not.toBe(before);
    // A token verified under the old issuer is judged again under the new one.
    const token = await idp.token(AUD);
    expect(((await route.verify(token)) as Identity).record.tenant).toBe('acme');
    expect(((await replaced.verify(token)) as Identity).record.tenant).toBe('globex');
  });
});

describe('claims become identity only in the shape a key would have', () => {
  it('a scope item with a comma is refused, not split into permissions upstream', async () => {
    const { route } = setup({ tenant: 'acme' });
    expect(await route.verify(await idp.token(AUD, { claims: { scope: 'mcp:use read,billing:admin' } }))).toBe('token_claims');
    expect(await route.verify(await idp.token(AUD, { claims: { scope: ['mcp:use', 'read,billing:admin'] } }))).toBe('token_claims');
  });

  it('scope items must be permission names (PERMISSION_PATTERN): no quotes, backslashes, tabs or non-ASCII', async () => {
    const { route } = setup({ tenant: 'acme' });
    for (const scope of ['mcp:use\tadmin', 'read"', 'a\\b', 'caf\u00e9', 'x'.repeat(129), 'ok;admin']) {
      expect(await route.verify(await idp.token(AUD, { claims: { scope } })), JSON.stringify(scope)).toBe('token_claims');
    }
    const identity = (await route.verify(await idp.token(AUD, { claims: { scope: 'mcp:use  files.read mcp:use *' } }))) as Identity;
    expect(identity.permissionsHeader).toBe('mcp:use,files.read,*');
  });

  it('a user or client that could not be a key\'s (control characters, non-ASCII, too long, not a string) is refused', async () => {
    const { route } = setup({ tenant: 'acme', claims: { user: 'sub', client: 'client_id', permissions: 'scope' } });
    for (const claims of [
      { sub: 'alice\r\nx-auth-role: admin' },
      { sub: 'al\u00efce' },
      { sub: 'a'.repeat(257) },
      { sub: ' alice' },
      { client_id: 'c'.repeat(65) },
      { client_id: 'mcp\u0000' },
      { client_id: ['mcp'] },
    ]) {
      expect(await route.verify(await idp.token(AUD, { claims })), JSON.stringify(claims)).toBe('token_claims');
    }
    const identity = (await route.verify(await idp.token(AUD, { claims: { sub: 'auth0|5f1c 2', client_id: 'chat-ui' } }))) as Identity;
    expect(identity.record).toMatchObject({ user: 'auth0|5f1c 2', client: 'chat-ui' });
  });

  it('logs which claim and why, never the token or the claim value', async () => {
    const capture = captureStream();
    const log = createLogger({ level: 'info', destination: capture.stream, sync: true });
    const { route } = setup({ tenant: 'acme' }, log);
    const token = await idp.token(AUD, { claims: { scope: 'mcp:use read,billing:admin' } });
    expect(await route.verify(token)).toBe('token_claims');
    const text = capture.text();
    expect(text).toContain('"claim":"scope"');
    expect(text).toContain('not a permission name');
    expect(text).not.toContain('billing:admin');
    expect(text).not.toContain(token.split('.')[1]!);
  });
});

describe('introspected tokens (RFC 7662)', () => {
  const SECRET = 'unit-secret';
  let intro: TestIntrospection;

  beforeAll(async () => {
    intro = await startIntrospection('kg', SECRET);
  });

  afterAll(async () => {
    await intro?.close();
  });

  function opaqueSetup(introspection: Record<string, unknown> = {}, env: NodeJS.ProcessEnv = { KG_UNIT_SECRET: SECRET }) {
    const config = parseConfig(
      {
        oauth: { issuers: [{ name: 'as', issuer: 'https://as.test', tenant: 'acme', introspection: { endpoint: intro.url, clientId: 'kg', clientSecretEnv: 'KG_UNIT_SECRET', ...introspection } }] },
        routes: [{ name: 'mcp', pathPrefix: '/mcp', upstream: 'http://127.0.0.1:1', mcp: { resource: AUD }, auth: { issuers: ['as'] } }],
      },
      'test',
    );
    const tokens = new AccessTokens(config.oauth, { keyPrefix: 'kg', logger, env });
    return { config, tokens, route: tokens.forRoute(config.routes[0]!)! };
  }

  const good = (token: string) => intro.add(token, { aud: AUD, sub: 'alice', scope: 'mcp:use', exp: Math.floor(Date.now() / 1000) + 300 });

  it('with knownOnly (an address over the failure limit), a token that would be introspected is refused before any request; a cached one is not', async () => {
    const { route, tokens } = opaqueSetup();
    good('tok-known');
    intro.reset();
    expect(typeof (await route.verify('tok-known'))).toBe('object');
    expect(route.verify('tok-known', true)).toMatchObject({ issuer: 'as' });
    expect(route.verify('tok-new', true)).toBe(LOOKUP_REFUSED);
    expect(intro.calls).toBe(1);
    await tokens.close();
  });

  it('past maxConcurrent + maxPending, a new token is introspection_busy at once; waiting ones get their answer', async () => {
    const { route, tokens } = opaqueSetup({ maxConcurrent: 1, maxPending: 1 });
    for (const t of ['b1', 'b2', 'b3']) good(t);
    intro.reset();
    intro.delayMs = 100;
    const results = await Promise.all(['b1', 'b2', 'b3'].map((t) => route.verify(t)));
    expect(results.map((r) => (typeof r === 'string' ? r : 'ok'))).toEqual(['ok', 'ok', 'introspection_busy']);
    expect(intro.maxInFlight).toBe(1);
    intro.delayMs = 0;
    // Not remembered: once there is room, the same token is asked about.
    expect(typeof (await route.verify('b3'))).toBe('object');
    await tokens.close();
  });

  it('a waiting token that gets no place within timeoutMs is introspection_busy', async () => {
    const { route, tokens } = opaqueSetup({ maxConcurrent: 1, maxPending: 4, timeoutMs: 200 });
    intro.reset();
    intro.mode = 'hang';
    const [first, second] = await Promise.all([route.verify('h1'), route.verify('h2')]);
    expect(first).toBe('introspection_unavailable');
    expect(second).toBe('introspection_busy');
    intro.mode = 'ok';
    await tokens.close();
  });

  it('update(): an issuer whose secret is not in the environment throws a ConfigError and changes nothing', () => {
    const { config, tokens, route } = opaqueSetup();
    const before = route.introspector;
    const changed = { ...config.oauth, issuers: [{ ...config.oauth.issuers[0]!, introspection: { ...config.oauth.issuers[0]!.introspection!, clientSecretEnv: 'KG_UNIT_UNSET' } }] };
    expect(() => tokens.update(changed)).toThrow(ConfigError);
    expect(tokens.forRoute(config.routes[0]!)!.introspector).toBe(before);
  });
});

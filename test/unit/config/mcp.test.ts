/**
 * The MCP-facing config (routes[].mcp, routes[].cors, routes[].auth.issuers, oauth) and the
 * RFC 9728 §3.1 derivation of metadata URLs from a resource.
 */
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/load.ts';
import type { RawConfig } from '../../../src/config/schema.ts';
import { isResource, metadataPath, metadataUrl, servedPaths } from '../../../src/mcp/resource-metadata.ts';
import { configProblems } from '../../helpers/config.ts';

const route = { name: 'mcp', pathPrefix: '/mcp', upstream: 'http://127.0.0.1:3000' };
const issuer = { name: 'corp', issuer: 'https://id.example.com/realms/corp', jwksUri: 'https://id.example.com/jwks', tenant: 'acme' };

const problems = (raw: RawConfig): string[] => configProblems(raw);

describe('metadata URL derivation (RFC 9728 §3.1)', () => {
  it.each([
    ['https://mcp.example.com/mcp', 'https://mcp.example.com/.well-known/oauth-protected-resource/mcp'],
    ['https://mcp.example.com/mcp/', 'https://mcp.example.com/.well-known/oauth-protected-resource/mcp/'],
    ['https://mcp.example.com', 'https://mcp.example.com/.well-known/oauth-protected-resource'],
    ['https://mcp.example.com/', 'https://mcp.example.com/.well-known/oauth-protected-resource'],
    ['http://127.0.0.1:8080/a/b', 'http://127.0.0.1:8080/.well-known/oauth-protected-resource/a/b'],
    ['https://MCP.Example.com:443/x', 'https://MCP.Example.com:443/.well-known/oauth-protected-resource/x'],
    ['https://[::1]:8443/mcp', 'https://[::1]:8443/.well-known/oauth-protected-resource/mcp'],
  ])('%s → %s (the resource as written, never normalised)', (resource, url) => {
    expect(isResource(resource)).toBe(true);
    expect(metadataUrl(resource)).toBe(url);
  });

  it('serves the exact path, the one without a trailing slash, and the route prefix form', () => {
    expect(servedPaths('https://h/mcp/', '/mcp')).toEqual(['/.well-known/oauth-protected-resource/mcp/', '/.well-known/oauth-protected-resource/mcp']);
    expect(servedPaths('https://h/public/mcp', '/internal')).toEqual(['/.well-known/oauth-protected-resource/public/mcp', '/.well-known/oauth-protected-resource/internal']);
    expect(servedPaths('https://h', '/')).toEqual(['/.well-known/oauth-protected-resource']);
    expect(metadataPath('https://h/')).toBe('/.well-known/oauth-protected-resource');
  });

  it.each(['mcp.example.com/mcp', 'ftp://h/x', 'HTTPS://h/x', 'https://h/x?tenant=a', 'https://h/x#f', 'https://user:pw@h/x', 'https://h/a b', 'https://h/"x', 'https:///x', 'https://h/x\\y'])('refuses %s', (resource) => {
    expect(isResource(resource)).toBe(false);
  });
});

describe('routes[].mcp', () => {
  it('is accepted with its defaults', () => {
    const config = parseConfig({ routes: [{ ...route, mcp: { resource: 'https://mcp.example.com/mcp/' } }] }, 'test');
    expect(config.routes[0]!.mcp).toEqual({ resource: 'https://mcp.example.com/mcp/' });
  });

  it('names the field that is wrong', () => {
    expect(problems({ routes: [{ ...route, mcp: { resource: 'https://h/x?q=1' } }] })[0]).toMatch(/^routes\[0\]\.mcp\.resource: must be an absolute http:\/\/ or https:\/\/ URL/);
    expect(problems({ routes: [{ ...route, mcp: { resource: 'https://h/x', authorizationServers: ['not a url'] } }] })[0]).toMatch(/^routes\[0\]\.mcp\.authorizationServers\[0\]: /);
    expect(problems({ routes: [{ ...route, mcp: { resource: 'https://h/x', scopesSupported: ['a b'] } }] })[0]).toMatch(/^routes\[0\]\.mcp\.scopesSupported\[0\]: must be a scope token/);
    expect(problems({ routes: [{ ...route, auth: { permissions: ['has space'] }, mcp: { resource: 'https://h/x' } }] })).toEqual([
      'routes[0].auth.permissions[0]: must be a scope token on a route with mcp (it is sent as scope="…"): no spaces, quotes or backslashes',
    ]);
  });

  it('refuses two resources that would answer at one well-known URL', () => {
    const clash = problems({
      routes: [
        { ...route, mcp: { resource: 'https://a.example/mcp' } },
        { ...route, name: 'two', pathPrefix: '/two', mcp: { resource: 'https://b.example/mcp' } },
      ],
    });
    expect(clash).toEqual(['routes[1].mcp.resource: its metadata would be served at /.well-known/oauth-protected-resource/mcp, where routes[0] (resource https://a.example/mcp) already serves its own']);
    // On different hosts they do not meet.
    expect(() =>
      parseConfig(
        {
          routes: [
            { ...route, host: 'a.example', mcp: { resource: 'https://a.example/mcp' } },
            { ...route, name: 'two', host: 'b.example', mcp: { resource: 'https://b.example/mcp' } },
          ],
        },
        'test',
      ),
    ).not.toThrow();
  });
});

describe('routes[].cors', () => {
  it('has its defaults', () => {
    const config = parseConfig({ routes: [{ ...route, cors: { origins: ['https://app.example.com', 'http://localhost:5173'] } }] }, 'test');
    expect(config.routes[0]!.cors).toEqual({
      origins: ['https://app.example.com', 'http://localhost:5173'],
      credentials: false,
      maxAgeSeconds: 600,
      methods: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'],
      allowHeaders: [],
      exposeHeaders: [],
    });
  });

  it.each(['*', 'https://app.example.com/', 'https://App.example.com', 'https://app.example.com:443', 'app.example.com', 'null', 'https://app.example.com/path'])('refuses the origin %s', (origin) => {
    expect(problems({ routes: [{ ...route, cors: { origins: [origin] } }] })[0]).toMatch(/^routes\[0\]\.cors\.origins\[0\]: must be an exact origin as a browser sends it/);
  });

  it('refuses an empty list, lower-case methods and bad header names', () => {
    expect(problems({ routes: [{ ...route, cors: { origins: [] } }] })[0]).toMatch(/^routes\[0\]\.cors\.origins: must list at least one origin/);
    expect(problems({ routes: [{ ...route, cors: { origins: ['https://a.example'], methods: ['get'] } }] })[0]).toMatch(/^routes\[0\]\.cors\.methods\[0\]: must be an upper-case HTTP method/);
    expect(problems({ routes: [{ ...route, cors: { origins: ['https://a.example'], allowHeaders: ['x y'] } }] })[0]).toMatch(/^routes\[0\]\.cors\.allowHeaders\[0\]: /);
  });
});

describe('oauth and routes[].auth.issuers', () => {
  it('has its defaults', () => {
    const config = parseConfig({ oauth: { issuers: [issuer] } }, 'test');
    expect(config.oauth).toEqual({
      issuers: [{ ...issuer, algorithms: ['RS256', 'ES256'], clockToleranceSeconds: 30, claims: { user: 'sub', permissions: 'scope', client: 'client_id' }, jwks: { cacheMaxAgeMs: 600_000, cooldownMs: 30_000, timeoutMs: 5000 } }],
      tokenCache: { max: 10_000, maxAgeMs: 60_000 },
    });
  });

  it('needs exactly one way to find the tenant', () => {
    const { tenant: _t, ...noTenant } = issuer;
    expect(problems({ oauth: { issuers: [noTenant] } })).toEqual(['oauth.issuers[0].tenant: give exactly one of tenant (every token gets this tenant) or claims.tenant (the claim that holds it)']);
    expect(problems({ oauth: { issuers: [{ ...issuer, claims: { tenant: 'tid' } }] } })).toHaveLength(1);
    expect(() => parseConfig({ oauth: { issuers: [{ ...noTenant, claims: { tenant: 'tid' } }] } }, 'test')).not.toThrow();
  });

  it('refuses symmetric and unsigned algorithms', () => {
    for (const alg of ['HS256', 'none']) {
      expect(problems({ oauth: { issuers: [{ ...issuer, algorithms: [alg as 'RS256'] }] } })[0]).toMatch(/^oauth\.issuers\[0\]\.algorithms\[0\]: must be one of RS256, .*\(HS\* and none are never accepted\)/);
    }
  });

  it('refuses duplicate issuers and bad JWKS URLs', () => {
    expect(problems({ oauth: { issuers: [issuer, { ...issuer, issuer: 'https://other' }] } })).toEqual(['oauth.issuers[1].name: duplicates oauth.issuers[0].name "corp"']);
    expect(problems({ oauth: { issuers: [issuer, { ...issuer, name: 'again' }] } })[0]).toMatch(/^oauth\.issuers\[1\]\.issuer: duplicates oauth\.issuers\[0\]\.issuer/);
    expect(problems({ oauth: { issuers: [{ ...issuer, jwksUri: 'file:///etc/jwks' }] } })).toEqual(['oauth.issuers[0].jwksUri: must be an http(s) URL']);
  });

  it('a route naming issuers needs them to exist, an mcp.resource (the audience) and auth', () => {
    const oauth = { issuers: [issuer] };
    expect(problems({ oauth, routes: [{ ...route, auth: { issuers: ['corp'] } }] })).toEqual(['routes[0].auth.issuers: needs mcp.resource on the route: it is the audience ("aud") that tokens must carry']);
    expect(problems({ oauth, routes: [{ ...route, auth: { issuers: ['nope'] }, mcp: { resource: 'https://h/mcp' } }] })).toEqual(['routes[0].auth.issuers[0]: names no issuer in oauth.issuers (corp)']);
    expect(problems({ oauth, routes: [{ ...route, auth: { required: false, issuers: ['corp'] }, mcp: { resource: 'https://h/mcp' } }] })).toEqual(['routes[0].auth.issuers: needs auth.required: true']);
    expect(() => parseConfig({ oauth, routes: [{ ...route, auth: { issuers: ['corp'] }, mcp: { resource: 'https://h/mcp' } }] }, 'test')).not.toThrow();
  });
});

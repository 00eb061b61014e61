/**
 * The config of issue 21's token and transport options: routes[].mcp.audiences,
 * mcp.authorizationServers (never empty), mcp.resourceDocumentation, oauth.issuers[].introspection
 * (and its secret, read from the environment only), routes[].timeouts.sseKeepAliveMs. Every bad
 * value is refused with a message naming the field.
 */
import { describe, expect, it } from 'vitest';
import { checkIntrospectionSecrets } from '../../../src/auth/introspection.ts';
import { ConfigError, parseConfig } from '../../../src/config/load.ts';
import type { RawConfig } from '../../../src/config/schema.ts';
import { configProblems } from '../../helpers/config.ts';

const RESOURCE = 'https://mcp.example.com/mcp';
const route = { name: 'mcp', pathPrefix: '/mcp', upstream: 'http://127.0.0.1:3000' };
const jwt = { name: 'corp', issuer: 'https://id.example.com/realms/corp', jwksUri: 'https://id.example.com/jwks', tenant: 'acme' };
const introspection = { endpoint: 'https://id.example.com/introspect', clientId: 'keygate', clientSecretEnv: 'KEYGATE_INTROSPECTION_SECRET' };
const opaque = { name: 'opaque', issuer: 'https://as.example.com', tenant: 'acme', introspection };

const problems = (raw: RawConfig): string[] => configProblems(raw);
/** `issuers` null: a key-only route. */
const withMcp = (mcp: Record<string, unknown>, issuers: string[] | null = ['corp']): RawConfig => ({
  oauth: { issuers: [jwt, opaque] },
  routes: [{ ...route, mcp: { resource: RESOURCE, ...mcp }, auth: issuers === null ? {} : { issuers } }],
});

describe('routes[].mcp.audiences', () => {
  it('accepts other names of the server: URIs and plain names', () => {
    const config = parseConfig(withMcp({ audiences: ['https://mcp.internal.example/mcp', 'urn:example:mcp', 'mcp-api'] }), 'test');
    expect(config.routes[0]!.mcp!.audiences).toEqual(['https://mcp.internal.example/mcp', 'urn:example:mcp', 'mcp-api']);
  });

  it.each([
    [[], /must list at least one audience, or be left out/],
    [Array.from({ length: 33 }, (_, i) => `aud-${i}`), /at most 32/],
    [['has space'], /must be an audience tokens carry/],
    [['"quoted"'], /must be an audience tokens carry/],
    [[':no-scheme'], /must be an audience tokens carry/],
    [['back\\slash'], /must be an audience tokens carry/],
    [['x'.repeat(513)], /at most 512 characters/],
    [[42], /expected string|must be/],
  ])('refuses %j naming the field', (audiences, message) => {
    const found = problems(withMcp({ audiences }));
    expect(found.some((p) => p.startsWith('routes[0].mcp.audiences') && message.test(p)), found.join('\n')).toBe(true);
  });

  it('refuses the resource itself, a duplicate, and audiences on a route that takes no tokens', () => {
    expect(problems(withMcp({ audiences: [RESOURCE] }))).toEqual(['routes[0].mcp.audiences[0]: repeats mcp.resource, which is always accepted']);
    expect(problems(withMcp({ audiences: ['a', 'b', 'a'] }))).toEqual(['routes[0].mcp.audiences[2]: duplicates mcp.audiences[0]']);
    expect(problems(withMcp({ audiences: ['a'] }, null))).toEqual(['routes[0].mcp.audiences: needs auth.issuers (only access tokens carry an audience; keys are accepted under every name)']);
  });
});

describe('routes[].mcp: authorization servers and documentation', () => {
  it('authorizationServers is never an empty list (MCP requires one where tokens are taken)', () => {
    expect(problems(withMcp({ authorizationServers: [] }))[0]).toMatch(/^routes\[0\]\.mcp\.authorizationServers: must list at least one authorization server/);
  });

  it('resourceDocumentation is an http(s) URL', () => {
    expect(parseConfig(withMcp({ resourceDocumentation: 'https://docs.example.com/keys' }, null), 'test').routes[0]!.mcp!.resourceDocumentation).toBe('https://docs.example.com/keys');
    for (const bad of ['docs.example.com', 'ftp://docs.example.com/x', 'https://docs.example.com/#keys', 'https://docs.example.com/"x"']) {
      expect(problems(withMcp({ resourceDocumentation: bad }, null))[0], bad).toMatch(/^routes\[0\]\.mcp\.resourceDocumentation: must be an http\(s\) URL/);
    }
  });
});

describe('oauth.issuers[].introspection', () => {
  const issuerProblems = (issuer: Record<string, unknown>, routeIssuers = ['opaque']) =>
    problems({ oauth: { issuers: [jwt, { ...opaque, ...issuer }] }, routes: [{ ...route, mcp: { resource: RESOURCE }, auth: { issuers: routeIssuers } }] });

  it('is accepted with its defaults, and an issuer may have both jwksUri and introspection', () => {
    const config = parseConfig({ oauth: { issuers: [{ ...opaque, jwksUri: 'https://as.example.com/jwks' }] }, routes: [{ ...route, mcp: { resource: RESOURCE }, auth: { issuers: ['opaque'] } }] }, 'test');
    expect(config.oauth.issuers[0]!.introspection).toEqual({ ...introspection, timeoutMs: 5000, cacheMaxAgeMs: 30_000, maxConcurrent: 16, maxPending: 256 });
    const loopback = parseConfig({ oauth: { issuers: [{ ...opaque, introspection: { ...introspection, endpoint: 'http://127.0.0.1:9000/introspect' } }] } }, 'test');
    expect(loopback.oauth.issuers[0]!.introspection!.endpoint).toBe('http://127.0.0.1:9000/introspect');
  });

  it.each([
    ['endpoint', 'http://as.example.com/introspect', /must be an https URL .* http only to 127\.0\.0\.1/],
    ['endpoint', 'https://kg:secret@as.example.com/introspect', /without user info/],
    ['endpoint', 'not a url', /must be an https URL/],
    ['clientId', '', /1-256 printable ASCII/],
    ['clientId', 'has space', /1-256 printable ASCII/],
    ['clientSecretEnv', 'the actual secret!', /name of the environment variable .* not the secret itself/],
    ['clientSecretEnv', '1STARTS_WITH_DIGIT', /name of the environment variable/],
    ['timeoutMs', 0, /greater than 0/],
    ['timeoutMs', 'fast', /must be a number/],
    ['timeoutMs', 60_001, /at most 60000/],
    ['cacheMaxAgeMs', 1.5, /whole number/],
    ['cacheMaxAgeMs', 3_600_001, /at most 3600000/],
    ['maxConcurrent', 0, /greater than 0/],
    ['maxConcurrent', 5000, /at most 1024/],
    ['maxPending', -1, /0 or more/],
  ])('%s: %j is refused naming the field', (field, value, message) => {
    const found = issuerProblems({ introspection: { ...introspection, [field]: value } });
    expect(found.length, found.join('\n')).toBeGreaterThan(0);
    expect(found[0]).toMatch(new RegExp(`^oauth\\.issuers\\[1\\]\\.introspection\\.${field}: `));
    expect(found[0]).toMatch(message);
  });

  it('the secret itself is never a config field', () => {
    expect(issuerProblems({ introspection: { ...introspection, clientSecret: 'hunter2' } })).toEqual(['oauth.issuers[1].introspection: unknown field "clientSecret"']);
  });

  it('an issuer needs jwksUri or introspection', () => {
    expect(issuerProblems({ introspection: undefined })).toEqual(['oauth.issuers[1].jwksUri: give jwksUri (JWT access tokens, verified here), introspection (opaque tokens, asked about at the issuer), or both']);
  });

  it('a route names at most one issuer with introspection (an opaque token says nothing of its issuer)', () => {
    const config: RawConfig = {
      oauth: { issuers: [opaque, { ...opaque, name: 'opaque2', issuer: 'https://as2.example.com' }, jwt] },
      routes: [{ ...route, mcp: { resource: RESOURCE }, auth: { issuers: ['opaque', 'corp', 'opaque2'] } }],
    };
    expect(problems(config)).toEqual(['routes[0].auth.issuers: names 2 issuers with introspection (opaque, opaque2); an opaque token says nothing of its issuer, so a route may name one']);
  });

  it('its secret comes from the environment: not set, or empty, is a ConfigError naming the field and the variable, never a value', () => {
    const config = parseConfig({ oauth: { issuers: [jwt, opaque] } }, 'test');
    for (const env of [{}, { KEYGATE_INTROSPECTION_SECRET: '' }]) {
      let thrown: unknown;
      try {
        checkIntrospectionSecrets(config.oauth.issuers, env);
      } catch (error) {
        thrown = error;
      }
      expect(thrown).toBeInstanceOf(ConfigError);
      expect((thrown as ConfigError).problems).toEqual(['oauth.issuers[1].introspection.clientSecretEnv: the environment variable KEYGATE_INTROSPECTION_SECRET is not set (it must hold the client secret keygate introspects tokens with)']);
    }
    expect(() => checkIntrospectionSecrets(config.oauth.issuers, { KEYGATE_INTROSPECTION_SECRET: 'x' })).not.toThrow();
  });
});

describe('routes[].timeouts.sseKeepAliveMs', () => {
  const withTimeouts = (timeouts: Record<string, unknown>): RawConfig => ({ routes: [{ ...route, timeouts }] });

  it('is off unless set; accepted under idleMs', () => {
    expect(parseConfig(withTimeouts({}), 'test').routes[0]!.timeouts.sseKeepAliveMs).toBeUndefined();
    expect(parseConfig(withTimeouts({ sseKeepAliveMs: 25_000 }), 'test').routes[0]!.timeouts.sseKeepAliveMs).toBe(25_000);
  });

  it.each([
    [{ sseKeepAliveMs: 0 }, /at least 100/],
    [{ sseKeepAliveMs: 50 }, /at least 100/],
    [{ sseKeepAliveMs: 1.5 }, /whole number/],
    [{ sseKeepAliveMs: '25s' }, /must be a number/],
    [{ sseKeepAliveMs: 300_000 }, /must be less than timeouts\.idleMs \(300000\)/],
    [{ idleMs: 1000, sseKeepAliveMs: 2000 }, /must be less than timeouts\.idleMs \(1000\)/],
  ])('%j is refused naming the field', (timeouts, message) => {
    const found = problems(withTimeouts(timeouts));
    expect(found).toHaveLength(1);
    expect(found[0]).toMatch(/^routes\[0\]\.timeouts\.sseKeepAliveMs: /);
    expect(found[0]).toMatch(message);
  });
});

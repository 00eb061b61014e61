import { describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadConfig, parseConfig, resolveConfigPath } from '../../../src/config/load.ts';
import { configProblems } from '../../helpers/config.ts';

const route = { name: 'api', pathPrefix: '/api', upstream: 'http://127.0.0.1:3000' };

const problems = configProblems;

describe('parseConfig defaults', () => {
  it('gives the documented defaults for an empty file', () => {
    const config = parseConfig(null, 'empty');
    expect(config.listen).toEqual({ host: '0.0.0.0', port: 8080 });
    expect(config.admin).toEqual({ host: '127.0.0.1', port: 8081, console: { enabled: true, sessionIdleMs: 900_000, sessionMaxMs: 28_800_000 } });
    expect(config.store.kind).toBe('embedded');
    expect(config.store.path).toBe('./data/keygate.db');
    expect(config.keys.prefix).toBe('kg');
    expect(config.tenants.system).toBe('system');
    expect(config.cache).toEqual({ max: 100_000, maxAgeMs: 30_000, negativeMax: 10_000, negativeMaxAgeMs: 5000 });
    expect(config.headers).toEqual({
      tenant: 'x-tenant-id', keyId: 'x-api-key-id', role: 'x-auth-role', permissions: 'x-auth-permissions', user: 'x-auth-user', client: 'x-auth-client', environment: 'x-auth-environment', webhook: 'x-webhook-verified',
    });
    expect(config.forwarded.trustClient).toBe(false);
    expect(config.routes).toEqual([]);
  });

  it('fills route defaults and drops a trailing slash from the prefix', () => {
    const config = parseConfig({ routes: [{ ...route, pathPrefix: '/api/' }] }, 'test');
    const r = config.routes[0]!;
    expect(r.pathPrefix).toBe('/api');
    expect(r.stripPrefix).toBe(false);
    expect(r.auth).toEqual({ required: true, permissions: [], tenantFromPath: false });
    expect(r.maxBodyBytes).toBe(10 * 1024 * 1024);
    expect(r.timeouts).toEqual({ connectMs: 3000, headersMs: 30_000, idleMs: 300_000 });
  });

  it('does not modify the object it was given', () => {
    const raw = { listen: { port: 1 } };
    parseConfig(raw, 'test', { KEYGATE_PORT: '9000' });
    expect(raw).toEqual({ listen: { port: 1 } });
  });
});

describe('config errors name the field', () => {
  it('refuses a non-mapping document', () => {
    expect(problems([1, 2])).toEqual(['(top level): must be a YAML mapping']);
    expect(problems('listen: 1')).toEqual(['(top level): must be a YAML mapping']);
  });

  it('refuses unknown fields, at the top and inside', () => {
    expect(problems({ listn: { port: 1 } })).toEqual(['(top level): unknown field "listn"']);
    expect(problems({ routes: [{ ...route, upstrem: 'x' }] })).toEqual(['routes[0]: unknown field "upstrem"']);
    expect(problems({ routes: [{ ...route, auth: { permisions: ['a'] } }] })).toEqual(['routes[0].auth: unknown field "permisions"']);
  });

  it('says which route field is missing', () => {
    expect(problems({ routes: [{ name: 'api', pathPrefix: '/api' }] })).toEqual(['routes[0].upstream: is required']);
  });

  it('refuses upstreams that are not plain http(s) URLs', () => {
    for (const upstream of ['ftp://x', 'not a url', 'http://x/?q=1', 'http://x/#f', '127.0.0.1:3000']) {
      const p = problems({ routes: [{ ...route, upstream }] });
      expect(p, upstream).toHaveLength(1);
      expect(p[0], upstream).toMatch(/^routes\[0\]\.upstream: must be an http\(s\) URL/);
    }
    expect(parseConfig({ routes: [{ ...route, upstream: 'https://example.com/base/' }] }, 't').routes[0]!.upstream).toBe('https://example.com/base/');
  });

  it('refuses path prefixes with dot segments, "//", or no leading "/"', () => {
    for (const pathPrefix of ['api', '/api/../admin', '/./api', '/api/..', '//api', '/a b', '/api?x', '/api%2f']) {
      const p = problems({ routes: [{ ...route, pathPrefix }] });
      expect(p.length, pathPrefix).toBeGreaterThan(0);
      expect(p.every((m) => m.startsWith('routes[0].pathPrefix: ')), pathPrefix).toBe(true);
    }
  });

  it('refuses duplicate route names and duplicate host+prefix', () => {
    expect(problems({ routes: [route, { ...route, pathPrefix: '/other' }] })).toEqual(['routes[1].name: duplicates routes[0].name "api"']);
    expect(problems({ routes: [route, { ...route, name: 'api2', pathPrefix: '/api/' }] })).toEqual(['routes[1].pathPrefix: routes[0] already serves */api']);
    // The same prefix on another host is a different route.
    expect(parseConfig({ routes: [route, { ...route, name: 'api2', host: 'a.example.com' }] }, 't').routes).toHaveLength(2);
  });

  it('refuses bad route names and hosts', () => {
    expect(problems({ routes: [{ ...route, name: 'a b' }] })[0]).toMatch(/^routes\[0\]\.name: /);
    expect(problems({ routes: [{ ...route, host: 'a.example.com:8080' }] })[0]).toMatch(/^routes\[0\]\.host: must be a host name without port/);
  });

  it('needs auth on routes that check the tenant in the path', () => {
    expect(problems({ routes: [{ ...route, auth: { required: false, tenantFromPath: true } }] })).toEqual(['routes[0].auth.tenantFromPath: needs auth.required: true']);
  });

  it('refuses unknown fields inside mcp (the rest of its checks: mcp-config.test.ts)', () => {
    expect(problems({ routes: [{ ...route, mcp: { resource: 'https://x/mcp', resourceUrl: 'x' } as never }] })).toEqual(['routes[0].mcp: unknown field "resourceUrl"']);
  });

  it('refuses an empty clients list and empty permission names', () => {
    expect(problems({ routes: [{ ...route, auth: { clients: [] } }] })[0]).toMatch(/^routes\[0\]\.auth\.clients: must list at least one client/);
    expect(problems({ routes: [{ ...route, auth: { permissions: [''] } }] })[0]).toMatch(/^routes\[0\]\.auth\.permissions\[0\]: /);
  });

  it('refuses bad numbers where they are', () => {
    expect(problems({ listen: { port: 70000 } })).toEqual(['listen.port: must be 0-65535']);
    expect(problems({ cache: { max: 0 } })).toEqual(['cache.max: must be greater than 0']);
    expect(problems({ routes: [{ ...route, maxBodyBytes: -1 }] })).toEqual(['routes[0].maxBodyBytes: must be 0 or more']);
    expect(problems({ routes: [{ ...route, timeouts: { connectMs: 0 } }] })).toEqual(['routes[0].timeouts.connectMs: must be greater than 0']);
  });

  it('does not call a value of the wrong type "required"', () => {
    // A quoted port in YAML is a common slip: the message must say what is wrong with it.
    expect(problems({ listen: { port: '8080' } })).toEqual(['listen.port: must be a port number']);
    expect(problems({ routes: [{ ...route, stripPrefix: 'yes' }] })[0]).toMatch(/^routes\[0\]\.stripPrefix: /);
    expect(problems({ routes: [{ ...route, stripPrefix: 'yes' }] })[0]).not.toMatch(/is required/);
    expect(problems({ routes: 'api' })[0]).not.toMatch(/is required/);
    expect(problems({ cache: { maxAgeMs: 1.5 } })).toEqual(['cache.maxAgeMs: must be a whole number']);
  });

  it('refuses a bad key prefix, system tenant or header name', () => {
    expect(problems({ keys: { prefix: 'KG' } })[0]).toMatch(/^keys\.prefix: /);
    expect(problems({ keys: { prefix: 'k_g' } })[0]).toMatch(/^keys\.prefix: /);
    expect(problems({ tenants: { system: 'Sys' } })[0]).toMatch(/^tenants\.system: /);
    expect(problems({ headers: { tenant: 'X-Tenant' } })).toEqual(['headers.tenant: must be a lower-case HTTP header name']);
    expect(problems({ headers: { tenant: 'x tenant' } })).toEqual(['headers.tenant: must be a lower-case HTTP header name']);
  });

  it('refuses an unknown store kind and an incomplete redis store', () => {
    expect(problems({ store: { kind: 'mysql' } })).toEqual(['store.kind: must be "embedded" or "redis"']);
    expect(problems({ store: { kind: 'redis' } })).toEqual(['store.redis: needs one of url, sentinels or cluster when kind is redis']);
    expect(problems({ store: { kind: 'redis', redis: { url: 'http://x' } } })[0]).toMatch(/^store\.redis\.url: must be a redis:\/\//);
    expect(problems({ store: { kind: 'redis', redis: { sentinels: [{ host: 'a', port: 1 }] } } })).toEqual(['store.redis.name: is required with sentinels (the master group name)']);
    expect(problems({ store: { kind: 'redis', redis: { url: 'redis://x', cluster: [{ host: 'a', port: 1 }] } } })).toEqual(['store.redis: give only one of url, sentinels or cluster']);
  });

  it('refuses the admin listener on the proxy port', () => {
    expect(problems({ listen: { host: '127.0.0.1', port: 9000 }, admin: { host: '127.0.0.1', port: 9000 } })).toEqual(['admin.port: must differ from listen.port']);
  });

  it('refuses a bad log level', () => {
    expect(problems({ log: { level: 'verbose' } })[0]).toMatch(/^log\.level: must be one of/);
  });

  it('reports every problem at once', () => {
    expect(problems({ listen: { port: -1 }, routes: [{ name: 'x', pathPrefix: 'nope', upstream: 'nope' }] })).toHaveLength(3);
  });
});

describe('environment overrides', () => {
  it('KEYGATE_PORT, KEYGATE_ADMIN_PORT and KEYGATE_LOG_LEVEL win over the file', () => {
    const config = parseConfig({ listen: { port: 1 }, admin: { port: 2 }, log: { level: 'info' } }, 't', { KEYGATE_PORT: '9100', KEYGATE_ADMIN_PORT: '9101', KEYGATE_LOG_LEVEL: 'warn' });
    expect(config.listen.port).toBe(9100);
    expect(config.admin.port).toBe(9101);
    expect(config.log.level).toBe('warn');
  });

  it('KEYGATE_REDIS_URL switches to the redis store, replacing sentinels/cluster', () => {
    const config = parseConfig({ store: { kind: 'embedded', redis: { cluster: [{ host: 'a', port: 1 }] } } }, 't', { KEYGATE_REDIS_URL: 'redis://10.0.0.5:6380' });
    expect(config.store.kind).toBe('redis');
    expect(config.store.redis.url).toBe('redis://10.0.0.5:6380');
    expect(config.store.redis.cluster).toBeUndefined();
  });

  it('names the variable when its value is bad', () => {
    expect(() => parseConfig({}, 't', { KEYGATE_PORT: '80a' })).toThrow(/KEYGATE_PORT: must be a port number, got "80a"/);
    expect(problems({}, { KEYGATE_ADMIN_PORT: '99999' })).toEqual(['admin.port: must be 0-65535']);
    expect(problems({}, { KEYGATE_LOG_LEVEL: 'loud' })[0]).toMatch(/^log\.level: /);
    expect(problems({}, { KEYGATE_REDIS_URL: 'localhost:6379' })[0]).toMatch(/^store\.redis\.url: /);
  });

  it('resolves the config path: flag, then KEYGATE_CONFIG, then the default', () => {
    expect(resolveConfigPath('a.yaml', { KEYGATE_CONFIG: 'b.yaml' })).toBe('a.yaml');
    expect(resolveConfigPath(undefined, { KEYGATE_CONFIG: 'b.yaml' })).toBe('b.yaml');
    expect(resolveConfigPath(undefined, {})).toBe('config/keygate.yaml');
  });
});

describe('loadConfig', () => {
  it('loads the example config shipped in config/keygate.yaml', () => {
    const config = loadConfig('config/keygate.yaml', {});
    expect(config.routes.map((r) => r.name)).toEqual(['echo', 'echo-tenant', 'echo-public']);
    expect(config.routes[2]!.auth.required).toBe(false);
    expect(config.permissionGroups).toEqual({ readers: ['echo:read'] });
  });

  it('names the file and the cause when it cannot be read or parsed', () => {
    const dir = mkdtempSync(join(tmpdir(), 'keygate-config-'));
    try {
      const missing = join(dir, 'missing.yaml');
      expect(() => loadConfig(missing, {})).toThrow(ConfigError);
      expect(() => loadConfig(missing, {})).toThrow(/missing\.yaml[\s\S]*cannot read the file: ENOENT/);

      const broken = join(dir, 'broken.yaml');
      writeFileSync(broken, 'routes:\n  - name: a\n   pathPrefix: /x\n');
      expect(() => loadConfig(broken, {})).toThrow(/broken\.yaml[\s\S]*YAML syntax/);

      const bad = join(dir, 'bad.yaml');
      writeFileSync(bad, 'routes:\n  - name: a\n    pathPrefix: /x\n    upstream: nope\n');
      expect(() => loadConfig(bad, {})).toThrow(/bad\.yaml[\s\S]*routes\[0\]\.upstream: must be an http\(s\) URL/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

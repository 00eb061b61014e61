import { describe, expect, it } from 'vitest';
import type { Dispatcher } from 'undici';
import { parseConfig } from '../../../src/config/load.ts';
import type { RawConfig } from '../../../src/config/schema.ts';
import { hostName, prefixMatches, Router, type DispatcherFor } from '../../../src/routing/router.ts';

/** The router only stores what dispatcherFor returns; a tagged object is enough to see which one. */
function build(routes: RawConfig['routes']) {
  const made: string[] = [];
  const dispatcherFor: DispatcherFor = (origin, config) => {
    made.push(`${origin} ${config.timeouts.connectMs}`);
    return { origin } as unknown as Dispatcher;
  };
  const config = parseConfig({ routes }, 'test');
  return { router: new Router(config.routes, dispatcherFor), made };
}

describe('prefixMatches', () => {
  it('matches whole segments only', () => {
    expect(prefixMatches('/mcp', '/mcp')).toBe(true);
    expect(prefixMatches('/mcp', '/mcp/')).toBe(true);
    expect(prefixMatches('/mcp', '/mcp/x')).toBe(true);
    expect(prefixMatches('/mcp', '/mcpx')).toBe(false);
    expect(prefixMatches('/mcp', '/mc')).toBe(false);
    expect(prefixMatches('/mcp', '/MCP/x')).toBe(false);
    expect(prefixMatches('/', '/anything')).toBe(true);
    expect(prefixMatches('/a/b', '/a/bc')).toBe(false);
    expect(prefixMatches('/a/b', '/a/b/c')).toBe(true);
  });
});

describe('hostName', () => {
  it('drops the port and lower-cases', () => {
    expect(hostName('API.Example.com:8443')).toBe('api.example.com');
    expect(hostName('api.example.com')).toBe('api.example.com');
    expect(hostName('API.example.com.:443')).toBe('api.example.com');
    expect(hostName('[::1]:8080')).toBe('[::1]');
    expect(hostName(undefined)).toBeUndefined();
  });
});

describe('Router.match', () => {
  const { router } = build([
    { name: 'root', pathPrefix: '/', upstream: 'http://127.0.0.1:1' },
    { name: 'api', pathPrefix: '/api', upstream: 'http://127.0.0.1:2' },
    { name: 'api-v2', pathPrefix: '/api/v2/', upstream: 'http://127.0.0.1:3' },
    { name: 'mcp-host', pathPrefix: '/', host: 'MCP.example.com', upstream: 'http://127.0.0.1:4' },
    { name: 'mcp-host-api', pathPrefix: '/api', host: 'mcp.example.com', upstream: 'http://127.0.0.1:5' },
  ]);
  const name = (host: string | undefined, path: string) => router.match(host, path)?.name;

  it('prefers the longest prefix', () => {
    expect(name('x', '/api/v2/tools')).toBe('api-v2');
    expect(name('x', '/api/v2')).toBe('api-v2'); // trailing '/' of the configured prefix is dropped
    expect(name('x', '/api/v3')).toBe('api');
    expect(name('x', '/api')).toBe('api');
    expect(name('x', '/apix')).toBe('root');
    expect(name(undefined, '/other')).toBe('root');
  });

  it('prefers host routes over host-less ones, matching the host without port and case', () => {
    expect(name('mcp.example.com', '/anything')).toBe('mcp-host');
    expect(name('MCP.Example.COM:8080', '/api/x')).toBe('mcp-host-api');
    expect(name('mcp.example.com', '/api/v2/x')).toBe('mcp-host-api');
    expect(name('other.example.com', '/api/v2/x')).toBe('api-v2');
    expect(name('mcp.example.com.evil', '/x')).toBe('root');
  });

  it('returns undefined when nothing matches', () => {
    const { router: r } = build([{ name: 'api', pathPrefix: '/api', upstream: 'http://127.0.0.1:2' }]);
    expect(r.match('x', '/apix')).toBeUndefined();
    expect(r.match('x', '/')).toBeUndefined();
  });

  it('creates the dispatchers once, when the table is built', () => {
    const { router: r, made } = build([
      { name: 'a', pathPrefix: '/a', upstream: 'http://127.0.0.1:2/base' },
      { name: 'b', pathPrefix: '/b', upstream: 'http://127.0.0.1:2', timeouts: { connectMs: 10 } },
    ]);
    expect(made).toEqual(['http://127.0.0.1:2 3000', 'http://127.0.0.1:2 10']);
    r.match('x', '/a');
    r.match('x', '/b');
    expect(made).toHaveLength(2);
  });
});

describe('Router.upstreamPath', () => {
  const { router } = build([
    { name: 'plain', pathPrefix: '/plain', upstream: 'http://127.0.0.1:1' },
    { name: 'strip', pathPrefix: '/strip', upstream: 'http://127.0.0.1:1', stripPrefix: true },
    { name: 'base', pathPrefix: '/base', upstream: 'http://127.0.0.1:1/svc/v1/' },
    { name: 'both', pathPrefix: '/both', upstream: 'http://127.0.0.1:1/svc', stripPrefix: true },
    { name: 'rootstrip', pathPrefix: '/', upstream: 'http://127.0.0.1:1/svc', stripPrefix: true },
  ]);
  const up = (path: string) => Router.upstreamPath(router.match('h', path)!, path);

  it('keeps the path by default', () => {
    expect(up('/plain/x/y')).toBe('/plain/x/y');
  });

  it('strips the prefix, leaving at least "/"', () => {
    expect(up('/strip/x/y')).toBe('/x/y');
    expect(up('/strip')).toBe('/');
    expect(up('/strip/')).toBe('/');
  });

  it('puts the upstream base path in front (without doubling its slash)', () => {
    expect(up('/base/x')).toBe('/svc/v1/base/x');
    expect(up('/both/x')).toBe('/svc/x');
    expect(up('/both')).toBe('/svc/');
    expect(up('/other/x')).toBe('/svc/other/x');
  });
});

import { describe, expect, it } from 'vitest';
import { normalizeTarget } from '../../../src/routing/normalize-path.ts';

const path = (url: string) => normalizeTarget(url)?.path;

/** Each target normalizes to the path it maps to. */
function expectPaths(cases: Record<string, string>): void {
  for (const [target, want] of Object.entries(cases)) expect(path(target), target).toBe(want);
}

describe('normalizeTarget', () => {
  it('leaves ordinary paths and their query alone', () => {
    expect(normalizeTarget('/mcp/tools/list')).toEqual({ path: '/mcp/tools/list', query: '' });
    expect(normalizeTarget('/mcp?x=1&y=%2F..%2f')).toEqual({ path: '/mcp', query: '?x=1&y=%2F..%2f' });
    expect(normalizeTarget('/')).toEqual({ path: '/', query: '' });
    expect(normalizeTarget('/a/b/')).toEqual({ path: '/a/b/', query: '' });
  });

  it('resolves dot segments, plain and percent-encoded, in any case', () => {
    expectPaths({
      '/mcp/../admin': '/admin',
      '/mcp/%2e%2e/admin': '/admin',
      '/mcp/%2E%2E/admin': '/admin',
      '/mcp/.%2e/admin': '/admin',
      '/mcp/%2e./admin': '/admin',
      '/mcp/./x/%2e/y': '/mcp/x/y',
      '/mcp/a/b/../../../../admin': '/admin',
      '/..': '/',
      '/../../etc/passwd': '/etc/passwd',
    });
  });

  it('keeps a trailing slash left by a final dot segment', () => {
    expectPaths({
      '/mcp/x/..': '/mcp/',
      '/mcp/x/.': '/mcp/x/',
      '/mcp/.': '/mcp/',
    });
  });

  it('collapses empty segments', () => {
    expectPaths({
      '//admin': '/admin',
      '/mcp//x///y': '/mcp/x/y',
      '///': '/',
    });
  });

  it('refuses an encoded slash, backslash or NUL anywhere in the path', () => {
    for (const bad of ['/mcp%2fadmin', '/mcp/..%2fadmin', '/mcp/%2e%2e%2Fadmin', '/mcp/%5c..%5cadmin', '/mcp\\..\\admin', '/mcp/%00/x', '/mcp/%2F']) {
      expect(normalizeTarget(bad), bad).toBeNull();
    }
  });

  it('refuses dot segments carrying a ";" parameter, which servlet containers read as ".."', () => {
    expect(normalizeTarget('/public/x/..;/admin')).toBeNull();
    expect(normalizeTarget('/public/.;x/admin')).toBeNull();
    expect(normalizeTarget('/public/%2e%2e;/admin')).toBeNull();
    expect(normalizeTarget('/public/a;b/c')).toEqual({ path: '/public/a;b/c', query: '' });
  });

  it('refuses broken percent-encodings', () => {
    expect(normalizeTarget('/mcp/%zz')).toBeNull();
    expect(normalizeTarget('/mcp/%2')).toBeNull();
    expect(normalizeTarget('/mcp/%')).toBeNull();
  });

  it('decodes unreserved characters so an encoded prefix matches the route it spells', () => {
    expectPaths({
      '/%6dcp/x': '/mcp/x',
      '/mcp/%7Euser': '/mcp/~user',
    });
  });

  it('does not double-decode and keeps reserved encodings upper-cased', () => {
    // %2541 is "%41" literally, not "A".
    expectPaths({
      '/mcp/%2541dmin': '/mcp/%2541dmin',
      '/mcp/a%3fb': '/mcp/a%3Fb',
      '/mcp/a%20b': '/mcp/a%20b',
    });
  });

  it('does not treat an encoded "?" or "#" as the end of the path', () => {
    expect(normalizeTarget('/mcp/%3f/../x')).toEqual({ path: '/mcp/x', query: '' });
  });

  it('refuses a double-encoded dot, separator, NUL or "%": an upstream that decodes twice would see them', () => {
    for (const target of ['/mcp/%252e%252e/admin', '/mcp/%252E./admin', '/mcp/%252fadmin', '/mcp/%255cadmin', '/mcp/%2500', '/mcp/%25252e']) {
      expect(normalizeTarget(target), target).toBeNull();
    }
  });

  it('drops a fragment from the path', () => {
    expect(path('/mcp/x#/../../admin')).toBe('/mcp/x');
  });

  it('takes path, query and authority of an absolute-form target', () => {
    expect(normalizeTarget('http://example.com/mcp/../admin?q=1')).toEqual({ path: '/admin', query: '?q=1', authority: 'example.com' });
    expect(normalizeTarget('HTTPS://example.com')).toEqual({ path: '/', query: '', authority: 'example.com' });
    expect(normalizeTarget('http://example.com:8080?q=1')).toEqual({ path: '/', query: '?q=1', authority: 'example.com:8080' });
    expect(normalizeTarget('http://[::1]:80/x')).toEqual({ path: '/x', query: '', authority: '[::1]:80' });
  });

  it('refuses an absolute-form target with userinfo, an empty or a malformed authority', () => {
    for (const target of ['http://user:pw@example.com/x', 'http:///x', 'http://exa mple.com/x', 'http://example.com:80:80/x', 'http://example.com\\@evil/x']) {
      expect(normalizeTarget(target), target).toBeNull();
    }
  });

  it('refuses targets that are neither origin- nor absolute-form', () => {
    expect(normalizeTarget('*')).toBeNull();
    expect(normalizeTarget('example.com:443')).toBeNull();
    expect(normalizeTarget('ftp://example.com/x')).toBeNull();
  });
});

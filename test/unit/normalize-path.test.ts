import { describe, expect, it } from 'vitest';
import { normalizeTarget } from '../../src/routing/normalize-path.ts';

const path = (url: string) => normalizeTarget(url)?.path;

describe('normalizeTarget', () => {
  it('leaves ordinary paths and their query alone', () => {
    expect(normalizeTarget('/mcp/tools/list')).toEqual({ path: '/mcp/tools/list', query: '' });
    expect(normalizeTarget('/mcp?x=1&y=%2F..%2f')).toEqual({ path: '/mcp', query: '?x=1&y=%2F..%2f' });
    expect(normalizeTarget('/')).toEqual({ path: '/', query: '' });
    expect(normalizeTarget('/a/b/')).toEqual({ path: '/a/b/', query: '' });
  });

  it('resolves dot segments, plain and percent-encoded, in any case', () => {
    expect(path('/mcp/../admin')).toBe('/admin');
    expect(path('/mcp/%2e%2e/admin')).toBe('/admin');
    expect(path('/mcp/%2E%2E/admin')).toBe('/admin');
    expect(path('/mcp/.%2e/admin')).toBe('/admin');
    expect(path('/mcp/%2e./admin')).toBe('/admin');
    expect(path('/mcp/./x/%2e/y')).toBe('/mcp/x/y');
    expect(path('/mcp/a/b/../../../../admin')).toBe('/admin');
    expect(path('/..')).toBe('/');
    expect(path('/../../etc/passwd')).toBe('/etc/passwd');
  });

  it('keeps a trailing slash left by a final dot segment', () => {
    expect(path('/mcp/x/..')).toBe('/mcp/');
    expect(path('/mcp/x/.')).toBe('/mcp/x/');
    expect(path('/mcp/.')).toBe('/mcp/');
  });

  it('collapses empty segments', () => {
    expect(path('//admin')).toBe('/admin');
    expect(path('/mcp//x///y')).toBe('/mcp/x/y');
    expect(path('///')).toBe('/');
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
    expect(path('/%6dcp/x')).toBe('/mcp/x');
    expect(path('/mcp/%7Euser')).toBe('/mcp/~user');
  });

  it('does not double-decode and keeps reserved encodings upper-cased', () => {
    // %2541 is "%41" literally, not "A".
    expect(path('/mcp/%2541dmin')).toBe('/mcp/%2541dmin');
    expect(path('/mcp/a%3fb')).toBe('/mcp/a%3Fb');
    expect(path('/mcp/a%20b')).toBe('/mcp/a%20b');
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

import type { IncomingMessage } from 'node:http';
import type { Dispatcher } from 'undici';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/load.ts';
import { normalizeTarget } from '../../../src/routing/normalize-path.ts';
import { requestHost } from '../../../src/routing/request-host.ts';
import { misleadingPath } from '../../../src/routing/route-ambiguity.ts';
import { Router } from '../../../src/routing/router.ts';

const config = parseConfig(
  {
    routes: [
      { name: 'site', pathPrefix: '/', upstream: 'http://127.0.0.1:1', auth: { required: false } },
      { name: 'admin', pathPrefix: '/admin', upstream: 'http://127.0.0.1:1' },
      { name: 'docs', pathPrefix: '/Docs', upstream: 'http://127.0.0.1:1' },
    ],
  },
  'test',
);
const router = new Router(config.routes, () => ({}) as Dispatcher);
const misleading = (path: string) => misleadingPath(router, 'gw', path, router.match('gw', path)!);

describe('misleadingPath', () => {
  it('is true when a ;-parameter-free or case-folded reading selects another route', () => {
    for (const path of ['/admin;x=1/users', '/admin;/users', '/;x/admin', '/ADMIN', '/Admin/users', '/aDmIn;v=1', '/admin%3Bx/y', '/docs/x']) expect(misleading(path), path).toBe(true);
  });

  it('is false when no reading changes the route', () => {
    for (const path of ['/page.jsp;jsessionid=ABC', '/admin/users;v=2', '/Admin2', '/about/Admin', '/admin/Users', '/Docs/x', '/x;y/z']) expect(misleading(path), path).toBe(false);
  });
});

describe('requestHost', () => {
  const req = (rawHeaders: string[], httpVersion = '1.1') => {
    const headers: Record<string, string> = {};
    for (let i = 0; i < rawHeaders.length; i += 2) headers[rawHeaders[i]!.toLowerCase()] ??= rawHeaders[i + 1]!;
    const [major, minor] = httpVersion.split('.').map(Number);
    return { rawHeaders, headers, httpVersionMajor: major, httpVersionMinor: minor } as unknown as IncomingMessage;
  };
  const plain = normalizeTarget('/x')!;

  it('is the one Host header, if it is valid', () => {
    expect(requestHost(req(['Host', 'gw.example:8080']), plain)).toBe('gw.example:8080');
    expect(requestHost(req(['Host', '[::1]:80']), plain)).toBe('[::1]:80');
    for (const bad of ['gw/x', 'user@gw', 'gw example', 'gw:80:80', 'gw\\x']) expect(requestHost(req(['Host', bad]), plain), bad).toBeNull();
  });

  it('refuses two Host headers, HTTP/1.1 without one, and HTTP/0.9; HTTP/1.0 may have none', () => {
    expect(requestHost(req(['Host', 'a', 'host', 'a']), plain)).toBeNull();
    expect(requestHost(req([]), plain)).toBeNull();
    expect(requestHost(req([], '0.9'), plain)).toBeNull();
    expect(requestHost(req([], '1.0'), plain)).toBeUndefined();
  });

  it('takes an absolute-form authority over Host, and makes it the Host', () => {
    const r = req(['Host', 'public.example']);
    expect(requestHost(r, normalizeTarget('http://admin.example/x')!)).toBe('admin.example');
    expect(r.headers.host).toBe('admin.example');
  });
});

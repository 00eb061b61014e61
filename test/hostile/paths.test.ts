/**
 * Attacks on the front door, part 4: path tricks against route boundaries. One upstream
 * sits behind a public catch-all route `/`, a route `/api` for any key and a route `/admin`
 * for the `admin` permission — the layout where a confusion between keygate's reading of a
 * path and the upstream's is a bypass. Thousands of generated paths (fast-check) mix `..`,
 * `%2e%2e`, `%2f`, `%5c`, `\`, `//`, `;params`, mixed case, double encoding, NUL, and
 * absolute-form targets with a Host that differs from the URI; each is sent with no key and
 * with a key that lacks `admin`.
 *
 * Whatever keygate lets through, the path the upstream receives is read the ways real
 * servers read paths — as is; percent-decoded with dot segments resolved (RFC 3986);
 * servlet-style, without `;` parameters; case-insensitively (IIS, Windows file systems);
 * with `\` as `/` — and no reading may land under a prefix the request was not authorised
 * for. keygate never answers 5xx.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startUpstream, type TestUpstream } from '../helpers/upstream.ts';
import { startHostileKeygate, type HostileKeygate } from './helpers/capture.ts';
import { RawConnection, rawSocket } from '../helpers/raw-socket.ts';

let upstream: TestUpstream;
let kg: HostileKeygate;
let reader: string;
let admin: string;
const tally = { sent: 0, forwarded: 0, refused: new Map<number, number>() };

beforeAll(async () => {
  upstream = await startUpstream();
  kg = await startHostileKeygate('paths', {
    limits: { failedAuth: { max: 0 } },
    routes: [
      { name: 'site', pathPrefix: '/', upstream: upstream.url, auth: { required: false } },
      { name: 'api', pathPrefix: '/api', upstream: upstream.url },
      { name: 'admin', pathPrefix: '/admin', upstream: upstream.url, auth: { permissions: ['admin'] } },
      { name: 'admin-host', pathPrefix: '/', host: 'admin.example.com', upstream: upstream.url, auth: { permissions: ['admin'] } },
    ],
  });
  reader = (await kg.keys.create({ tenant: 'acme', name: 'reader', permissions: ['read'] })).key;
  admin = (await kg.keys.create({ tenant: 'acme', name: 'admin', permissions: ['admin'] })).key;
});

afterAll(async () => {
  await kg?.stop();
  await upstream?.close();
  console.log(`[hostile paths] ${tally.sent} requests: ${tally.forwarded} forwarded, refused ${JSON.stringify(Object.fromEntries(tally.refused))}`);
});

/** RFC 3986 §5.2.4. */
function removeDots(path: string): string {
  const out: string[] = [];
  for (const segment of path.split('/').slice(1)) {
    if (segment === '..') out.pop();
    else if (segment !== '.') out.push(segment);
  }
  return `/${out.join('/')}`;
}

function decode(path: string): string {
  try {
    return decodeURIComponent(path);
  } catch {
    return path;
  }
}

/** How real servers may read the path they were sent. */
function readings(url: string): string[] {
  const path = url.split('?')[0]!;
  const noParams = path.replace(/;[^/]*/g, '');
  const variants = [path, removeDots(decode(path)), removeDots(decode(noParams)), removeDots(decode(path).replaceAll('\\', '/')), removeDots(decode(decode(path)))];
  return [...variants, ...variants.map((v) => v.toLowerCase())].map((v) => v.replace(/\/+/g, '/'));
}

const under = (path: string, prefix: string) => path === prefix || path.startsWith(`${prefix}/`);

/** Segments keygate may route (weighted up, so that many paths get through) and ones it must refuse. */
const ROUTABLE = ['admin', 'ADMIN', 'Admin', 'aDmIn', 'api', 'API', 'x', 'public', '..', '.', '%2e%2e', '%2E%2e', '.%2e', '%2e', '', ';x=1', 'admin;x=1', 'admin;', 'adm%69n', '%61dmin', 'api;jsessionid=1', 'admin%3bx', 'admin.', 'admin%20'];
const REFUSED = ['%2f', '%2F', '%5c', '\\', '..;', 'admin%00', '%252e%252e', '%252f', 'admin%2f'];
const path = fc
  .array(fc.oneof({ weight: 5, arbitrary: fc.constantFrom(...ROUTABLE) }, { weight: 1, arbitrary: fc.constantFrom(...REFUSED) }), { minLength: 1, maxLength: 6 })
  .chain((segments) => fc.tuple(fc.constant(segments), fc.array(fc.constantFrom('/', '/', '/', '//'), { minLength: segments.length, maxLength: segments.length })))
  .map(([segments, separators]) => segments.map((s, i) => separators[i] + s).join(''))
  .filter((p) => p.startsWith('/'));

describe('path tricks against route boundaries', () => {
  it('no generated path reaches the upstream under a prefix the request was not authorised for', async () => {
    const connection = new RawConnection(kg.url);
    const failures: string[] = [];
    await fc.assert(
      fc.asyncProperty(path, fc.constantFrom('none', 'reader'), fc.boolean(), async (target, who, query) => {
        const full = query ? `${target}?next=/admin/x` : target;
        const headers = `Host: gw.example\r\n${who === 'reader' ? `X-Api-Key: ${reader}\r\n` : ''}`;
        const before = upstream.received.length;
        const { response } = await connection.request(`GET ${full} HTTP/1.1\r\n${headers}\r\n`);
        const status = response?.status ?? 0;
        tally.sent++;
        if (status >= 500 || status === 0) failures.push(`${full} (${who}): ${status}`);
        if (upstream.received.length === before) {
          tally.refused.set(status, (tally.refused.get(status) ?? 0) + 1);
          return;
        }
        tally.forwarded++;
        const got = upstream.received.at(-1)!;
        const forbidden = who === 'none' ? ['/admin', '/api'] : ['/admin'];
        for (const reading of readings(got.url)) {
          for (const prefix of forbidden) if (under(reading, prefix)) failures.push(`${full} (${who}) reached the upstream as ${got.url}, read as ${reading}`);
        }
        if (who === 'reader' && got.headers['x-auth-permissions'] !== undefined) expect(got.headers['x-auth-permissions']).toBe('read');
      }),
      { numRuns: 3000 },
    );
    connection.close();
    expect(failures.slice(0, 20)).toEqual([]);
  }, 120_000);

  it.each([
    ['/admin;x=1/users', 'servlet path parameter in the protected segment'],
    ['/admin;/users', 'empty path parameter'],
    ['/ADMIN/users', 'upper case'],
    ['/Admin/users', 'mixed case'],
    ['/api;jsessionid=1/../admin/users', 'parameter then dot segment'],
    ['/x/..;/admin', 'dot segment with a parameter'],
  ])('%s (%s) is refused without forwarding, for a key without admin', async (target) => {
    const before = upstream.received.length;
    const res = await rawSocket(kg.url, `GET ${target} HTTP/1.1\r\nHost: gw.example\r\nX-Api-Key: ${reader}\r\nConnection: close\r\n\r\n`);
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
    expect(upstream.received.length).toBe(before);
  });

  it('a path parameter at the end of a path (jsessionid) and upper case away from route boundaries still pass', async () => {
    for (const target of ['/page.jsp;jsessionid=ABC', '/api/items;v=2', '/Docs/README.md', '/api/Items/ABC']) {
      const res = await rawSocket(kg.url, `GET ${target} HTTP/1.1\r\nHost: gw.example\r\nX-Api-Key: ${reader}\r\nConnection: close\r\n\r\n`);
      expect(res.status, target).toBe(200);
      expect(JSON.parse(res.body).url).toBe(target);
    }
  });
});

describe('absolute-form targets', () => {
  it('are routed by the URI\'s authority, which replaces Host (RFC 9112 §3.2.2), for routing and X-Forwarded-Host alike', async () => {
    const send = (target: string, host: string, key: string) =>
      rawSocket(kg.url, `GET ${target} HTTP/1.1\r\nHost: ${host}\r\nX-Api-Key: ${key}\r\nConnection: close\r\n\r\n`);
    let before = upstream.received.length;
    // The URI names the admin host; Host names the public site.
    const denied = await send('http://admin.example.com/x', 'gw.example', reader);
    expect(denied.status).toBe(403);
    expect(upstream.received.length).toBe(before);
    // And the other way round: the admin host in Host, the public site in the URI.
    const site = await send('http://gw.example/x', 'admin.example.com', reader);
    expect(site.status).toBe(200);
    // Not Host's admin.example.com; and gw.example is not a configured host (routes[].host,
    // mcp.resource), so no X-Forwarded-Host at all (request-host.ts forwardedHost).
    expect(upstream.received.at(-1)!.headers['x-forwarded-host']).toBeUndefined();
    before = upstream.received.length;
    const allowed = await send('http://admin.example.com/x', 'gw.example', admin);
    expect(allowed.status).toBe(200);
    expect(upstream.received.length).toBe(before + 1);
    expect(upstream.received.at(-1)!.headers['x-forwarded-host']).toBe('admin.example.com');
  });

  it('with userinfo, an empty or a malformed authority, are refused', async () => {
    for (const target of ['http://user:pw@admin.example.com/x', 'http:///admin/x', 'http://admin.example.com:80:80/x', 'http://gw.example\\@admin.example.com/x']) {
      const before = upstream.received.length;
      const res = await rawSocket(kg.url, `GET ${target} HTTP/1.1\r\nHost: gw.example\r\nX-Api-Key: ${admin}\r\nConnection: close\r\n\r\n`);
      expect(res.status, target).toBe(400);
      expect(upstream.received.length).toBe(before);
    }
  });
});

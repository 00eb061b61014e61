/**
 * Attacks on the front door, part 5: brute force. Failed authentications are limited per
 * client address (limits.failedAuth): over the limit, every request with a key from that
 * address is answered 429 rate_limited with an exact Retry-After, before any lookup — a
 * blocked flood costs the store nothing — while other addresses, successful requests and
 * requests without a key are not affected. Clients come from distinct loopback addresses
 * (127.0.0.2, 127.0.0.3, …), or, behind a trusted balancer, from X-Forwarded-For.
 */
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKey } from '../../src/keys/format.ts';
import { shiftedService } from '../helpers/admin.ts';
import { accessLines, waitFor } from '../helpers/http.ts';
import { createKeyHasher } from '../../src/keys/hash.ts';
import { cliKeys, TEST_PEPPER } from '../helpers/keygate.ts';
import { startUpstream, type TestUpstream } from '../helpers/upstream.ts';
import { startHostileKeygate, type HostileKeygate } from './helpers/capture.ts';
import { RawConnection } from './helpers/raw-http.ts';

const MAX = 5;
const WINDOW_MS = 10_000;
/** One failure is forgiven every WINDOW_MS / MAX. */
const INTERVAL_MS = WINDOW_MS / MAX;

let upstream: TestUpstream;
let kg: HostileKeygate;
let valid: string;
let nextAddress = 2;
const counts = { requests: 0, blocked: 0 };

/** A client on its own loopback address. */
function client(base = kg.url, address = `127.0.0.${nextAddress++}`): { address: string; send(key?: string, headers?: string, path?: string, method?: string): Promise<{ status: number; headers: Record<string, string>; body: string }>; close(): void } {
  const connection = new RawConnection(base, { localAddress: address });
  return {
    address,
    async send(key, headers = '', path = '/api/x', method = 'GET') {
      counts.requests++;
      const { response } = await connection.request(`${method} ${path} HTTP/1.1\r\nHost: gw\r\n${key === undefined ? '' : `X-Api-Key: ${key}\r\n`}${headers}\r\n`);
      if (response === null) throw new Error('no response');
      if (response.status === 429) counts.blocked++;
      return response;
    },
    close: () => connection.close(),
  };
}

const lookups = () => kg.keygate.verifier.stats.storeCalls;

beforeAll(async () => {
  upstream = await startUpstream();
  kg = await startHostileKeygate('brute-force', {
    limits: { failedAuth: { max: MAX, windowMs: WINDOW_MS } },
    routes: [
      { name: 'api', pathPrefix: '/api', upstream: upstream.url },
      { name: 'perm', pathPrefix: '/perm', upstream: upstream.url, auth: { permissions: ['not-granted'] } },
    ],
  });
  valid = (await kg.keys.create({ tenant: 'acme', name: 'valid' })).key;
});

afterAll(async () => {
  await kg?.stop();
  await upstream?.close();
  console.log(`[hostile brute force] ${counts.requests} requests, ${counts.blocked} answered 429`);
});

describe('failed authentications per client address', () => {
  it(`after ${MAX} failures an address gets 429 with Retry-After for any key, with no store lookup; other addresses are not affected`, async () => {
    const attacker = client();
    for (let i = 0; i < MAX; i++) expect((await attacker.send(generateKey('kg', 'acme'))).status).toBe(401);
    const before = lookups();
    const upstreamBefore = upstream.received.length;
    for (let i = 0; i < 300; i++) {
      const res = await attacker.send(generateKey('kg', 'acme'));
      expect(res.status).toBe(429);
      expect(res.headers['content-type']).toBe('application/problem+json');
      expect(JSON.parse(res.body)).toMatchObject({ status: 429, code: 'rate_limited' });
      expect(Number(res.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    }
    // Blocked means blocked: a valid key from there is refused too (see failure-limiter.ts).
    expect((await attacker.send(valid)).status).toBe(429);
    expect(lookups()).toBe(before);
    expect(upstream.received.length).toBe(upstreamBefore);
    const bystander = client();
    expect((await bystander.send(valid)).status).toBe(200);
    expect((await bystander.send(generateKey('kg', 'acme'))).status).toBe(401);
    attacker.close();
    bystander.close();
  });

  it('the admin listener limits its own failures the same way, for the API and the console sign-in alike', async () => {
    const root = (await kg.keys.create({ tenant: 'system', role: 'admin', name: 'root' })).key;
    const admin = client(kg.adminUrl);
    const loginFailures = async () => (await kg.keygate.store.listAudit({ limit: 500 })).entries.filter((e) => e.action === 'admin.login_failed').length;
    const auditedBefore = await loginFailures();
    for (let i = 0; i < MAX; i++) expect((await admin.send(generateKey('kg', 'system'), '', '/v1/keys')).status).toBe(401);
    const before = lookups();
    for (let i = 0; i < 50; i++) {
      const res = await admin.send(generateKey('kg', 'system'), '', '/v1/keys');
      expect(res.status).toBe(429);
      expect(JSON.parse(res.body)).toMatchObject({ status: 429, code: 'rate_limited' });
      expect(Number(res.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    }
    // The root key too, and the console's sign-in, which takes the same key.
    expect((await admin.send(root, '', '/v1/keys')).status).toBe(429);
    const signIn = await admin.send(root, 'Origin: http://gw\r\nContent-Length: 0\r\n', '/console/api/session', 'POST');
    expect(signIn.status, signIn.body).toBe(429);
    expect(signIn.headers['set-cookie']).toBeUndefined();
    // No lookup, and no audit entry, for what was blocked.
    expect(lookups()).toBe(before);
    expect(await loginFailures()).toBe(auditedBefore + MAX);
    // Its own count: the same address is not blocked on the proxy, nor another on the admin listener.
    const sameAddressOnProxy = client(kg.url, admin.address);
    expect((await sameAddressOnProxy.send(valid)).status).toBe(200);
    const otherAdmin = client(kg.adminUrl);
    expect((await otherAdmin.send(root, '', '/v1/keys')).status).toBe(200);
    for (const c of [admin, sameAddressOnProxy, otherAdmin]) c.close();
  });

  it('the block ends when Retry-After says, and one failure later it is back', async () => {
    const attacker = client();
    for (let i = 0; i < MAX; i++) await attacker.send('kg_acme_bad');
    const blocked = await attacker.send(valid);
    const blockedAt = performance.now();
    expect(blocked.status).toBe(429);
    const retryAfter = Number(blocked.headers['retry-after']);
    expect(retryAfter).toBe(Math.ceil(INTERVAL_MS / 1000));
    // Requests while blocked are not counted: polling does not extend the block.
    let answer = blocked;
    while (answer.status === 429) answer = await attacker.send(valid);
    const waited = performance.now() - blockedAt;
    expect(answer.status).toBe(200);
    console.log(`[hostile brute force] unblocked after ${waited.toFixed(0)} ms (one failure is forgiven every ${INTERVAL_MS} ms; Retry-After said ${retryAfter} s)`);
    expect(waited).toBeGreaterThan(INTERVAL_MS * 0.5);
    expect(waited).toBeLessThanOrEqual(retryAfter * 1000 + 500);
    expect((await attacker.send('kg_acme_bad')).status).toBe(401);
    expect((await attacker.send(valid)).status).toBe(429);
    attacker.close();
  });

  it('Retry-After is exact in whole seconds for a long window', async () => {
    const slow = await startHostileKeygate('brute-force-slow', { limits: { failedAuth: { max: 3, windowMs: 60_000 } }, routes: [{ name: 'api', pathPrefix: '/api', upstream: upstream.url }] });
    try {
      const attacker = client(slow.url);
      for (let i = 0; i < 3; i++) expect((await attacker.send('kg_acme_bad')).status).toBe(401);
      const res = await attacker.send('kg_acme_bad');
      expect(res.status).toBe(429);
      // One failure is forgiven every 20 s; the first was a moment ago.
      expect([19, 20]).toContain(Number(res.headers['retry-after']));
      attacker.close();
    } finally {
      await slow.stop();
    }
  });

  it('counts malformed, unknown, revoked and expired keys; not successes, not missing keys, not 403s', async () => {
    const { key: revoked, record } = await kg.keys.create({ tenant: 'acme', name: 'revoked' });
    await kg.keys.revoke(record.id);
    const { key: expired } = await cliKeys(shiftedService(kg, -40 * 86_400_000)).create({ tenant: 'acme', name: 'expired', expires: '30d' });
    kg.remember({ kind: 'key', value: expired });
    kg.remember({ kind: 'hash', value: createKeyHasher(TEST_PEPPER)(expired) });
    const mixed = client();
    for (let i = 0; i < 200; i++) expect((await mixed.send(valid)).status).toBe(200);
    for (let i = 0; i < 200; i++) expect((await mixed.send()).status).toBe(401);
    for (let i = 0; i < 200; i++) expect((await mixed.send(valid, '', '/perm/x')).status).toBe(403);
    const failures = [revoked, expired, 'kg_acme_malformed', generateKey('kg', 'acme'), revoked];
    for (const key of failures) expect((await mixed.send(key)).status).toBe(401);
    expect((await mixed.send(valid)).status).toBe(429);
    mixed.close();
  });

  it('a concurrent flood costs at most max + the requests already in flight in store lookups', async () => {
    const before = lookups();
    const connections = Array.from({ length: 20 }, () => new RawConnection(kg.url, { localAddress: '127.0.1.1' }));
    const statuses = new Map<number, number>();
    await Promise.all(
      connections.map(async (connection) => {
        for (let i = 0; i < 100; i++) {
          const { response } = await connection.request(`GET /api/x HTTP/1.1\r\nHost: gw\r\nX-Api-Key: ${generateKey('kg', 'acme')}\r\n\r\n`);
          statuses.set(response!.status, (statuses.get(response!.status) ?? 0) + 1);
        }
        connection.close();
      }),
    );
    counts.requests += 2000;
    counts.blocked += statuses.get(429) ?? 0;
    const spent = lookups() - before;
    console.log(`[hostile brute force] flood of 2000 unknown keys on 20 connections: ${JSON.stringify(Object.fromEntries(statuses))}, ${spent} store lookups`);
    expect(spent).toBeLessThanOrEqual(MAX + connections.length);
    expect(statuses.get(429)).toBeGreaterThanOrEqual(2000 - MAX - connections.length);
  });

  it('the access log and /metrics show the 429s as outcome "limited"', async () => {
    await waitFor(() => accessLines(kg.logs()).some((l) => l.outcome === 'limited' && l.status === 429 && l.code === 'rate_limited'), 2000);
    const metrics = await (await fetch(`${kg.adminUrl}/metrics`)).text();
    expect(metrics).toMatch(/keygate_requests_total\{route="api",status_class="4xx",outcome="limited"\} [1-9]/);
  });
});

describe('behind a trusted load balancer (forwarded.trustClient)', () => {
  it('the client is the right-most X-Forwarded-For entry; entries the client wrote to its left change nothing', async () => {
    const lb = await startHostileKeygate('brute-force-lb', {
      forwarded: { trustClient: true },
      limits: { failedAuth: { max: 3, windowMs: 60_000, addresses: 50 } },
      routes: [{ name: 'api', pathPrefix: '/api', upstream: upstream.url }],
    });
    try {
      const { key } = await lb.keys.create({ tenant: 'acme', name: 'lb' });
      const balancer = client(lb.url);
      const as = (xff: string, k: string) => balancer.send(k, `X-Forwarded-For: ${xff}\r\n`);
      for (let i = 0; i < 3; i++) expect((await as(`192.0.2.${i}, 203.0.113.9`, 'kg_acme_bad')).status).toBe(401);
      // Blocked as 203.0.113.9, whatever it writes in front of itself.
      expect((await as('203.0.113.9', key)).status).toBe(429);
      expect((await as('198.51.100.1, 203.0.113.9', key)).status).toBe(429);
      // The addresses to its left were never the client.
      expect((await as('192.0.2.0', key)).status).toBe(200);
      // The balancer itself (no X-Forwarded-For) is another client.
      expect((await balancer.send(key)).status).toBe(200);
      // IPv6 clients count per /64.
      for (let i = 0; i < 3; i++) expect((await as(`2001:db8:1:2::${i + 1}`, 'kg_acme_bad')).status).toBe(401);
      expect((await as('2001:db8:1:2:ffff::9', key)).status).toBe(429);
      expect((await as('2001:db8:1:3::1', key)).status).toBe(200);
      // A flood of distinct sources is remembered in a bounded LRU: 2000 addresses, 50 entries.
      for (let i = 0; i < 2000; i++) await as(`10.${(i >> 8) & 255}.${i & 255}.1`, 'kg_acme_bad');
      // …so the first blocked address has been forgotten: memory stays bounded, the price is that.
      expect((await as('203.0.113.9', key)).status).toBe(200);
      balancer.close();
    } finally {
      await lb.stop();
    }
  });

  it('without trustClient, X-Forwarded-For is ignored: the socket address is the client', async () => {
    const attacker = client();
    for (let i = 0; i < MAX; i++) await attacker.send('kg_acme_bad', `X-Forwarded-For: 192.0.2.${i}\r\n`);
    expect((await attacker.send(valid, 'X-Forwarded-For: 192.0.2.200\r\n')).status).toBe(429);
    attacker.close();
  });
});

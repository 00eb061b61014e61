/**
 * Attacks on the front door, part 5: brute force. Unknown keys are limited per client
 * address and in total (limits.failedAuth): over the limit, a key this keygate has never
 * seen is answered 429 rate_limited with an exact Retry-After, before any lookup — a blocked
 * flood costs the store nothing — while keys that work are still served from that very
 * address (shared egress: many tenants behind one platform's address). Revoked, expired and
 * malformed keys cost no lookup and are not counted. Clients come from distinct loopback
 * addresses (127.0.0.2, 127.0.0.3, …), or, behind a trusted balancer, from X-Forwarded-For.
 */
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKey } from '../../src/keys/format.ts';
import { shiftedService } from '../helpers/admin.ts';
import { accessLines, waitFor } from '../helpers/http.ts';
import { typo } from '../helpers/typo.ts';
import { cliKeys } from '../helpers/keygate.ts';
import { startUpstream, type TestUpstream } from '../helpers/upstream.ts';
import { startHostileKeygate, type HostileKeygate } from './helpers/capture.ts';
import { RawConnection } from '../helpers/raw-socket.ts';
import { testHasher } from '../helpers/pepper.ts';

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
      // The admin listener answers only its own Host names (admin.hosts).
      const host = base === kg.adminUrl ? new URL(base).host : 'gw';
      const { response } = await connection.request(`${method} ${path} HTTP/1.1\r\nHost: ${host}\r\n${key === undefined ? '' : `X-Api-Key: ${key}\r\n`}${headers}\r\n`);
      if (response === null) throw new Error('no response');
      if (response.status === 429) counts.blocked++;
      return response;
    },
    close: () => connection.close(),
  };
}

const lookups = () => kg.keygate.verifier.stats.storeCalls;
const madeUp = () => generateKey('kg', 'acme');

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
  it(`after ${MAX} unknown keys an address gets 429 with Retry-After for unknown keys, with no store lookup; keys that work are served; other addresses are not affected`, async () => {
    const attacker = client();
    const bystander = client();
    expect((await bystander.send(valid)).status).toBe(200);
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
    expect(lookups()).toBe(before);
    expect(upstream.received.length).toBe(upstreamBefore);
    // A key that works is no guess: served from the blocked address, from the cache.
    expect((await attacker.send(valid)).status).toBe(200);
    expect(lookups()).toBe(before);
    // A real key this keygate has never seen is not told apart from a made-up one without a lookup: 429.
    const { key: unseen } = await kg.keys.create({ tenant: 'acme', name: 'unseen' });
    expect((await attacker.send(unseen)).status).toBe(429);
    expect(lookups()).toBe(before);
    expect((await bystander.send(valid)).status).toBe(200);
    expect((await bystander.send(generateKey('kg', 'acme'))).status).toBe(401);
    attacker.close();
    bystander.close();
  });

  it('the admin listener limits its own failures the same way, for the API and the console sign-in alike', async () => {
    const root = (await kg.keys.create({ tenant: 'system', role: 'admin', name: 'root' })).key;
    const unseenRoot = (await kg.keys.create({ tenant: 'system', role: 'admin', name: 'root-unseen' })).key;
    const admin = client(kg.adminUrl);
    expect((await client(kg.adminUrl).send(root, '', '/v1/keys')).status).toBe(200);
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
    // An admin key never seen here: 429, for the API and the console's sign-in alike.
    expect((await admin.send(unseenRoot, '', '/v1/keys')).status).toBe(429);
    const refused = await admin.send(unseenRoot, `Origin: ${kg.adminUrl}\r\nContent-Length: 0\r\n`, '/console/api/session', 'POST');
    expect(refused.status, refused.body).toBe(429);
    expect(refused.headers['set-cookie']).toBeUndefined();
    // No lookup, and no audit entry, for what was blocked.
    expect(lookups()).toBe(before);
    // The root key, which works, is served from the blocked address: the API and the sign-in.
    expect((await admin.send(root, '', '/v1/keys')).status).toBe(200);
    const signIn = await admin.send(root, `Origin: ${kg.adminUrl}\r\nContent-Length: 0\r\n`, '/console/api/session', 'POST');
    expect(signIn.status, signIn.body).toBeLessThan(300);
    expect(signIn.headers['set-cookie']).toBeDefined();
    expect(await loginFailures()).toBe(auditedBefore + MAX);
    // Its own count: the same address is not blocked on the proxy, nor another on the admin listener.
    const sameAddressOnProxy = client(kg.url, admin.address);
    expect((await sameAddressOnProxy.send(valid)).status).toBe(200);
    const otherAdmin = client(kg.adminUrl);
    expect((await otherAdmin.send(unseenRoot, '', '/v1/keys')).status).toBe(200);
    for (const c of [admin, sameAddressOnProxy, otherAdmin]) c.close();
  });

  it('the block ends when Retry-After says, and one failure later it is back', async () => {
    const attacker = client();
    for (let i = 0; i < MAX; i++) await attacker.send(madeUp());
    const blocked = await attacker.send(madeUp());
    const blockedAt = performance.now();
    expect(blocked.status).toBe(429);
    const retryAfter = Number(blocked.headers['retry-after']);
    expect(retryAfter).toBe(Math.ceil(INTERVAL_MS / 1000));
    // Requests while blocked are not counted: polling does not extend the block.
    let answer = blocked;
    while (answer.status === 429) answer = await attacker.send(madeUp());
    const waited = performance.now() - blockedAt;
    expect(answer.status).toBe(401);
    console.log(`[hostile brute force] unblocked after ${waited.toFixed(0)} ms (one failure is forgiven every ${INTERVAL_MS} ms; Retry-After said ${retryAfter} s)`);
    expect(waited).toBeGreaterThan(INTERVAL_MS * 0.5);
    expect(waited).toBeLessThanOrEqual(retryAfter * 1000 + 500);
    // That 401 was one more failure: blocked again.
    expect((await attacker.send(madeUp())).status).toBe(429);
    attacker.close();
  });

  it('Retry-After is exact in whole seconds for a long window', async () => {
    const slow = await startHostileKeygate('brute-force-slow', { limits: { failedAuth: { max: 3, windowMs: 60_000 } }, routes: [{ name: 'api', pathPrefix: '/api', upstream: upstream.url }] });
    try {
      const attacker = client(slow.url);
      for (let i = 0; i < 3; i++) expect((await attacker.send(madeUp())).status).toBe(401);
      const res = await attacker.send(madeUp());
      expect(res.status).toBe(429);
      // One failure is forgiven every 20 s; the first was a moment ago.
      expect([19, 20]).toContain(Number(res.headers['retry-after']));
      attacker.close();
    } finally {
      await slow.stop();
    }
  });

  it('counts only unknown keys: not malformed, revoked or expired ones (answered from the cache), not successes, missing keys or 403s', async () => {
    const { key: revoked, record } = await kg.keys.create({ tenant: 'acme', name: 'revoked' });
    const { key: expired } = await cliKeys(shiftedService(kg, -40 * 86_400_000)).create({ tenant: 'acme', name: 'expired', expires: '30d' });
    kg.remember({ kind: 'key', value: expired });
    kg.remember({ kind: 'hash', value: testHasher(expired) });
    const mixed = client();
    expect((await mixed.send(revoked)).status).toBe(200);
    await kg.keys.revoke(record.id);
    for (let i = 0; i < 200; i++) expect((await mixed.send(valid)).status).toBe(200);
    for (let i = 0; i < 200; i++) expect((await mixed.send()).status).toBe(401);
    for (let i = 0; i < 200; i++) expect((await mixed.send(valid, '', '/perm/x')).status).toBe(403);
    // One customer's revoked and expired keys polled in a loop: answered from the cache, never counted.
    const before = lookups();
    for (let i = 0; i < 100; i++) {
      expect(JSON.parse((await mixed.send(revoked)).body).code).toBe('key_revoked');
      expect(JSON.parse((await mixed.send(expired)).body).code).toBe('key_expired');
      expect(JSON.parse((await mixed.send(i % 2 ? 'kg_acme_malformed' : typo(valid))).body).code).toBe('invalid_key');
    }
    // One lookup each for the revoked and the expired key (then cached), none for malformed ones.
    expect(lookups() - before).toBeLessThanOrEqual(2);
    expect((await mixed.send(valid)).status).toBe(200);
    expect((await mixed.send(madeUp())).status).toBe(401);
    // The access log names the revoked key still being used.
    await waitFor(() => accessLines(kg.logs()).some((l) => l.code === 'key_revoked' && l.keyId === record.id), 2000);
    // Unknown keys count: after MAX of them, the next unknown key waits; the working key does not.
    for (let i = 1; i < MAX; i++) expect((await mixed.send(madeUp())).status).toBe(401);
    expect((await mixed.send(madeUp())).status).toBe(429);
    expect((await mixed.send(valid)).status).toBe(200);
    mixed.close();
  });

  it('shared egress: a flood of made-up keys from one address leaves a working key from that address at 100 % success, and the store sees at most max lookups from the flood', async () => {
    const { key: tenantB } = await kg.keys.create({ tenant: 'globex', name: 'shared-egress' });
    const egress = '127.0.2.1';
    const platform = client(kg.url, egress);
    expect((await platform.send(tenantB)).status).toBe(200);
    const before = lookups();
    const flood = Array.from({ length: 4 }, () => new RawConnection(kg.url, { localAddress: egress }));
    let floodStatuses = new Map<number, number>();
    let ok = 0;
    let sent = 0;
    await Promise.all([
      ...flood.map(async (connection) => {
        for (let i = 0; i < 150; i++) {
          const { response } = await connection.request(`GET /api/x HTTP/1.1\r\nHost: gw\r\nX-Api-Key: ${madeUp()}\r\n\r\n`);
          floodStatuses.set(response!.status, (floodStatuses.get(response!.status) ?? 0) + 1);
        }
        connection.close();
      }),
      (async () => {
        for (let i = 0; i < 150; i++) {
          sent++;
          if ((await platform.send(tenantB)).status === 200) ok++;
        }
      })(),
    ]);
    counts.requests += 750;
    const spent = lookups() - before;
    console.log(`[hostile brute force] shared egress: working key ${ok}/${sent} served during a flood of 600 made-up keys (${JSON.stringify(Object.fromEntries(floodStatuses))}), ${spent} store lookups`);
    expect(ok).toBe(sent);
    expect(spent).toBeLessThanOrEqual(MAX + flood.length);
    platform.close();
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
      const bad = () => generateKey('kg', 'acme');
      expect((await balancer.send(key)).status).toBe(200);
      for (let i = 0; i < 3; i++) expect((await as(`192.0.2.${i}, 203.0.113.9`, bad())).status).toBe(401);
      // Blocked as 203.0.113.9, whatever it writes in front of itself.
      expect((await as('203.0.113.9', bad())).status).toBe(429);
      expect((await as('198.51.100.1, 203.0.113.9', bad())).status).toBe(429);
      // The addresses to its left were never the client.
      expect((await as('192.0.2.0', bad())).status).toBe(401);
      // The balancer itself (no X-Forwarded-For) is another client.
      expect((await balancer.send(bad())).status).toBe(401);
      // A key that works is served to the blocked client all the same.
      expect((await as('203.0.113.9', key)).status).toBe(200);
      // IPv6 clients count per /64.
      for (let i = 0; i < 3; i++) expect((await as(`2001:db8:1:2::${i + 1}`, bad())).status).toBe(401);
      expect((await as('2001:db8:1:2:ffff::9', bad())).status).toBe(429);
      expect((await as('2001:db8:1:3::1', bad())).status).toBe(401);
      // A flood of distinct sources is remembered in a bounded LRU: 2000 addresses, 50 entries.
      for (let i = 0; i < 2000; i++) await as(`10.${(i >> 8) & 255}.${i & 255}.1`, bad());
      // …so the first blocked address has been forgotten: memory stays bounded, the price is that.
      expect((await as('203.0.113.9', bad())).status).toBe(401);
      balancer.close();
    } finally {
      await lb.stop();
    }
  });

  it('without trustClient, X-Forwarded-For is ignored: the socket address is the client', async () => {
    const attacker = client();
    for (let i = 0; i < MAX; i++) await attacker.send(madeUp(), `X-Forwarded-For: 192.0.2.${i}\r\n`);
    expect((await attacker.send(madeUp(), 'X-Forwarded-For: 192.0.2.200\r\n')).status).toBe(429);
    attacker.close();
  });
});

/**
 * WebSockets through keygate, with a real `ws` client and a real `ws` server: upgrades are
 * authenticated like requests, the upstream gets keygate's rewrite (no credential, trusted
 * identity headers), refusals are problem+json, and an open tunnel is closed with a Close
 * frame (1008) when its key is revoked or expires, and with 1001 at shutdown.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKey } from '../../src/keys/format.ts';
import { CLI_CALLER } from '../../src/keys/service.ts';
import { startTestKeygate, type TestKeygate } from '../helpers/keygate.ts';
import { startTestIssuer } from '../helpers/oauth-issuer.ts';
import { waitFor } from '../helpers/redis-server.ts';
import { closed, connectWs, echo, startWsUpstream, type WsUpstream } from '../helpers/ws-upstream.ts';

let upstream: WsUpstream;
let kg: TestKeygate;

const wsUrl = (path: string) => `${kg.url.replace('http:', 'ws:')}${path}`;

async function metric(name: string, labels: string): Promise<number> {
  const text = await (await fetch(`${kg.adminUrl}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(labels));
  return line === undefined ? 0 : Number(line.split(' ').at(-1));
}

beforeAll(async () => {
  upstream = await startWsUpstream();
  kg = await startTestKeygate({
    routes: [
      { name: 'ws', pathPrefix: '/ws', upstream: upstream.url, websocket: true, auth: { permissions: ['ws:use'] } },
      { name: 'ws-strip', pathPrefix: '/strip', upstream: `${upstream.url}/ws`, stripPrefix: true, websocket: true },
      { name: 'ws-public', pathPrefix: '/open', upstream: upstream.url, websocket: true, auth: { required: false } },
      { name: 'ws-cors', pathPrefix: '/browser', upstream: upstream.url, websocket: true, cors: { origins: ['https://app.example.com'] } },
      { name: 'plain', pathPrefix: '/plain', upstream: upstream.url },
    ],
    // No sweep of its own: a rotated key's tunnels must close at the end of the overlap by themselves.
    lifecycle: { sweepMs: 3_600_000 },
  });
});

afterAll(async () => {
  await kg?.stop();
  await upstream?.close();
});

describe('WebSocket upgrades', () => {
  it('are proxied with a valid key, with the credential removed and identity headers set', async () => {
    const { key, record } = await kg.keys.create({ tenant: 'acme', name: 'agent', permissions: ['ws:use'], user: 'alice' });
    const before = upstream.upgrades.length;
    const { ws } = await connectWs(wsUrl('/ws/chat?room=1'), { 'x-api-key': key, 'x-tenant-id': 'evil', 'X-Auth-Role': 'admin' });
    expect(ws).not.toBeNull();
    expect(await echo(ws!, 'hello')).toBe('hello');
    expect(await echo(ws!, 'x'.repeat(70_000))).toHaveLength(70_000);
    const seen = upstream.upgrades[before]!;
    expect(seen.url).toBe('/ws/chat?room=1');
    expect(seen.headers['x-api-key']).toBeUndefined();
    expect(seen.headers['x-tenant-id']).toBe('acme');
    expect(seen.headers['x-auth-role']).toBe('api-user');
    expect(seen.headers['x-api-key-id']).toBe(record.id);
    expect(seen.headers['x-auth-user']).toBe('alice');
    expect(seen.headers['x-auth-permissions']).toBe('ws:use');
    expect(seen.headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(seen.headers.upgrade).toBe('websocket');
    expect(seen.headers['sec-websocket-key']).toBeTruthy();
    expect(seen.headers.host).toBe(new URL(upstream.url).host);
    const done = closed(ws!);
    ws!.close(1000, 'bye');
    expect((await done).code).toBe(1000);
  });

  it('take the key from Authorization: Bearer and never forward it', async () => {
    const { key } = await kg.keys.create({ tenant: 'acme', name: 'bearer', permissions: ['ws:use'] });
    const before = upstream.upgrades.length;
    const { ws } = await connectWs(wsUrl('/ws/b'), { authorization: `Bearer ${key}` });
    expect(await echo(ws!, 'ping')).toBe('ping');
    expect(upstream.upgrades[before]!.headers.authorization).toBeUndefined();
    ws!.terminate();
  });

  it('are refused without a key, with a bad key and without the permission, before reaching the upstream', async () => {
    const before = upstream.upgrades.length;
    const missing = await connectWs(wsUrl('/ws/x'));
    expect(missing.status).toBe(401);
    expect(missing.headers!['content-type']).toBe('application/problem+json');
    expect(missing.headers!['www-authenticate']).toBe('Bearer realm="keygate"');
    expect(JSON.parse(missing.body!).code).toBe('missing_credentials');

    const bad = await connectWs(wsUrl('/ws/x'), { 'x-api-key': 'kg_acme_' + '0'.repeat(64) });
    expect(bad.status).toBe(401);
    expect(JSON.parse(bad.body!).code).toBe('invalid_key');

    const { key, record } = await kg.keys.create({ tenant: 'acme', name: 'no-perm' });
    const denied = await connectWs(wsUrl('/ws/x'), { 'x-api-key': key });
    expect(denied.status).toBe(403);
    expect(JSON.parse(denied.body!).code).toBe('forbidden_permission');
    expect(denied.headers!['www-authenticate']).toContain('error="insufficient_scope"');

    await kg.keys.revoke(record.id);
    const revoked = await connectWs(wsUrl('/ws/x'), { 'x-api-key': key });
    expect(revoked.status).toBe(401);
    expect(JSON.parse(revoked.body!).code).toBe('key_revoked');
    expect(upstream.upgrades.length).toBe(before);
  });

  it('follow stripPrefix and the upstream base path, and work on public routes without a key', async () => {
    const { key } = await kg.keys.create({ tenant: 'acme', name: 'strip' });
    const before = upstream.upgrades.length;
    const { ws } = await connectWs(wsUrl('/strip/room/7'), { 'x-api-key': key });
    expect(await echo(ws!, 'a')).toBe('a');
    expect(upstream.upgrades[before]!.url).toBe('/ws/room/7');
    ws!.terminate();
    const open = await connectWs(wsUrl('/open/x'), { 'x-tenant-id': 'spoofed' });
    expect(await echo(open.ws!, 'b')).toBe('b');
    expect(upstream.upgrades.at(-1)!.headers['x-tenant-id']).toBeUndefined();
    open.ws!.terminate();
  });

  it('check the Origin on routes with cors', async () => {
    const { key } = await kg.keys.create({ tenant: 'acme', name: 'browser' });
    const refused = await connectWs(wsUrl('/browser/x'), { 'x-api-key': key, origin: 'https://evil.example' });
    expect(refused.status).toBe(403);
    expect(JSON.parse(refused.body!).code).toBe('forbidden_origin');
    const { ws } = await connectWs(wsUrl('/browser/x'), { 'x-api-key': key, origin: 'https://app.example.com' });
    expect(await echo(ws!, 'ok')).toBe('ok');
    ws!.terminate();
  });

  it('on a route without websocket are plain requests: the upstream never sees an Upgrade', async () => {
    const { key } = await kg.keys.create({ tenant: 'acme', name: 'plain' });
    const beforeUpgrades = upstream.upgrades.length;
    const result = await connectWs(wsUrl('/plain/x'), { 'x-api-key': key });
    expect(result.status).toBe(200);
    expect(upstream.upgrades.length).toBe(beforeUpgrades);
    expect(upstream.requests.at(-1)!.headers.upgrade).toBeUndefined();
  });

  it('relay an upstream that refuses the upgrade, and answer 502 when the upstream is down', async () => {
    const { key } = await kg.keys.create({ tenant: 'acme', name: 'refused', permissions: ['ws:use'] });
    const refused = await connectWs(wsUrl('/ws/refuse'), { 'x-api-key': key });
    expect(refused.status).toBe(404);
    expect(refused.body).toBe('no socket\n');

    const dead = await startTestKeygate({ routes: [{ name: 'dead', pathPrefix: '/', upstream: 'http://127.0.0.1:1', websocket: true }] });
    try {
      const created = await dead.keys.create({ tenant: 'acme', name: 'd' });
      const down = await connectWs(`${dead.url.replace('http:', 'ws:')}/x`, { 'x-api-key': created.key });
      expect(down.status).toBe(502);
      expect(JSON.parse(down.body!).code).toBe('upstream_unavailable');
    } finally {
      await dead.stop();
    }
  });
});

describe('open WebSockets', () => {
  it('are closed with 1008 as soon as their key is revoked; other keys stay open', async () => {
    const victim = await kg.keys.create({ tenant: 'acme', name: 'victim', permissions: ['ws:use'] });
    const other = await kg.keys.create({ tenant: 'acme', name: 'other', permissions: ['ws:use'] });
    const a = (await connectWs(wsUrl('/ws/a'), { 'x-api-key': victim.key })).ws!;
    const a2 = (await connectWs(wsUrl('/ws/a2'), { 'x-api-key': victim.key })).ws!;
    const b = (await connectWs(wsUrl('/ws/b'), { 'x-api-key': other.key })).ws!;
    await echo(a, 'warm');
    await waitFor('the gauge to count 3 tunnels', async () => (await metric('keygate_open_streams', 'kind="websocket"')) >= 3, 2000);
    const closes = [closed(a), closed(a2)] as const;
    const t0 = performance.now();
    await kg.keys.revoke(victim.record.id);
    const [ca, ca2] = await Promise.all(closes);
    console.log(`[keygate ws] revoke → client saw Close ${ca.code} after ${(ca.at - t0).toFixed(1)} ms (second tunnel ${(ca2.at - t0).toFixed(1)} ms)`);
    expect(ca).toMatchObject({ code: 1008, reason: 'the API key has been revoked' });
    expect(ca2.code).toBe(1008);
    expect(ca.at - t0).toBeLessThan(1000);
    expect(await echo(b, 'still here')).toBe('still here');
    const reconnect = await connectWs(wsUrl('/ws/a'), { 'x-api-key': victim.key });
    expect(reconnect.status).toBe(401);
    b.terminate();
  });

  it("are closed with 1008 when their key's rotation overlap ends, whether opened before the rotation or during it", async () => {
    const old = await kg.keys.create({ tenant: 'acme', name: 'rotated', permissions: ['ws:use'] });
    const before = (await connectWs(wsUrl('/ws/r1'), { 'x-api-key': old.key })).ws!;
    await echo(before, 'warm');
    const rotated = await kg.service.rotate(CLI_CALLER, old.record.id, 2);
    const revokesAt = rotated.previous.revokesAt!;
    expect(revokesAt - rotated.record.createdAt).toBe(2000);
    const during = (await connectWs(wsUrl('/ws/r2'), { 'x-api-key': old.key })).ws!;
    const successor = (await connectWs(wsUrl('/ws/r3'), { 'x-api-key': rotated.key })).ws!;
    expect(await echo(before, 'still open')).toBe('still open');
    const ends = await Promise.all([closed(before), closed(during)]);
    const ms = ends.map((end) => performance.timeOrigin + end.at - revokesAt);
    console.log(`[keygate ws] rotation overlap ended → Close ${ms.map((m) => `${m.toFixed(1)} ms`).join(' and ')} after revokesAt`);
    for (const [i, end] of ends.entries()) {
      expect(end).toMatchObject({ code: 1008, reason: 'the API key has been revoked' });
      expect(ms[i]).toBeGreaterThanOrEqual(-5); // not before (timer and clock granularity)
      expect(ms[i]).toBeLessThan(1000); // no sweep runs, and cache.maxAgeMs is 30 s
    }
    expect(await echo(successor, 'new key')).toBe('new key');
    expect((await connectWs(wsUrl('/ws/r4'), { 'x-api-key': old.key })).status).toBe(401);
    expect((await kg.service.get(CLI_CALLER, old.record.id)).status).toBe('active'); // not swept: refused all the same
    successor.terminate();
  });

  it('are closed when their key expires', async () => {
    const { key } = await kg.keys.create({ tenant: 'acme', name: 'short', permissions: ['ws:use'], expires: new Date(Date.now() + 1500).toISOString() });
    const { ws } = await connectWs(wsUrl('/ws/e'), { 'x-api-key': key });
    const t0 = Date.now();
    const end = await closed(ws!);
    expect(end).toMatchObject({ code: 1008, reason: 'the credential has expired' });
    expect(Date.now() - t0).toBeLessThan(5000);
  });

  it('are counted in keygate_open_streams and logged once when they end, without the key', async () => {
    const { key, record } = await kg.keys.create({ tenant: 'acme', name: 'logged', permissions: ['ws:use'] });
    const baseline = await metric('keygate_open_streams', 'route="ws",kind="websocket"');
    const { ws } = await connectWs(wsUrl('/ws/logged?token=secret-looking'), { 'x-api-key': key });
    await echo(ws!, 'x');
    expect(await metric('keygate_open_streams', 'route="ws",kind="websocket"')).toBe(baseline + 1);
    const done = closed(ws!);
    ws!.close();
    await done;
    await waitFor('the gauge to drop', async () => (await metric('keygate_open_streams', 'route="ws",kind="websocket"')) === baseline, 2000);
    await waitFor('the access log line', () => kg.logs().includes('"path":"/ws/logged"'), 2000);
    const line = JSON.parse(kg.logs().split('\n').find((l) => l.includes('"path":"/ws/logged"'))!);
    expect(line).toMatchObject({ status: 101, route: 'ws', outcome: 'ok', keyId: record.id, tenant: 'acme', upgrade: 'websocket' });
    expect(kg.logs()).not.toContain(key);
    expect(kg.logs()).not.toContain('secret-looking');
    expect(await metric('keygate_requests_total', 'route="ws",status_class="1xx",outcome="ok"')).toBeGreaterThan(0);
  });
});

describe('failed authentications', () => {
  it('count against the address across upgrades and requests alike; then unknown keys get 429 and a key that works is still served', async () => {
    const own = await startTestKeygate({ limits: { failedAuth: { max: 3, windowMs: 60_000 } }, routes: [{ name: 'ws', pathPrefix: '/', upstream: upstream.url, websocket: true }] });
    try {
      const { key } = await own.keys.create({ tenant: 'acme', name: 'good' });
      const url = `${own.url.replace('http:', 'ws:')}/x`;
      expect((await fetch(`${own.url}/x`, { headers: { 'x-api-key': key } })).status).toBe(200);
      for (let i = 0; i < 2; i++) expect((await connectWs(url, { 'x-api-key': generateKey('kg', 'acme') })).status).toBe(401);
      expect((await fetch(`${own.url}/x`, { headers: { 'x-api-key': generateKey('kg', 'acme') } })).status).toBe(401);
      const blocked = await connectWs(url, { 'x-api-key': generateKey('kg', 'acme') });
      expect(blocked.status).toBe(429);
      expect(JSON.parse(blocked.body!).code).toBe('rate_limited');
      expect(Number(blocked.headers!['retry-after'])).toBeGreaterThan(0);
      expect((await fetch(`${own.url}/x`, { headers: { 'x-api-key': generateKey('kg', 'acme') } })).status).toBe(429);
      // The key that works is known to this keygate: served, upgrade and request alike.
      const open = await connectWs(url, { 'x-api-key': key });
      expect(open.ws).not.toBeNull();
      open.ws!.close();
      expect((await fetch(`${own.url}/x`, { headers: { 'x-api-key': key } })).status).toBe(200);
    } finally {
      await own.stop();
    }
  });
});

describe('OAuth access tokens', () => {
  it('authenticate an upgrade on an MCP route, are never forwarded, and end the tunnel when they expire', async () => {
    const idp = await startTestIssuer();
    const resource = 'http://mcp.test/mcp';
    const own = await startTestKeygate({
      oauth: { issuers: [{ name: 'idp', issuer: idp.issuer, jwksUri: idp.jwksUri, tenant: 'acme' }] },
      routes: [{ name: 'mcp-ws', pathPrefix: '/mcp', upstream: upstream.url, websocket: true, mcp: { resource }, auth: { permissions: ['mcp:use'], issuers: ['idp'] } }],
    });
    try {
      const url = `${own.url.replace('http:', 'ws:')}/mcp/socket`;
      const narrow = await idp.token(resource, { claims: { scope: 'other' } });
      const denied = await connectWs(url, { authorization: `Bearer ${narrow}` });
      expect(denied.status).toBe(403);
      expect(denied.headers!['www-authenticate']).toContain('resource_metadata="http://mcp.test/.well-known/oauth-protected-resource/mcp"');
      const token = await idp.token(resource, { claims: { scope: 'mcp:use', exp: Math.floor(Date.now() / 1000) + 2 } });
      const before = upstream.upgrades.length;
      const { ws } = await connectWs(url, { authorization: `Bearer ${token}` });
      expect(await echo(ws!, 'tok')).toBe('tok');
      const seen = upstream.upgrades[before]!.headers;
      expect(seen.authorization).toBeUndefined();
      expect(seen['x-tenant-id']).toBe('acme');
      expect(seen['x-auth-permissions']).toBe('mcp:use');
      const end = await closed(ws!);
      expect(end).toMatchObject({ code: 1008, reason: 'the credential has expired' });
    } finally {
      await own.stop();
      await idp.close();
    }
  });
});

describe('shutdown', () => {
  it('closes open WebSockets with 1001 at the end of the grace period', async () => {
    const own = await startTestKeygate({ routes: [{ name: 'ws', pathPrefix: '/', upstream: upstream.url, websocket: true }] });
    const { key } = await own.keys.create({ tenant: 'acme', name: 's' });
    const { ws } = await connectWs(`${own.url.replace('http:', 'ws:')}/x`, { 'x-api-key': key });
    await echo(ws!, 'x');
    const end = closed(ws!);
    const t0 = Date.now();
    await own.stop();
    expect(await end).toMatchObject({ code: 1001, reason: 'keygate is shutting down' });
    expect(Date.now() - t0).toBeLessThan(5000);
  });
});

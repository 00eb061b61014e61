/**
 * Long responses and event streams end when their key stops working, like WebSockets do
 * (live-exchanges.ts): a real upstream sends an SSE event every 50 ms, each written in two
 * halves 20 ms apart (so keygate is often mid-event when the key stops working), and a
 * chunked download that never ends. Revoking the key through the admin API, its expiry,
 * the end of its rotation overlap and an access token's `exp` each end the exchange within
 * the lag: an event stream cleanly, between two events (the last bytes are a complete
 * event), a download by a reset (a half body is never passed off as complete), and the
 * upstream request is stopped. Other keys' streams stay open. A plain short response is
 * never registered. Lags are printed: `npx vitest run test/integration/stream-revocation.test.ts`.
 */
import { testDirectory } from '../helpers/directory.ts';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { Pool } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toIdentity } from '../../src/auth/identity.ts';
import type { KeyRecord } from '../../src/keys/record.ts';
import { HttpExchange as Exchange } from '../../src/pipeline/exchange.ts';
import { forward } from '../../src/pipeline/forward.ts';
import { LiveExchanges, type LiveEntry, type LiveExchange } from '../../src/pipeline/live-exchanges.ts';
import type { Identity } from '../../src/auth/identity.ts';
import { call } from '../helpers/admin.ts';
import { openStream, writeDownload, writeEvents, type Ended, type Stream } from '../helpers/streams.ts';
import { startTestKeygate, type TestKeygate } from '../helpers/keygate.ts';
import { startTestIssuer, type TestIssuer } from '../helpers/oauth-issuer.ts';
import { startUpstream, type TestUpstream } from '../helpers/upstream.ts';
import { closeAll } from '../helpers/close.ts';

/** The lag every exchange must end within (the events come every 50 ms, the rest of an event within 20 ms). */
const MAX_LAG_MS = 200;
const RESOURCE = 'http://mcp.test/mcp';

let up: TestUpstream;
let kg: TestKeygate;
let idp: TestIssuer;
let root: string;
/** When the upstream saw each request's connection close (performance.now()), by path. */
const upstreamClosed = new Map<string, number>();

/** An event every 50 ms, each in two writes 20 ms apart. */
function eventStream(req: IncomingMessage, res: ServerResponse): void {
  res.writeHead(200, { 'content-type': 'text/event-stream' });
  res.write(': hello\n\n');
  writeEvents(res);
  res.on('close', () => upstreamClosed.set(req.url!, performance.now()));
}

/** 16 KB every 20 ms, chunked, until the client (keygate) goes away. */
function download(req: IncomingMessage, res: ServerResponse): void {
  res.writeHead(200, { 'content-type': 'application/octet-stream' });
  writeDownload(res);
  res.on('close', () => upstreamClosed.set(req.url!, performance.now()));
}

/** When the upstream saw the request at `path` go away (waits up to a second for it). */
async function upstreamStopped(path: string): Promise<number> {
  const deadline = Date.now() + 1000;
  while (!upstreamClosed.has(path) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  return upstreamClosed.get(path) ?? Infinity;
}

/** A GET through keygate whose body is read as it comes. */
function open(path: string, headers: Record<string, string>): Promise<Stream> {
  return openStream(kg.url, path, headers);
}

/** Revokes key `id` through the admin API while `stream` is open: how long the answer, the end of the stream and the end of the upstream request at `upstreamPath` took. */
async function revokeWhileOpen(id: string, stream: Stream, upstreamPath: string): Promise<{ answered: number; end: Ended; lag: number; stopped: number }> {
  const t0 = performance.now();
  await revoke(id);
  const answered = performance.now() - t0;
  const end = await stream.ended;
  return { answered, end, lag: end.at - t0, stopped: (await upstreamStopped(upstreamPath)) - t0 };
}

function expectCompleteEvents(text: string): void {
  expect(text.endsWith('\n\n')).toBe(true);
  const events = text.split('\n\n').slice(0, -1);
  expect(events.length).toBeGreaterThan(1);
  for (const event of events.slice(1)) expect(event).toMatch(/^id: (\d+)\ndata: first half of \1\ndata: second half of \1$/);
}

async function createKey(body: Record<string, unknown>): Promise<{ key: string; id: string; expiresAt: string | null }> {
  const res = await call(kg.adminUrl, 'POST', '/v1/keys', { key: root, body: { tenant: 'acme', ...body } });
  expect(res.status, res.text).toBe(201);
  return res.json;
}

async function revoke(id: string): Promise<void> {
  const res = await call(kg.adminUrl, 'POST', `/v1/keys/${id}/revoke`, { key: root });
  expect(res.status, res.text).toBe(200);
}

beforeAll(async () => {
  up = await startUpstream((req, res) => {
    if (req.url!.startsWith('/mcp/sse') || req.url!.startsWith('/sse')) eventStream(req, res);
    else if (req.url!.startsWith('/download')) download(req, res);
    else {
      res.setHeader('content-type', 'application/json');
      res.end('{"ok":true}');
    }
  });
  idp = await startTestIssuer();
  kg = await startTestKeygate({
    oauth: { issuers: [{ name: 'idp', issuer: idp.issuer, jwksUri: idp.jwksUri, tenant: 'acme' }] },
    routes: [
      { name: 'mcp', pathPrefix: '/mcp', upstream: up.url, mcp: { resource: RESOURCE }, auth: { issuers: ['idp'] } },
      { name: 'api', pathPrefix: '/', upstream: up.url },
    ],
    // No sweep and no periodic re-check inside a test: only the registry's push and deadlines end streams.
    lifecycle: { sweepMs: 3_600_000 },
    log: { level: 'warn' },
  });
  root = (await kg.keys.create({ tenant: 'system', role: 'admin', name: 'root' })).key;
});

afterAll(() => closeAll(kg, up, idp));

describe('an open event stream', () => {
  it('ends between two events within the lag when its key is revoked through the admin API; the upstream request is stopped; other keys stay open', async () => {
    const victim = await createKey({ name: 'sse-victim' });
    const other = await createKey({ name: 'sse-other' });
    const stream = await open('/sse/revoked', { 'x-api-key': victim.key, accept: 'text/event-stream' });
    const bystander = await open('/sse/bystander', { 'x-api-key': other.key });
    expect(stream.status).toBe(200);
    await stream.until('second half of 3\n\n');
    const { answered, end, lag, stopped } = await revokeWhileOpen(victim.id, stream, '/sse/revoked');
    console.log(`[keygate sse] revoke through the admin API (answered in ${answered.toFixed(1)} ms) → event stream ended after ${lag.toFixed(1)} ms, upstream request stopped after ${stopped.toFixed(1)} ms`);
    expect(end.complete).toBe(true);
    expectCompleteEvents(end.text);
    expect(lag).toBeLessThan(MAX_LAG_MS);
    expect(stopped).toBeLessThan(MAX_LAG_MS);
    // The other key's stream still flows.
    const seen = Number(/id: (\d+)\n[^\n]*\n[^\n]*\n\n$/.exec(end.text)![1]);
    await bystander.until(`second half of ${seen + 3}\n\n`);
    expect((await fetch(`${kg.url}/sse/again`, { headers: { 'x-api-key': victim.key } })).status).toBe(401);
  });

  it('ends between two events within the lag when its key expires', async () => {
    const short = await createKey({ name: 'sse-expiring', expires: new Date(Date.now() + 1500).toISOString() });
    const stream = await open('/sse/expired', { 'x-api-key': short.key });
    expect(stream.status).toBe(200);
    const end = await stream.ended;
    const lag = end.at + performance.timeOrigin - Date.parse(short.expiresAt!);
    console.log(`[keygate sse] key expired → event stream ended ${lag.toFixed(1)} ms after expiresAt`);
    expect(end.complete).toBe(true);
    expectCompleteEvents(end.text);
    expect(lag).toBeGreaterThanOrEqual(-5);
    expect(lag).toBeLessThan(MAX_LAG_MS);
  });

  it("ends between two events within the lag when its key's rotation overlap ends", async () => {
    const old = await createKey({ name: 'sse-rotated' });
    const stream = await open('/sse/rotated', { 'x-api-key': old.key });
    await stream.until('second half of 1\n\n');
    const rotated = await call(kg.adminUrl, 'POST', `/v1/keys/${old.id}/rotate`, { key: root, body: { overlapSeconds: 1 } });
    expect(rotated.status, rotated.text).toBe(201);
    const revokesAt = Date.parse(rotated.json.previous.revokesAt);
    const successor = await open('/sse/successor', { 'x-api-key': rotated.json.key });
    const end = await stream.ended;
    const lag = end.at + performance.timeOrigin - revokesAt;
    console.log(`[keygate sse] rotation overlap ended → event stream ended ${lag.toFixed(1)} ms after revokesAt`);
    expect(end.complete).toBe(true);
    expectCompleteEvents(end.text);
    expect(lag).toBeGreaterThanOrEqual(-5);
    expect(lag).toBeLessThan(MAX_LAG_MS);
    await successor.until('second half of 25\n\n');
  });

  it("ends between two events within the lag at its OAuth access token's exp", async () => {
    const exp = Math.floor(Date.now() / 1000) + 2;
    const token = await idp.token(RESOURCE, { claims: { exp } });
    const stream = await open('/mcp/sse', { authorization: `Bearer ${token}` });
    expect(stream.status).toBe(200);
    const end = await stream.ended;
    const lag = end.at + performance.timeOrigin - exp * 1000;
    console.log(`[keygate sse] access token's exp → event stream ended ${lag.toFixed(1)} ms after exp`);
    expect(end.complete).toBe(true);
    expectCompleteEvents(end.text);
    expect(lag).toBeGreaterThanOrEqual(-5);
    expect(lag).toBeLessThan(MAX_LAG_MS);
  });
});

describe('a long download', () => {
  it('is cut within the lag when its key is revoked, and its upstream request stopped', async () => {
    const victim = await createKey({ name: 'download' });
    const stream = await open('/download/big', { 'x-api-key': victim.key });
    expect(stream.status).toBe(200);
    await stream.until('a'.repeat(64 * 1024));
    const { answered, end, lag, stopped } = await revokeWhileOpen(victim.id, stream, '/download/big');
    console.log(`[keygate download] revoke through the admin API (answered in ${answered.toFixed(1)} ms) → download cut after ${lag.toFixed(1)} ms (${end.text.length} bytes received), upstream request stopped after ${stopped.toFixed(1)} ms`);
    expect(end.complete).toBe(false);
    expect(lag).toBeLessThan(MAX_LAG_MS);
    expect(stopped).toBeLessThan(MAX_LAG_MS);
  });

  it('is cut within the lag when its key expires', async () => {
    const short = await createKey({ name: 'download-expiring', expires: new Date(Date.now() + 1000).toISOString() });
    const stream = await open('/download/expiring', { 'x-api-key': short.key });
    const end = await stream.ended;
    const lag = end.at + performance.timeOrigin - Date.parse(short.expiresAt!);
    console.log(`[keygate download] key expired → download cut ${lag.toFixed(1)} ms after expiresAt`);
    expect(end.complete).toBe(false);
    expect(lag).toBeGreaterThanOrEqual(-5);
    expect(lag).toBeLessThan(MAX_LAG_MS);
  });
});

describe('which responses are registered', () => {
  let server: Server;
  let pool: Pool;
  let base: string;
  const added: LiveExchange[] = [];
  const identity: Identity = toIdentity({ id: 'k1', tenant: 'acme', status: 'active', expiresAt: Date.now() + 3_600_000, revokesAt: null, permissions: [], group: null, rateLimits: [], quota: null } as unknown as KeyRecord, testDirectory({}));

  class CountingLive extends LiveExchanges {
    override add(owner: LiveExchange, id: Identity | null, hash: string | null): LiveEntry {
      added.push(owner);
      return super.add(owner, id, hash);
    }
  }
  const live = new CountingLive({ verifier: { verifyHash: () => identity, hashOf: () => 'hash' }, recheckMs: 60_000 });

  beforeAll(async () => {
    pool = new Pool(up.url);
    // forward() alone, as the gateway calls it for a request admitted with `identity`.
    server = createServer((req, res) => {
      const exchange = new Exchange(req, res, performance.now());
      exchange.identity = identity;
      exchange.upstream = null;
      res.on('close', () => exchange.upstream?.clientClosed());
      forward(pool, exchange, { path: req.url!, headers: [], body: null, headersTimeout: 5000, bodyTimeout: 5000 }, { live });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    server.closeAllConnections();
    server.close();
    await pool.close();
  });

  it('not a short response (no registry entry, no timer); an event stream or a response still streaming after its head, yes — until it ends', async () => {
    for (let i = 0; i < 50; i++) expect(await (await fetch(`${base}/short/${i}`, { headers: { 'x-api-key': 'k' } })).json()).toEqual({ ok: true });
    expect(added).toHaveLength(0);

    const sse = new AbortController();
    const sseRes = await fetch(`${base}/sse/registered`, { headers: { 'x-api-key': 'k' }, signal: sse.signal });
    const dl = new AbortController();
    const dlRes = await fetch(`${base}/download/registered`, { headers: { 'x-api-key': 'k' }, signal: dl.signal });
    await dlRes.body!.getReader().read();
    expect(added.map((owner) => owner.kind)).toEqual(['event-stream', 'response']);
    expect(live.count()).toBe(2);
    sse.abort();
    dl.abort();
    await sseRes.body?.cancel().catch(() => {});
    const deadline = Date.now() + 2000;
    while (live.count() > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(live.count()).toBe(0);
  });
});

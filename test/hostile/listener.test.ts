/**
 * Attacks on the front door, part 6: the listener itself (limits.*). Oversized request
 * heads get 431; slow clients (slowloris: headers a byte at a time, or a connection that
 * sends nothing; slow bodies) are cut off by the header and request timeouts with 408 and
 * their upstream request is abandoned — while a response that streams for longer than
 * both timeouts (SSE) and a keep-alive connection used for longer are left alone; one
 * address opening more connections than allowed gets 429 on the extra ones and never
 * starves the others; past the total the listener closes new connections at once.
 */
import { once } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/http.ts';
import { startUpstream, type TestUpstream } from '../helpers/upstream.ts';
import { startHostileKeygate, type HostileKeygate } from './helpers/capture.ts';
import { exchange, openSocket, parseResponses, RawConnection, socketClosed } from '../helpers/raw-socket.ts';

const HEADERS_TIMEOUT_MS = 500;
const REQUEST_TIMEOUT_MS = 1500;
const PER_ADDRESS = 20;
const TOTAL = 70;

/** What the upstream saw of each request (by path). */
const upstreamSaw = new Map<string, { complete: boolean; closed: boolean }>();

function handler(req: IncomingMessage, res: ServerResponse): void {
  const path = (req.url ?? '/').split('?')[0]!;
  const entry = { complete: false, closed: false };
  upstreamSaw.set(path, entry);
  res.on('close', () => (entry.closed = !res.writableFinished));
  if (path.startsWith('/api/sse')) {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    let i = 0;
    const timer = setInterval(() => {
      res.write(`data: ${i}\n\n`);
      if (++i === 15) {
        clearInterval(timer);
        res.end();
      }
    }, 200);
    res.on('close', () => clearInterval(timer));
    return;
  }
  req.resume();
  req.on('end', () => {
    entry.complete = true;
    res.end('ok');
  });
}

let upstream: TestUpstream;
let kg: HostileKeygate;
let key: string;
const tried: Record<string, number> = {};
const count = (what: string, n = 1) => (tried[what] = (tried[what] ?? 0) + n);

beforeAll(async () => {
  upstream = await startUpstream(handler);
  kg = await startHostileKeygate('listener', {
    limits: { headersTimeoutMs: HEADERS_TIMEOUT_MS, requestTimeoutMs: REQUEST_TIMEOUT_MS, maxHeaderBytes: 4096, connectionsPerAddress: PER_ADDRESS, connections: TOTAL },
    routes: [{ name: 'api', pathPrefix: '/api', upstream: upstream.url }],
  });
  key = (await kg.keys.create({ tenant: 'acme', name: 'listener' })).key;
});

afterAll(async () => {
  await kg?.stop();
  await upstream?.close();
  console.log(`[hostile listener] requests/connections tried: ${JSON.stringify(tried)}`);
});

/** Reads what the server writes until it closes the connection; resolves with it and when. */
function untilClosed(socket: Socket, started: number): Promise<{ text: string; ms: number }> {
  let text = '';
  socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
  return socketClosed(socket).then(() => ({ text, ms: performance.now() - started }));
}

async function metric(reason: string): Promise<number> {
  const text = await (await fetch(`${kg.adminUrl}/metrics`)).text();
  return Number(new RegExp(`^keygate_listener_rejections_total\\{reason="${reason}"\\} (\\d+)`, 'm').exec(text)?.[1] ?? 0);
}

describe('oversized request heads', () => {
  it.each([
    ['one huge header', `X-Big: ${'a'.repeat(5000)}\r\n`],
    ['many small headers', Array.from({ length: 400 }, (_, i) => `X-H${i}: value\r\n`).join('')],
    ['a huge key header', `X-Api-Key: kg_acme_${'0'.repeat(5000)}\r\n`],
  ])('%s: 431 headers_too_large, problem+json, connection closed, nothing forwarded', async (_name, headers) => {
    count('oversized');
    const before = upstream.received.length;
    const result = await exchange(kg.url, `GET /api/x HTTP/1.1\r\nHost: gw\r\n${headers}\r\n`);
    expect(result.responses.map((r) => r.status)).toEqual([431]);
    expect(result.responses[0]!.headers['content-type']).toBe('application/problem+json');
    expect(JSON.parse(result.responses[0]!.body)).toMatchObject({ code: 'headers_too_large' });
    expect(result.closed).toBe(true);
    expect(upstream.received.length).toBe(before);
  });

  it('a request line over the limit: 431 too', async () => {
    count('oversized');
    const result = await exchange(kg.url, `GET /api/${'x'.repeat(5000)} HTTP/1.1\r\nHost: gw\r\n\r\n`);
    expect(result.responses.map((r) => r.status)).toEqual([431]);
  });

  it('just under the limit is served', async () => {
    count('oversized');
    const result = await exchange(kg.url, `GET /api/x HTTP/1.1\r\nHost: gw\r\nX-Api-Key: ${key}\r\nX-Pad: ${'a'.repeat(3000)}\r\n\r\n`, { expect: 1 });
    expect(result.responses.map((r) => r.status)).toEqual([200]);
  });
});

describe('slow clients (slowloris)', () => {
  it('headers sent a line at a time are cut off at headersTimeoutMs with 408', async () => {
    count('slow-headers');
    const socket = await openSocket(kg.url);
    const started = performance.now();
    const closed = untilClosed(socket, started);
    socket.write('GET /api/x HTTP/1.1\r\nHost: gw\r\n');
    const timer = setInterval(() => socket.writable && socket.write('X-Slow: a\r\n'), 100);
    const { text, ms } = await closed;
    clearInterval(timer);
    expect(text).toMatch(/^HTTP\/1\.1 408 /);
    expect(text).toContain('"code":"request_timeout"');
    expect(ms).toBeGreaterThanOrEqual(HEADERS_TIMEOUT_MS - 50);
    expect(ms).toBeLessThan(HEADERS_TIMEOUT_MS + 1500);
  });

  it('a connection that sends nothing is closed at headersTimeoutMs', async () => {
    count('slow-headers');
    const socket = await openSocket(kg.url);
    const { text, ms } = await untilClosed(socket, performance.now());
    expect(text).toMatch(/^HTTP\/1\.1 408 /);
    expect(ms).toBeLessThan(HEADERS_TIMEOUT_MS + 1500);
  });

  it('a body sent a byte at a time is cut off at requestTimeoutMs with 408, and its upstream request is abandoned', async () => {
    count('slow-body');
    const socket = await openSocket(kg.url);
    const started = performance.now();
    const closed = untilClosed(socket, started);
    socket.write(`POST /api/slow-body HTTP/1.1\r\nHost: gw\r\nX-Api-Key: ${key}\r\nContent-Length: 1000\r\n\r\n`);
    const timer = setInterval(() => socket.writable && socket.write('a'), 100);
    const { text, ms } = await closed;
    clearInterval(timer);
    expect(text).toMatch(/^HTTP\/1\.1 408 /);
    expect(ms).toBeGreaterThanOrEqual(REQUEST_TIMEOUT_MS - 50);
    expect(ms).toBeLessThan(REQUEST_TIMEOUT_MS + 1500);
    await waitFor(() => upstreamSaw.get('/api/slow-body')?.closed, 2000);
    expect(upstreamSaw.get('/api/slow-body')!.complete).toBe(false);
    await waitFor(() => kg.pools()[0]!.stats.running === 0, 2000);
  });

  it('an SSE response that streams for twice the request timeout is not cut', async () => {
    count('long streams');
    const result = await exchange(kg.url, `GET /api/sse HTTP/1.1\r\nHost: gw\r\nX-Api-Key: ${key}\r\n\r\n`, { expect: 1, waitMs: 1500 });
    expect(result.responses).toHaveLength(1);
    const events = result.responses[0]!.body.match(/data: \d+/g) ?? [];
    expect(events).toHaveLength(15);
  });

  it('a keep-alive connection used for longer than the request timeout keeps working', async () => {
    count('long streams');
    const connection = new RawConnection(kg.url);
    const started = performance.now();
    for (let i = 0; i < 5; i++) {
      const { response } = await connection.request(`GET /api/ka HTTP/1.1\r\nHost: gw\r\nX-Api-Key: ${key}\r\n\r\n`);
      expect(response?.status).toBe(200);
      await sleep(HEADERS_TIMEOUT_MS * 0.8);
    }
    expect(performance.now() - started).toBeGreaterThan(REQUEST_TIMEOUT_MS);
    expect(connection.opened).toBe(1);
    connection.close();
  });

  it('counts what it cut off', async () => {
    expect(await metric('request_timeout')).toBeGreaterThanOrEqual(3);
    expect(await metric('headers_too_large')).toBeGreaterThanOrEqual(4);
  });
});

describe('connections per address and in total', () => {
  it(`an address gets ${PER_ADDRESS} connections; the next ones get 429 and their requests reach nobody; others are served meanwhile`, async () => {
    const hog = '127.0.0.2';
    const held: Socket[] = [];
    // Each makes one request and then sits idle on keep-alive: no timeout of the request
    // path applies any more, so they are held as long as the client likes.
    for (let i = 0; i < PER_ADDRESS; i++) {
      const socket = await openSocket(kg.url, { localAddress: hog });
      socket.write(`GET /api/held HTTP/1.1\r\nHost: gw\r\nX-Api-Key: ${key}\r\n\r\n`);
      await once(socket, 'data');
      held.push(socket);
    }
    try {
      await waitFor(async () => (await kg.clientConnections()) >= PER_ADDRESS, 2000);
      const before = upstream.received.length;
      const extra: string[] = [];
      for (let i = 0; i < 10; i++) {
        count('connections over the per-address limit');
        const result = await exchange(kg.url, `GET /api/over HTTP/1.1\r\nHost: gw\r\nX-Api-Key: ${key}\r\n\r\n`, { localAddress: hog, waitMs: 500 });
        extra.push(result.responses.map((r) => r.status).join(',') || (result.closed ? 'closed' : 'open'));
      }
      expect(extra.every((s) => s === '429'), JSON.stringify(extra)).toBe(true);
      expect(upstream.received.length).toBe(before);
      // Meanwhile another address is served, promptly.
      const other = new RawConnection(kg.url, { localAddress: '127.0.0.3' });
      const latencies: number[] = [];
      for (let i = 0; i < 50; i++) {
        count('bystander requests');
        const started = performance.now();
        const { response } = await other.request(`GET /api/bystander HTTP/1.1\r\nHost: gw\r\nX-Api-Key: ${key}\r\n\r\n`);
        latencies.push(performance.now() - started);
        expect(response?.status).toBe(200);
      }
      other.close();
      latencies.sort((a, b) => a - b);
      console.log(`[hostile listener] bystander latency while 127.0.0.2 holds ${PER_ADDRESS} idle connections: p50 ${latencies[25]!.toFixed(2)} ms, max ${latencies[49]!.toFixed(2)} ms`);
      expect(latencies[25]).toBeLessThan(100);
    } finally {
      for (const s of held) s.destroy();
    }
    // Closed connections are given back: the address may connect again.
    await waitFor(async () => (await kg.clientConnections()) === 0, 2000);
    const again = await exchange(kg.url, `GET /api/again HTTP/1.1\r\nHost: gw\r\nX-Api-Key: ${key}\r\n\r\n`, { localAddress: hog, expect: 1 });
    expect(again.responses.map((r) => r.status)).toEqual([200]);
    expect(await metric('connections_per_address')).toBeGreaterThanOrEqual(10);
  });

  it(`past ${TOTAL} connections in total, new ones are closed at once`, async () => {
    const held: Socket[] = [];
    try {
      for (let i = 0; i < TOTAL; i++) held.push(await openSocket(kg.url, { localAddress: `127.0.2.${1 + (i % 10)}` }));
      await waitFor(async () => (await kg.clientConnections()) === TOTAL, 2000);
      count('connections over the total', 5);
      for (let i = 0; i < 5; i++) {
        const socket = connect({ port: Number(new URL(kg.url).port), host: '127.0.0.1', localAddress: '127.0.3.1' });
        const outcome = await new Promise<string>((resolve) => {
          let data = '';
          socket.on('data', (d: Buffer) => (data += d.toString()));
          socket.on('error', () => resolve('reset'));
          socket.on('close', () => resolve(data === '' ? 'closed' : data));
          socket.on('connect', () => socket.write(`GET /api/x HTTP/1.1\r\nHost: gw\r\nX-Api-Key: ${key}\r\n\r\n`));
        });
        expect(['closed', 'reset']).toContain(outcome);
      }
      expect(await metric('connections_total')).toBeGreaterThanOrEqual(5);
    } finally {
      for (const s of held) s.destroy();
    }
    await waitFor(async () => (await kg.clientConnections()) === 0, 2000);
    const result = await exchange(kg.url, `GET /api/x HTTP/1.1\r\nHost: gw\r\nX-Api-Key: ${key}\r\n\r\n`, { expect: 1 });
    expect(parseResponses(Buffer.from(result.text, 'latin1')).responses.map((r) => r.status)).toEqual([200]);
  });
});

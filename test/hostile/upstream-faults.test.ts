/**
 * Faults in what keygate depends on, part 2: upstreams that misbehave. A raw TCP upstream
 * refuses, resets or closes before answering, never answers, answers garbage (no status
 * line, a header without a colon, a bad or doubled Content-Length, headers too large, an
 * unsolicited 101, a bare LF that would smuggle a Set-Cookie, two responses for one
 * request), sends a flood of 1xx, dies or stalls mid-body, and ends, cuts, resets or stalls
 * an SSE stream. Each mode is tried several times, some of them concurrently.
 *
 * The client always gets a clear answer: 502 or 504 as problem+json while nothing was sent
 * yet; a reset connection when a body with a length (or chunked) was cut — never a short
 * body passed off as complete; a cleanly ended stream for an event stream. No byte of an
 * answer the upstream was not asked for ever reaches a client. Afterwards keygate's sockets
 * — to clients, to the upstream, in the process — are back to what they were.
 */
import { once } from 'node:events';
import { request as httpRequest } from 'node:http';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/http.ts';
import { freePorts } from '../helpers/process.ts';
import { startHostileKeygate, type HostileKeygate } from './helpers/capture.ts';

type Outcome = { how: 'end' | 'reset'; status: number; body: string; headers: Record<string, string | string[] | undefined> };

const OK = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok';
const SSE_HEAD = 'HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n';
const chunk = (text: string) => `${text.length.toString(16)}\r\n${text}\r\n`;
const EVENTS = chunk('data: 1\n\n') + chunk('data: 2\n\n') + chunk('data: half-an-ev');

/** What the raw upstream does for each path: write some bytes, then end, reset, or hang. */
const MODES: Record<string, { write?: string; then: 'end' | 'reset' | 'hang' | 'keep'; expect: string }> = {
  'reset-before': { then: 'reset', expect: '502' },
  'close-before': { then: 'end', expect: '502' },
  never: { then: 'hang', expect: '504' },
  'garbage-status': { write: 'HELLO WORLD\r\n\r\n', then: 'end', expect: '502' },
  'garbage-header': { write: 'HTTP/1.1 200 OK\r\nNo colon in this line\r\nContent-Length: 2\r\n\r\nok', then: 'end', expect: '502' },
  'bad-length': { write: 'HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\nok', then: 'end', expect: '502' },
  'two-lengths': { write: 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 40\r\n\r\nok', then: 'end', expect: '502' },
  'length-and-chunked': { write: 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', then: 'end', expect: '502' },
  'huge-headers': { write: `HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(70_000)}\r\nContent-Length: 2\r\n\r\nok`, then: 'end', expect: '502' },
  'bare-lf-set-cookie': { write: 'HTTP/1.1 200 OK\r\nX-A: b\nSet-Cookie: evil=1\r\nContent-Length: 2\r\n\r\nok', then: 'end', expect: '502' },
  'unsolicited-101': { write: 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: evil\r\nConnection: Upgrade\r\n\r\nraw bytes after the switch', then: 'keep', expect: '502' },
  'early-hints': { write: `${'HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n'.repeat(3)}${OK}`, then: 'keep', expect: '200' },
  'informational-flood': { write: `${'HTTP/1.1 100 Continue\r\n\r\n'.repeat(200)}${OK}`, then: 'keep', expect: '200|502' },
  'two-responses': { write: `${OK}HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil`, then: 'keep', expect: '200' },
  'short-body': { write: 'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b', then: 'end', expect: 'reset' },
  'reset-mid-body': { write: `HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n${'.'.repeat(64 * 1024)}`, then: 'reset', expect: 'reset' },
  'chunked-cut': { write: `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n${chunk('abc')}`, then: 'end', expect: 'reset' },
  'bad-chunk': { write: `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n${chunk('abc')}zz\r\n`, then: 'keep', expect: 'reset' },
  'stall-mid-body': { write: 'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nsome', then: 'hang', expect: 'reset' },
  'sse-end': { write: `${SSE_HEAD}${chunk('data: 1\n\n')}${chunk('data: 2\n\n')}0\r\n\r\n`, then: 'keep', expect: 'clean' },
  'sse-cut': { write: SSE_HEAD + EVENTS, then: 'end', expect: 'clean' },
  'sse-reset': { write: SSE_HEAD + EVENTS, then: 'reset', expect: 'clean' },
  'sse-stall': { write: SSE_HEAD + EVENTS, then: 'hang', expect: 'clean' },
};
const TRIES = 8;

let raw: Server;
let rawPort: number;
const upstreamSockets = new Set<Socket>();
let kg: HostileKeygate;
let key: string;

beforeAll(async () => {
  raw = createServer((socket) => {
    upstreamSockets.add(socket);
    socket.on('close', () => upstreamSockets.delete(socket));
    socket.on('error', () => {});
    let head = '';
    socket.on('data', (data: Buffer) => {
      head += data.toString('latin1');
      const end = head.indexOf('\r\n\r\n');
      if (end === -1) return;
      const path = /^\S+ (\S+)/.exec(head)?.[1] ?? '/';
      head = head.slice(end + 4);
      const mode = MODES[path.split('/')[2] ?? ''];
      if (mode === undefined) return void socket.end(OK);
      if (mode.write !== undefined) socket.write(mode.write);
      if (mode.then === 'end') socket.end();
      else if (mode.then === 'reset') setTimeout(() => socket.resetAndDestroy(), 20);
    });
  });
  raw.listen(0, '127.0.0.1');
  await once(raw, 'listening');
  rawPort = (raw.address() as AddressInfo).port;
  const [closedPort] = await freePorts(1);
  kg = await startHostileKeygate('upstream-faults', {
    routes: [
      { name: 'refused', pathPrefix: '/refused', upstream: `http://127.0.0.1:${closedPort}` },
      { name: 'faults', pathPrefix: '/f', upstream: `http://127.0.0.1:${rawPort}`, timeouts: { headersMs: 300, idleMs: 400 } },
    ],
  });
  key = (await kg.keys.create({ tenant: 'acme', name: 'faults' })).key;
});

afterAll(async () => {
  await kg?.stop();
  for (const socket of upstreamSockets) socket.destroy();
  raw?.close();
});

function get(path: string): Promise<Outcome> {
  const url = new URL(kg.url);
  return new Promise((resolve) => {
    let status = 0;
    let headers: Outcome['headers'] = {};
    let body = '';
    let settled = false;
    const done = (how: Outcome['how']) => {
      if (settled) return;
      settled = true;
      resolve({ how, status, body, headers });
    };
    const req = httpRequest({ host: url.hostname, port: url.port, path, headers: { 'x-api-key': key }, agent: false }, (res) => {
      status = res.statusCode ?? 0;
      headers = res.headers;
      res.setEncoding('latin1');
      res.on('data', (text: string) => (body += text));
      res.on('end', () => done('end'));
      res.on('aborted', () => done('reset'));
      res.on('error', () => done('reset'));
    });
    req.on('error', () => done('reset'));
    req.end();
  });
}

function classify(o: Outcome): string {
  if (o.how === 'reset') return 'reset';
  if (o.status === 502 || o.status === 504) {
    expect(o.headers['content-type']).toBe('application/problem+json');
    return String(o.status);
  }
  if (o.headers['content-type'] === 'text/event-stream') return 'clean';
  return String(o.status);
}

function processSockets(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap').length;
}

describe('an upstream that misbehaves', () => {
  let baseline = 0;
  let requests = TRIES * 3;
  const figures: string[] = [];

  beforeAll(async () => {
    baseline = processSockets();
  });

  it('refuses connections: 502', async () => {
    for (let i = 0; i < TRIES; i++) expect(classify(await get('/refused/x'))).toBe('502');
  });

  it.each(Object.keys(MODES))('%s', async (mode) => {
    const expected = MODES[mode]!.expect;
    // Modes that wait for a timeout cost about a second each (undici's timers are coarse).
    const tries = MODES[mode]!.then === 'hang' ? TRIES / 2 : TRIES;
    const sequential: Outcome[] = [];
    for (let i = 0; i < tries / 2; i++) sequential.push(await get(`/f/${mode}`));
    const concurrent = await Promise.all(Array.from({ length: tries / 2 }, () => get(`/f/${mode}`)));
    const outcomes = [...sequential, ...concurrent];
    figures.push(`${mode}: ${outcomes.map(classify).join(',')}`);
    requests += outcomes.length;
    for (const o of outcomes) {
      expect(expected.split('|'), `${mode}: ${o.status} ${o.body.slice(0, 80)}`).toContain(classify(o));
      // Nothing the upstream was not asked for, and nothing smuggled into a header.
      expect(o.body).not.toContain('evil');
      expect(JSON.stringify(o.headers)).not.toContain('evil');
      if (classify(o) === '200') expect(o.body).toBe('ok');
      if (expected === 'clean') {
        expect(o.body).toContain('data: 1\n\n');
        expect(o.body).not.toContain('data: 3');
      }
    }
  });

  it('a client request after an upstream sent an extra response gets its own answer, never the extra one', async () => {
    for (let i = 0; i < TRIES; i++) {
      expect((await get('/f/two-responses')).body).toBe('ok');
      const next = await get('/f/plain');
      expect(next.status).toBe(200);
      expect(next.body).toBe('ok');
    }
  });

  it('afterwards, no socket is left open: to clients, to the upstream, in the process', async () => {
    console.log(`[hostile upstream faults] ${requests} requests:\n  ${figures.join('\n  ')}`);
    for (const socket of upstreamSockets) if (!socket.destroyed) socket.end();
    await waitFor(async () => (await kg.clientConnections()) === 0, 5000, 20);
    await waitFor(() => upstreamSockets.size === 0, 5000, 20);
    await waitFor(() => kg.pools().every((pool) => pool.stats.connected === 0), 5000, 20);
    await waitFor(() => processSockets() <= baseline, 5000, 20);
    expect(kg.pools().map((pool) => pool.stats.running + pool.stats.pending + pool.stats.queued)).toEqual([0, 0]);
  });
});

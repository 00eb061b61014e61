/**
 * SSE keep-alive (routes[].timeouts.sseKeepAliveMs): a real keygate in front of an upstream
 * whose event streams go quiet. With keep-alive, a stream silent for longer than idleMs
 * stays open and receives `: keepalive` comments, only ever between two events; silence
 * inside an event, or in a response that is not an event stream, still ends it after idleMs.
 * Without keep-alive nothing changes: idleMs of silence ends the stream, with no comment.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestKeygate, type TestKeygate } from '../helpers/keygate.ts';
import { openStream } from '../helpers/streams.ts';
import { startUpstream, type TestUpstream } from '../helpers/upstream.ts';
import { closeAll } from '../helpers/close.ts';

const IDLE_MS = 600;
const KEEPALIVE_MS = 150;
const COMMENT = ': keepalive\n\n';

let up: TestUpstream;
let t: TestKeygate;
let key: string;

function later(res: ServerResponse, ms: number, write: () => void): void {
  const timer = setTimeout(() => !res.destroyed && write(), ms);
  res.on('close', () => clearTimeout(timer));
}

function upstream(req: IncomingMessage, res: ServerResponse): void {
  req.resume();
  const path = new URL(req.url ?? '/', 'http://x').pathname.replace(/^\/(keep|plain)/, '');
  const sse = { 'content-type': 'text/event-stream' };
  switch (path) {
    case '/quiet':
      // An event, then twice idleMs of silence, then another.
      res.writeHead(200, sse);
      res.write('id: 1\ndata: first\n\n');
      later(res, 2 * IDLE_MS, () => res.end('id: 2\ndata: second\n\n'));
      return;
    case '/long-quiet':
      // The same with more silence: undici's body timer (the route without keep-alive) ticks about once a second.
      res.writeHead(200, sse);
      res.write('id: 1\ndata: first\n\n');
      later(res, 2500, () => res.end('id: 2\ndata: second\n\n'));
      return;
    case '/split':
      // An event written in two halves with silence between them: several keep-alive periods, less than idleMs.
      res.writeHead(200, sse);
      res.write('id: 1\ndata: part one');
      later(res, 3 * KEEPALIVE_MS + 50, () => {
        res.write('\ndata: part two\n\n');
        later(res, 3 * KEEPALIVE_MS, () => res.end('id: 2\ndata: after\n\n'));
      });
      return;
    case '/stuck':
      // Half an event, then nothing: the upstream is stuck inside it.
      res.writeHead(200, sse);
      res.write('id: 1\ndata: begun');
      return;
    case '/slow-json':
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' });
      res.write('{"half":');
      return;
    default:
      res.writeHead(404).end();
  }
}

beforeAll(async () => {
  up = await startUpstream(upstream);
  t = await startTestKeygate({
    routes: [
      { name: 'keep', pathPrefix: '/keep', upstream: up.url, timeouts: { idleMs: IDLE_MS, sseKeepAliveMs: KEEPALIVE_MS } },
      { name: 'plain', pathPrefix: '/plain', upstream: up.url, timeouts: { idleMs: IDLE_MS } },
    ],
  });
  key = (await t.keys.create({ tenant: 'acme', name: 'sse' })).key;
});

afterAll(() => closeAll(t, up));

const open = (path: string) => openStream(t.url, path, { 'x-api-key': key, accept: 'text/event-stream' });

describe('with timeouts.sseKeepAliveMs', () => {
  it('a stream silent for longer than idleMs stays open, receives keep-alive comments, and gets the next event', async () => {
    const started = performance.now();
    const stream = await open('/keep/quiet');
    expect(stream.status).toBe(200);
    const ended = await stream.ended;
    expect(ended.complete).toBe(true);
    expect(ended.at - started).toBeGreaterThan(2 * IDLE_MS - 50);
    expect(ended.text.startsWith('id: 1\ndata: first\n\n')).toBe(true);
    expect(ended.text.endsWith('id: 2\ndata: second\n\n')).toBe(true);
    const comments = ended.text.split(COMMENT).length - 1;
    // 1200 ms of silence at one comment per 150 ms of it: about 7.
    expect(comments).toBeGreaterThanOrEqual(4);
    // Nothing but whole comments between the two events.
    expect(ended.text).toBe(`id: 1\ndata: first\n\n${COMMENT.repeat(comments)}id: 2\ndata: second\n\n`);
  });

  it('never writes a comment inside an event: an event split by silence arrives whole', async () => {
    const stream = await open('/keep/split');
    const { text, complete } = await stream.ended;
    expect(complete).toBe(true);
    expect(text.startsWith('id: 1\ndata: part one\ndata: part two\n\n')).toBe(true);
    const rest = text.slice('id: 1\ndata: part one\ndata: part two\n\n'.length);
    // Between the events, only comments (one or two periods of silence passed there).
    expect(rest).toMatch(/^(: keepalive\n\n)+id: 2\ndata: after\n\n$/);
  });

  it('silence inside an event still ends the stream after idleMs (no comment written into it)', async () => {
    const started = performance.now();
    const stream = await open('/keep/stuck');
    const ended = await stream.ended;
    const took = ended.at - started;
    expect(took).toBeGreaterThanOrEqual(IDLE_MS - 20);
    expect(took).toBeLessThan(IDLE_MS + 3 * KEEPALIVE_MS + 300);
    expect(ended.text).toBe('id: 1\ndata: begun');
  });

  it('a response that is not an event stream gets no comment and is cut after idleMs, as without keep-alive', async () => {
    const started = performance.now();
    const stream = await open('/keep/slow-json');
    const ended = await stream.ended;
    expect(ended.complete).toBe(false);
    expect(ended.text).toBe('{"half":');
    expect(ended.at - started).toBeGreaterThanOrEqual(IDLE_MS - 20);
    expect(ended.at - started).toBeLessThan(IDLE_MS + 3 * KEEPALIVE_MS + 300);
  });
});

describe('without it', () => {
  it('idleMs of silence between events ends the stream, and nothing is added', async () => {
    const started = performance.now();
    const stream = await open('/plain/long-quiet');
    const ended = await stream.ended;
    expect(ended.text).toBe('id: 1\ndata: first\n\n');
    expect(ended.at - started).toBeGreaterThanOrEqual(IDLE_MS - 20);
    expect(ended.at - started).toBeLessThan(2400);
  });
});

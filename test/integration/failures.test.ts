/**
 * When the upstream or the client fails: connect refused → 502, no response headers in time
 * → 504, connect timeout → 504, an upstream that dies mid-body → the client connection is
 * reset, a client that goes away (before the response headers, or during an SSE stream) →
 * the upstream request is closed, and request bodies over the route's limit → 413.
 */
import { once } from 'node:events';
import { request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rawRequest, waitFor, accessLines } from '../helpers/http.ts';
import { startTestKeygate, type TestKeygate } from '../helpers/keygate.ts';
import { freePorts, startBlackhole, type Blackhole } from '../helpers/process.ts';
import { startUpstream, type TestUpstream } from '../helpers/upstream.ts';

const MB = 1024 * 1024;
const LIMIT = 4096;

/** What the upstream saw of each request, by its `?id=`. */
interface Seen {
  /** The connection closed before the upstream finished its response. */
  closed: boolean;
  /** The request body arrived complete. */
  ended: boolean;
  bodyBytes: number;
  eventsWritten: number;
}
const seen = new Map<string, Seen>();

function track(req: IncomingMessage, res: ServerResponse): Seen {
  const id = new URL(req.url ?? '/', 'http://x').searchParams.get('id') ?? 'none';
  const entry: Seen = { closed: false, ended: false, bodyBytes: 0, eventsWritten: 0 };
  seen.set(id, entry);
  res.on('close', () => {
    if (!res.writableFinished) entry.closed = true;
  });
  return entry;
}

function upstreamHandler(req: IncomingMessage, res: ServerResponse): void {
  const entry = track(req, res);
  const path = (req.url ?? '/').split('?')[0]!;
  if (path.startsWith('/slow') || path.startsWith('/think')) {
    // Never answers: thinking for ever.
    req.resume();
  } else if (path.startsWith('/dies')) {
    const withLength = path.includes('length');
    res.writeHead(200, withLength ? { 'content-type': 'application/octet-stream', 'content-length': MB } : { 'content-type': 'application/octet-stream' });
    res.write(Buffer.alloc(64 * 1024, 'd'));
    setTimeout(() => req.socket.destroy(), 50);
  } else if (path.startsWith('/sse')) {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.flushHeaders();
    const timer = setInterval(() => {
      res.write(`data: ${entry.eventsWritten++}\n\n`);
    }, 30);
    res.on('close', () => clearInterval(timer));
  } else {
    // /limited: reads the body, answers with its size.
    req.on('data', (chunk: Buffer) => (entry.bodyBytes += chunk.length));
    req.on('end', () => {
      entry.ended = true;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ bytes: entry.bodyBytes }));
    });
  }
}

let upstream: TestUpstream;
let blackhole: Blackhole;
let kg: TestKeygate;
let key: string;

beforeAll(async () => {
  const [refusedPort] = await freePorts(1);
  [upstream, blackhole] = await Promise.all([startUpstream(upstreamHandler), startBlackhole()]);
  kg = await startTestKeygate({
    routes: [
      { name: 'refused', pathPrefix: '/refused', upstream: `http://127.0.0.1:${refusedPort}` },
      { name: 'slow', pathPrefix: '/slow', upstream: upstream.url, timeouts: { headersMs: 300 } },
      { name: 'blackhole', pathPrefix: '/blackhole', upstream: `http://127.0.0.1:${blackhole.port}`, timeouts: { connectMs: 300 } },
      { name: 'think', pathPrefix: '/think', upstream: upstream.url },
      { name: 'dies', pathPrefix: '/dies', upstream: upstream.url },
      { name: 'sse', pathPrefix: '/sse', upstream: upstream.url },
      { name: 'limited', pathPrefix: '/limited', upstream: upstream.url, maxBodyBytes: LIMIT },
    ],
  });
  key = (await kg.keys.create({ tenant: 'acme', name: 'failures' })).key;
}, 20_000);

afterAll(async () => {
  await Promise.allSettled([kg?.stop(), upstream?.close(), blackhole?.close()]);
});

function url(path: string): URL {
  return new URL(path, kg.url);
}

/** Starts a request through keygate (body left open unless `end`). */
function start(method: string, path: string, headers: Record<string, string | number> = {}, end = true) {
  const target = url(path);
  const req = httpRequest({ host: target.hostname, port: target.port, method, path: target.pathname + target.search, headers: { 'x-api-key': key, ...headers }, agent: false });
  req.on('error', () => {});
  const response = once(req, 'response') as Promise<[IncomingMessage]>;
  response.catch(() => {});
  if (end) req.end();
  return { req, response };
}

async function json(res: IncomingMessage): Promise<any> {
  let text = '';
  for await (const chunk of res) text += String(chunk);
  return JSON.parse(text);
}

/** How a response body ended: cleanly, with an error (reset/aborted), or not at all within `ms`. */
function outcome(req: ReturnType<typeof httpRequest>, res: IncomingMessage, ms = 5000): Promise<{ how: 'end' | 'error' | 'hang'; bytes: number }> {
  return new Promise((resolve) => {
    let bytes = 0;
    const timer = setTimeout(() => finish('hang'), ms);
    function finish(how: 'end' | 'error' | 'hang') {
      clearTimeout(timer);
      resolve({ how, bytes });
      req.destroy();
    }
    res.on('data', (chunk: Buffer) => (bytes += chunk.length));
    res.on('end', () => finish('end'));
    res.on('aborted', () => finish('error'));
    res.on('error', () => finish('error'));
    req.on('error', () => finish('error'));
  });
}

describe('upstream failures', () => {
  it('answers 502 upstream_unavailable when the upstream refuses the connection', async () => {
    const res = await rawRequest(kg.url, { path: '/refused/x', headers: { 'x-api-key': key } });
    expect(res.status).toBe(502);
    expect(res.headers['content-type']).toBe('application/problem+json');
    expect(res.json).toMatchObject({ status: 502, code: 'upstream_unavailable' });
  });

  it('answers 504 upstream_timeout when the upstream sends no headers within timeouts.headersMs, and closes the upstream request', async () => {
    const started = performance.now();
    const res = await rawRequest(kg.url, { path: '/slow/x?id=slow', headers: { 'x-api-key': key } });
    const elapsed = performance.now() - started;
    expect(res.status).toBe(504);
    expect(res.headers['content-type']).toBe('application/problem+json');
    expect(res.json).toMatchObject({ status: 504, code: 'upstream_timeout' });
    expect(elapsed).toBeGreaterThanOrEqual(250);
    expect(elapsed).toBeLessThan(5000);
    await waitFor(() => seen.get('slow')?.closed, 2000);
  });

  it('answers 504 upstream_timeout when the upstream does not accept the connection within timeouts.connectMs', async () => {
    const started = performance.now();
    const res = await rawRequest(kg.url, { path: '/blackhole/x', headers: { 'x-api-key': key } });
    const elapsed = performance.now() - started;
    expect(res.status).toBe(504);
    expect(res.json).toMatchObject({ status: 504, code: 'upstream_timeout' });
    expect(res.json.detail).toMatch(/accept/);
    expect(elapsed).toBeGreaterThanOrEqual(250);
    expect(elapsed).toBeLessThan(5000);
  });

  it.each(['chunked', 'length'])('resets the client connection when the upstream dies mid-body (%s framing)', async (framing) => {
    const { req, response } = start('GET', `/dies/${framing}`);
    const [res] = await response;
    expect(res.statusCode).toBe(200);
    const result = await outcome(req, res);
    // Not a clean end (a truncated body passed off as complete), not a hanging request.
    expect(result.how).toBe('error');
    expect(result.bytes).toBeGreaterThan(0);
    expect(result.bytes).toBeLessThan(MB);
  });
});

describe('client aborts', () => {
  it('closes the upstream request when the client leaves before the response headers', async () => {
    const { req } = start('GET', '/think/x?id=think');
    await waitFor(() => seen.has('think'), 3000);
    expect(seen.get('think')!.closed).toBe(false);
    req.destroy();
    await waitFor(() => seen.get('think')!.closed, 2000);
    // The access log records the abandoned request as 499.
    const line = await waitFor(() => accessLines(kg.logs()).find((l) => l.path === '/think/x'), 2000);
    expect(line.status).toBe(499);
  });

  it('closes the upstream request when the client leaves during an SSE stream', async () => {
    const { req, response } = start('GET', '/sse/x?id=sse');
    const [res] = await response;
    expect(res.headers['content-type']).toBe('text/event-stream');
    let text = '';
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => (text += chunk));
    await waitFor(() => text.includes('data: 1\n\n'), 3000);
    req.destroy();
    await waitFor(() => seen.get('sse')!.closed, 2000);
    const written = seen.get('sse')!.eventsWritten;
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(seen.get('sse')!.eventsWritten).toBe(written);
  });
});

describe('request body limit (maxBodyBytes)', () => {
  it('passes a body at the limit, with Content-Length and chunked', async () => {
    const withLength = await rawRequest(kg.url, { method: 'POST', path: '/limited/ok?id=ok1', headers: { 'x-api-key': key }, body: Buffer.alloc(LIMIT, 'a') });
    expect(withLength.status).toBe(200);
    expect(withLength.json).toEqual({ bytes: LIMIT });

    const { req, response } = start('POST', '/limited/ok?id=ok2', {}, false);
    for (let i = 0; i < 4; i++) req.write(Buffer.alloc(LIMIT / 4, 'b'));
    req.end();
    const [res] = await response;
    expect(res.statusCode).toBe(200);
    expect(await json(res)).toEqual({ bytes: LIMIT });
  });

  it('answers 413 at once to a Content-Length over the limit, before the upstream sees anything', async () => {
    const before = upstream.received.length;
    // Headers only: the body is never sent, so the answer cannot wait for it.
    const { req, response } = start('POST', '/limited/big?id=big', { 'content-length': LIMIT + 1 }, false);
    req.flushHeaders();
    const [res] = await response;
    expect(res.statusCode).toBe(413);
    expect(res.headers['content-type']).toBe('application/problem+json');
    expect(res.headers.connection).toBe('close');
    expect(await json(res)).toMatchObject({ status: 413, code: 'payload_too_large' });
    req.destroy();
    expect(upstream.received.length).toBe(before);
  });

  it('answers 413 to Expect: 100-continue with a Content-Length over the limit, without asking for the body', async () => {
    const before = upstream.received.length;
    const res = await rawRequest(kg.url, { method: 'POST', path: '/limited/big', headers: { 'x-api-key': key, 'content-length': String(MB) }, body: Buffer.alloc(MB), expectContinue: true });
    expect(res.status).toBe(413);
    expect(res.continued).toBe(false);
    expect(res.json).toMatchObject({ code: 'payload_too_large' });
    expect(upstream.received.length).toBe(before);
  });

  it('cuts off a chunked body over the limit with 413, and the upstream never gets it whole', async () => {
    const { req, response } = start('POST', '/limited/chunked?id=over', {}, false);
    // Within the limit: it streams on to the upstream.
    req.write(Buffer.alloc(LIMIT / 2, 'c'));
    await waitFor(() => (seen.get('over')?.bodyBytes ?? 0) > 0, 3000);
    // Over it: keygate stops the upload and answers 413.
    req.write(Buffer.alloc(LIMIT, 'c'));
    req.end();
    const [res] = await response;
    expect(res.statusCode).toBe(413);
    expect(await json(res)).toMatchObject({ status: 413, code: 'payload_too_large' });
    await waitFor(() => seen.get('over')!.closed, 2000);
    expect(seen.get('over')!.ended).toBe(false);
    expect(seen.get('over')!.bodyBytes).toBeLessThanOrEqual(LIMIT);
  });

  it('answers 413 to a chunked upload over the limit while the client is still sending, without reading it all', async () => {
    const total = 64 * MB;
    const { req, response } = start('POST', '/limited/chunked?id=streaming-over', {}, false);
    let sent = 0;
    let answered = false;
    response.then(
      () => (answered = true),
      () => (answered = true),
    );
    // The start streams on to the upstream; then the client goes on sending, far past the limit.
    req.write(Buffer.alloc(LIMIT / 2, 'c'));
    await waitFor(() => (seen.get('streaming-over')?.bodyBytes ?? 0) > 0, 3000);
    const chunk = Buffer.alloc(16 * 1024, 'c');
    const writing = (async () => {
      while (!answered && !req.destroyed && sent < total) {
        sent += chunk.length;
        if (!req.write(chunk)) await Promise.race([once(req, 'drain'), once(req, 'close')]);
      }
    })();
    writing.catch(() => {});
    const [res] = await response;
    expect(res.statusCode).toBe(413);
    expect(await json(res)).toMatchObject({ code: 'payload_too_large' });
    // The answer came long before the client could have sent everything.
    expect(sent).toBeLessThan(total);
    req.destroy();
    await waitFor(() => seen.get('streaming-over')?.closed, 2000);
    expect(seen.get('streaming-over')!.ended).toBe(false);
    expect(seen.get('streaming-over')!.bodyBytes).toBeLessThanOrEqual(LIMIT);
  });
});

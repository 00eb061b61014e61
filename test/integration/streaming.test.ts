/**
 * Streaming through keygate, with keygate in its own process (`keygate serve`) so that its
 * resident memory can be measured: 50 MB uploads (with and without Content-Length) and a
 * 50 MB download pass through without keygate's RSS growing by more than a few MB; a slow
 * reader (client or upstream) pushes back on the sender instead of making keygate buffer;
 * request bodies reach the upstream while the client is still sending; SSE events arrive
 * one by one; HEAD keeps the connection usable.
 *
 * About the RSS figures. V8 frees dead socket buffers lazily (64 KB each, external memory
 * that only a GC releases), so the first fast transfers after start raise RSS by 10-40 MB
 * whatever the proxy does; it then stays on that plateau (100 and 200 MB transfers do not
 * raise it further). A process on the plateau can also hide a whole buffered 50 MB body in
 * memory it already holds (measured with a deliberately buffering proxy: +0 to +45 MB).
 * So the checks here are: (1) after a warm-up that includes one 50 MB transfer each way,
 * further 50 MB transfers stay within 20 MB of the warm-up's peak — memory does not
 * accumulate per transfer; (2) the back-pressure tests — with the receiver stalled, the
 * sender stalls too, long before the end of a 200 MB body, and keygate's RSS stays flat
 * meanwhile — which is what proves that keygate never holds a body.
 */
import { createHash, type Hash } from 'node:crypto';
import { once } from 'node:events';
import { Agent, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/http.ts';
import { parseJsonOutput, runKeygate, sampleRss, spawnKeygate, tempDir, type KeygateProcess, type TempDir } from '../helpers/process.ts';
import { startUpstream, type TestUpstream } from '../helpers/upstream.ts';

const MB = 1024 * 1024;
const BIG = 50 * MB;
const CHUNK = 64 * 1024;
/** keygate's RSS may grow by less than this (over its warmed-up peak) while 50 MB pass through it. */
const MAX_GROWTH_MB = 20;
/**
 * The back-pressure tests send this much: more than the loopback socket buffers between the
 * two ends can absorb (they auto-tune up to tcp_rmem/tcp_wmem max, 32 MB + 4 MB here, and
 * were seen holding 10-40 MB), so only a sender that is really held back stalls before the end.
 */
const HUGE = 200 * MB;
const MAX_IN_FLIGHT = 100 * MB;

/**
 * A deterministic byte stream of `total` bytes, generated chunk by chunk (never held in
 * memory), with the SHA-256 of what it produced.
 */
class PatternSource extends Readable {
  readonly #total: number;
  #index = 0;
  readonly #hash: Hash | null;
  sent = 0;
  digest = '';

  constructor(total: number, hash = true) {
    super({ highWaterMark: CHUNK });
    this.#total = total;
    this.#hash = hash ? createHash('sha256') : null;
  }

  /** The next chunk, or null at the end. */
  next(): Buffer | null {
    if (this.sent >= this.#total) return null;
    const size = Math.min(CHUNK, this.#total - this.sent);
    const chunk = Buffer.allocUnsafe(size).fill(this.#index & 0xff);
    if (size >= 4) chunk.writeUInt32BE(this.#index, 0);
    this.#index++;
    this.sent += size;
    this.#hash?.update(chunk);
    if (this.sent >= this.#total && this.#hash) this.digest = this.#hash.digest('hex');
    return chunk;
  }

  override _read(): void {
    this.push(this.next());
  }
}

/** Progress of the download the upstream is serving. */
const download = { written: 0, done: false, digest: '' };
/** Bytes the upstream received so far on /s/interactive. */
const interactive = { received: 0 };
/** /s/held-upload: the upstream stops reading after 1 MB until `release()`. */
const held = { received: 0, release: () => {} };

async function serveDownload(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const query = new URL(req.url ?? '/', 'http://x').searchParams;
  const total = Number(query.get('bytes'));
  const source = new PatternSource(total, !query.has('nohash'));
  let closed = false;
  res.on('close', () => (closed = true));
  download.written = 0;
  download.done = false;
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': total });
  for (let chunk = source.next(); chunk !== null; chunk = source.next()) {
    download.written += chunk.length;
    if (!res.write(chunk)) {
      await new Promise<void>((resolve) => {
        const done = () => {
          res.off('drain', done);
          res.off('close', done);
          resolve();
        };
        res.on('drain', done);
        res.on('close', done);
      });
      if (closed) return;
    }
  }
  download.digest = source.digest;
  download.done = true;
  res.end();
}

/** Reads the request body; answers with its size, SHA-256 and framing headers. */
function hashBody(req: IncomingMessage, res: ServerResponse, onChunk?: (bytes: number) => void): void {
  const hash = onChunk ? null : createHash('sha256');
  let bytes = 0;
  req.on('data', (chunk: Buffer) => {
    bytes += chunk.length;
    hash?.update(chunk);
    onChunk?.(bytes);
  });
  req.on('end', () => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ bytes, sha256: hash?.digest('hex') ?? null, contentLength: req.headers['content-length'] ?? null, transferEncoding: req.headers['transfer-encoding'] ?? null }));
  });
}

function upstreamHandler(req: IncomingMessage, res: ServerResponse): void {
  const path = (req.url ?? '/').split('?')[0];
  if (path === '/s/upload') {
    hashBody(req, res);
  } else if (path === '/s/held-upload') {
    held.received = 0;
    let paused = false;
    let released = false;
    held.release = () => {
      released = true;
      req.resume();
    };
    hashBody(req, res, (bytes) => {
      held.received = bytes;
      if (bytes >= MB && !released && !paused) {
        paused = true;
        req.pause();
      }
    });
  } else if (path === '/s/download') {
    void serveDownload(req, res);
  } else if (path === '/s/interactive') {
    interactive.received = 0;
    req.on('data', (chunk: Buffer) => (interactive.received += chunk.length));
    req.on('end', () => res.end(JSON.stringify({ bytes: interactive.received })));
  } else if (path === '/s/sse') {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.flushHeaders();
    let i = 0;
    const timer = setInterval(() => {
      // The write time travels inside the event; the client compares it with its receipt time.
      res.write(`id: ${i}\nevent: tick\ndata: ${JSON.stringify({ i, t: performance.now() })}\n\n`);
      if (++i === 10) {
        clearInterval(timer);
        res.end();
      }
    }, 100);
    res.on('close', () => clearInterval(timer));
  } else if (path === '/s/head') {
    const body = 'x'.repeat(12_345);
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length, 'x-upstream-method': req.method ?? '' });
    req.resume();
    res.end(req.method === 'HEAD' ? undefined : body);
  } else {
    res.statusCode = 404;
    res.end();
  }
}

let dir: TempDir;
let upstream: TestUpstream;
let keygate: KeygateProcess;
let key: string;
const figures: Record<string, string> = {};

function url(path: string): URL {
  return new URL(path, keygate.url);
}

function post(path: string, headers: Record<string, string | number>) {
  const target = url(path);
  const req = httpRequest({ host: target.hostname, port: target.port, method: 'POST', path: target.pathname, headers: { 'x-api-key': key, ...headers }, agent: false });
  const response = once(req, 'response') as Promise<[IncomingMessage]>;
  // Keeps an early error from being unhandled; `response` and the pipeline still reject.
  response.catch(() => {});
  return { req, response };
}

async function readJson(res: IncomingMessage): Promise<any> {
  let text = '';
  for await (const chunk of res) text += String(chunk);
  return JSON.parse(text);
}

/** POSTs `body` to keygate; resolves with the status and the parsed JSON answer. */
async function upload(body: Readable, headers: Record<string, string | number>, path = '/s/upload'): Promise<{ status: number; json: any }> {
  const { req, response } = post(path, headers);
  await pipeline(body, req);
  const [res] = await response;
  return { status: res.statusCode ?? 0, json: await readJson(res) };
}

async function get(path: string, agent: Agent | false = false, method = 'GET'): Promise<IncomingMessage> {
  const target = url(path);
  const req = httpRequest({ host: target.hostname, port: target.port, method, path: target.pathname + target.search, headers: { 'x-api-key': key }, agent });
  req.end();
  const [res] = (await once(req, 'response')) as [IncomingMessage];
  return res;
}

async function drain(res: IncomingMessage, hashing = true): Promise<{ bytes: number; sha256: string | null }> {
  const hash = hashing ? createHash('sha256') : null;
  let bytes = 0;
  for await (const chunk of res as AsyncIterable<Buffer>) {
    bytes += chunk.length;
    hash?.update(chunk);
  }
  return { bytes, sha256: hash?.digest('hex') ?? null };
}

/** GETs `bytes` bytes through keygate; resolves with what arrived. */
async function downloadThrough(bytes: number, hashing = true): Promise<{ status: number; bytes: number; sha256: string | null }> {
  const res = await get(`/s/download?bytes=${bytes}${hashing ? '' : '&nohash'}`);
  return { status: res.statusCode ?? 0, ...(await drain(res, hashing)) };
}

/** The highest RSS (KiB) keygate reached during the warm-up. */
let warmPeakKb = 0;

/**
 * Runs `transfer` while sampling keygate's RSS, and asserts that it stays within
 * MAX_GROWTH_MB of where it was: the RSS just before, or the warm-up's peak if that was
 * higher (RSS drops when pages go back to the OS, and taking them again is not growth).
 */
async function withinMemory(label: string, transfer: () => Promise<void>): Promise<void> {
  const before = await keygate.rssKb();
  const baseline = Math.max(before, warmPeakKb);
  const sampler = sampleRss(keygate.pid, 10);
  const started = performance.now();
  let maxKb = 0;
  try {
    await transfer();
  } finally {
    ({ maxKb } = await sampler.stop());
    const mb = (kb: number) => (kb / 1024).toFixed(1);
    figures[label] = `RSS before ${mb(before)} MB (warm-up peak ${mb(warmPeakKb)}), max ${mb(maxKb)} MB: ${maxKb >= baseline ? '+' : ''}${mb(maxKb - baseline)} MB in ${Math.round(performance.now() - started)} ms`;
  }
  expect((maxKb - baseline) / 1024, `${label}: ${figures[label]}`).toBeLessThan(MAX_GROWTH_MB);
}

/**
 * Waits until `progress()` has not moved for `quietMs` (the transfer is stalled); returns
 * its value then. Throws if it is still moving after `timeoutMs`.
 */
async function stalled(progress: () => number, quietMs = 400, timeoutMs = 6000): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  let last = progress();
  let since = performance.now();
  while (performance.now() < deadline) {
    await sleep(50);
    const now = progress();
    if (now !== last) {
      last = now;
      since = performance.now();
    } else if (performance.now() - since >= quietMs) {
      return now;
    }
  }
  throw new Error(`the transfer never stalled: still moving at ${last} bytes after ${timeoutMs} ms`);
}

beforeAll(async () => {
  dir = tempDir();
  upstream = await startUpstream(upstreamHandler);
  const config = dir.writeYaml('keygate.yaml', {
    listen: { host: '127.0.0.1', port: 0 },
    admin: { host: '127.0.0.1', port: 0 },
    store: { path: `${dir.path}/data/keygate.db`, pollMs: 100 },
    routes: [{ name: 'stream', pathPrefix: '/s', upstream: upstream.url, maxBodyBytes: 256 * MB }],
  });
  keygate = await spawnKeygate(config);
  key = parseJsonOutput<{ key: string }>(await runKeygate(['keys', 'create', '--tenant', 'acme', '--name', 'stream', '--json', '--config', config])).key;
  // Warm-up (see the top of the file): the streaming code paths, the allocator and V8's
  // lazy freeing of socket buffers reach their steady state before anything is measured.
  const cold = await keygate.rssKb();
  const sampler = sampleRss(keygate.pid, 10);
  for (const size of [10 * MB, BIG]) {
    await upload(new PatternSource(size, false), { 'content-length': size });
    await upload(new PatternSource(size, false), {});
    await downloadThrough(size, false);
  }
  warmPeakKb = (await sampler.stop()).maxKb;
  figures['warm-up (10 MB and 50 MB each way, from cold)'] = `RSS ${(cold / 1024).toFixed(1)} MB → peak ${(warmPeakKb / 1024).toFixed(1)} MB`;
}, 20_000);

afterAll(async () => {
  try {
    await keygate?.stop();
    await upstream?.close();
  } finally {
    dir?.remove();
  }
  console.log(`streaming figures:\n${Object.entries(figures).map(([k, v]) => `  ${k}: ${v}`).join('\n')}`);
});

describe('streaming through keygate (separate process)', () => {
  it('streams a 50 MB upload with Content-Length, RSS growth < 20 MB', async () => {
    const source = new PatternSource(BIG);
    let result!: { status: number; json: any };
    await withinMemory('upload 50 MB (content-length)', async () => {
      result = await upload(source, { 'content-length': BIG });
    });
    expect(result.status).toBe(200);
    expect(result.json).toMatchObject({ bytes: BIG, sha256: source.digest, contentLength: String(BIG) });
  }, 15_000);

  it('streams a 50 MB chunked upload (no Content-Length), RSS growth < 20 MB', async () => {
    const source = new PatternSource(BIG);
    let result!: { status: number; json: any };
    await withinMemory('upload 50 MB (chunked)', async () => {
      result = await upload(source, {});
    });
    expect(result.status).toBe(200);
    expect(result.json).toMatchObject({ bytes: BIG, sha256: source.digest, contentLength: null, transferEncoding: 'chunked' });
  }, 15_000);

  it('streams a 50 MB download, RSS growth < 20 MB', async () => {
    let result!: { status: number; bytes: number; sha256: string | null };
    await withinMemory('download 50 MB', async () => {
      result = await downloadThrough(BIG);
    });
    expect(result).toEqual({ status: 200, bytes: BIG, sha256: download.digest });
  }, 15_000);

  it('a client that does not read stalls the upstream: keygate does not buffer the download', async () => {
    let res!: IncomingMessage;
    await withinMemory('download 200 MB, client not reading', async () => {
      res = await get(`/s/download?bytes=${HUGE}&nohash`);
      expect(res.statusCode).toBe(200);
      // The client reads nothing: the upstream must stop once the buffers between are full.
      const at = await stalled(() => download.written);
      figures['slow client: upstream stalled after'] = `${(at / MB).toFixed(2)} MB of 200 MB`;
      expect(download.done).toBe(false);
      expect(at).toBeLessThan(MAX_IN_FLIGHT);
    });
    // Then it reads everything.
    expect(await drain(res, false)).toEqual({ bytes: HUGE, sha256: null });
    expect(download.done).toBe(true);
  }, 15_000);

  it.each([
    ['with Content-Length', true],
    ['chunked', false],
  ])('an upstream that does not read stalls the client: keygate does not buffer the upload (%s)', async (label, withLength) => {
    const source = new PatternSource(HUGE, false);
    const done = upload(source, withLength ? { 'content-length': HUGE } : {}, '/s/held-upload');
    done.catch(() => {});
    try {
      await withinMemory(`upload 200 MB ${label}, upstream not reading`, async () => {
        await waitFor(() => held.received >= MB, 5000);
        // The upstream reads nothing more: the client must stop once the buffers between are full.
        const at = await stalled(() => source.sent);
        figures[`slow upstream (${label}): client stalled after`] = `${(at / MB).toFixed(2)} MB of 200 MB`;
        expect(at).toBeLessThan(MAX_IN_FLIGHT);
      });
    } finally {
      held.release();
    }
    // Then the upstream reads on, and everything arrives.
    const result = await done;
    expect(result.status).toBe(200);
    expect(result.json).toMatchObject({ bytes: HUGE });
  }, 15_000);

  it('forwards a chunked upload while the client is still sending', async () => {
    const { req, response } = post('/s/interactive', {});
    req.write(Buffer.alloc(1000, 'a'));
    // Not buffered: the upstream has the first chunk before the second is even written.
    await waitFor(() => interactive.received === 1000, 3000);
    req.write(Buffer.alloc(2000, 'b'));
    await waitFor(() => interactive.received === 3000, 3000);
    req.end();
    const [res] = await response;
    expect(res.statusCode).toBe(200);
    expect(await readJson(res)).toEqual({ bytes: 3000 });
  }, 10_000);

  it('delivers SSE events one by one, each within 50 ms of being written', async () => {
    const res = await get('/s/sse');
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/event-stream');
    expect(res.headers['x-accel-buffering']).toBe('no');
    const delays: number[] = [];
    const ids: number[] = [];
    let buffer = '';
    res.setEncoding('utf8');
    for await (const chunk of res as AsyncIterable<string>) {
      const now = performance.now();
      buffer += chunk;
      let end: number;
      while ((end = buffer.indexOf('\n\n')) !== -1) {
        const event = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const { i, t } = JSON.parse(/^data: (.*)$/m.exec(event)![1]!) as { i: number; t: number };
        ids.push(i);
        delays.push(now - t);
      }
    }
    figures['SSE delay'] = `max ${Math.max(...delays).toFixed(1)} ms, mean ${(delays.reduce((a, b) => a + b, 0) / delays.length).toFixed(1)} ms over ${delays.length} events`;
    expect(ids).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(Math.max(...delays), figures['SSE delay']).toBeLessThan(50);
  }, 10_000);

  it('answers HEAD with the upstream headers and no body, and keeps the connection usable', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const head = await get('/s/head', agent, 'HEAD');
      let headBody = '';
      for await (const chunk of head) headBody += String(chunk);
      expect(head.statusCode).toBe(200);
      expect(head.headers['content-length']).toBe('12345');
      expect(head.headers['x-upstream-method']).toBe('HEAD');
      expect(headBody).toBe('');
      // The same connection carries the next request: the HEAD answer was framed correctly.
      const target = url('/s/head');
      const req = httpRequest({ host: target.hostname, port: target.port, path: target.pathname, headers: { 'x-api-key': key }, agent });
      req.end();
      const [res] = (await once(req, 'response')) as [IncomingMessage];
      let body = '';
      for await (const chunk of res) body += String(chunk);
      expect(req.reusedSocket).toBe(true);
      expect(res.statusCode).toBe(200);
      expect(body.length).toBe(12_345);
    } finally {
      agent.destroy();
    }
  }, 10_000);
});

/**
 * Operations (issue 8) on the real command, `keygate serve` in its own process:
 *
 * - graceful shutdown: SIGTERM while a slow upstream request and an SSE stream are in
 *   flight → no new connections, the slow request completes with its whole body, the stream
 *   is ended cleanly when the grace period is over, the process logs its shutdown and exits
 *   0; with `shutdown.graceMs: 500` and an upstream that never answers, SIGINT still ends the
 *   process (0) shortly after the grace period;
 * - hot reload: edit the YAML and SIGHUP → the new route answers; an invalid file (YAML
 *   syntax or schema) → refused with the reason in the log, the old routes keep working;
 *   POST /v1/reload with a platform-admin key re-reads the file too.
 *
 * The three servers start together (two cores: start-up is most of the time).
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call } from '../helpers/admin.ts';
import { rawRequest, waitFor, type RawResponse } from '../helpers/http.ts';
import { freePorts, parseJsonOutput, runKeygate, spawnKeygate, tempDir, type KeygateProcess, type TempDir } from '../helpers/process.ts';
import { startUpstream, type TestUpstream } from '../helpers/upstream.ts';

const SLOW_MS = 1500;
/** 256 KB: more than one socket write, so "the full body" is a real check. */
const SLOW_BODY = Buffer.alloc(256 * 1024, 'abcdefghijklmnopqrstuvwxyz0123456789').toString();
const GRACE_A = 2500;
const GRACE_B = 500;

let dir: TempDir;
let slowUp: TestUpstream;
let sseUp: TestUpstream;
let hangUp: TestUpstream;
let echoUp: TestUpstream;
/** Upstream requests that ended (the socket closed), by path. */
const upstreamClosed = new Set<string>();

let a: KeygateProcess; // shutdown with in-flight work
let b: KeygateProcess; // shutdown with an upstream that never answers
let c: KeygateProcess; // reload
let cFile: string;
let rootKey: string;

/** 'connected', or the error code of a TCP connect. */
function connectResult(url: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect(Number(port), hostname);
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
  });
}

function lines(p: KeygateProcess, msg: string): Record<string, any>[] {
  return p.logLines().filter((l) => l.msg === msg);
}

function reloadConfig(routes: unknown[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    listen: { host: '127.0.0.1', port: 0 },
    admin: { host: '127.0.0.1', port: 0 },
    store: { path: join(dir.path, 'c', 'keygate.db'), pollMs: 100 },
    log: { level: 'info' },
    routes,
    ...extra,
  };
}

const route = (name: string, extra: Record<string, unknown> = {}) => ({ name, pathPrefix: `/${name}`, upstream: echoUp.url, auth: { required: false }, ...extra });

beforeAll(async () => {
  dir = tempDir('keygate-ops-');
  const track = (req: IncomingMessage) => req.socket.once('close', () => upstreamClosed.add(req.url ?? ''));
  [slowUp, sseUp, hangUp, echoUp] = await Promise.all([
    startUpstream((req, res) => {
      track(req);
      req.resume();
      setTimeout(() => {
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(SLOW_BODY) });
        res.end(SLOW_BODY);
      }, SLOW_MS);
    }),
    startUpstream((req, res) => {
      track(req);
      req.resume();
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      let n = 0;
      const timer = setInterval(() => res.write(`id: ${++n}\ndata: event ${n}\n\n`), 100);
      res.once('close', () => clearInterval(timer));
    }),
    startUpstream((req) => {
      track(req);
      req.resume(); // never answers
    }),
    startUpstream(),
  ]);
  const base = (name: string, graceMs: number, routes: unknown[]) =>
    dir.writeYaml(`${name}.yaml`, {
      listen: { host: '127.0.0.1', port: 0 },
      admin: { host: '127.0.0.1', port: 0 },
      store: { path: join(dir.path, name, 'keygate.db') },
      log: { level: 'info' },
      shutdown: { graceMs },
      routes,
    });
  const aFile = base('a', GRACE_A, [
    { name: 'slow', pathPrefix: '/slow', upstream: slowUp.url, auth: { required: false } },
    { name: 'sse', pathPrefix: '/sse', upstream: sseUp.url, auth: { required: false } },
  ]);
  const bFile = base('b', GRACE_B, [{ name: 'hang', pathPrefix: '/hang', upstream: hangUp.url, auth: { required: false } }]);
  cFile = dir.writeYaml('c.yaml', reloadConfig([route('one')]));
  let created: { key: string };
  [a, b, created] = await Promise.all([
    spawnKeygate(aFile),
    spawnKeygate(bFile),
    runKeygate(['keys', 'create', '--tenant', 'system', '--role', 'admin', '--name', 'root', '--json', '--config', cFile]).then((r) => parseJsonOutput<{ key: string }>(r)),
  ]);
  rootKey = created.key;
  c = await spawnKeygate(cFile);
});

afterAll(async () => {
  await Promise.all([a?.stop('SIGKILL'), b?.stop('SIGKILL'), c?.stop('SIGKILL')]);
  await Promise.all([slowUp?.close(), sseUp?.close(), hangUp?.close(), echoUp?.close()]);
  dir?.remove();
});

interface SseClient {
  /** Everything received so far. */
  text(): string;
  /** Resolves when the response ends cleanly ('end'), with the time; rejects if it is cut off. */
  ended: Promise<number>;
}

function openSse(base: string, path: string): Promise<SseClient> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: url.hostname, port: url.port, path, headers: { accept: 'text/event-stream' }, agent: false });
    req.on('error', reject);
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      const ended = new Promise<number>((done, fail) => {
        res.on('end', () => done(performance.now()));
        res.on('aborted', () => fail(new Error('the stream was aborted, not ended')));
        res.on('error', fail);
      });
      ended.catch(() => {});
      res.on('data', (s: string) => (text += s));
      resolve({ text: () => text, ended });
    });
    req.end();
  });
}

describe('graceful shutdown', () => {
  it('SIGTERM: new connections refused, the slow request completes with its full body, the SSE stream is ended at the end of the grace period, exit 0', async () => {
    const sse = await openSse(a.url, '/sse/feed');
    await waitFor(() => sse.text().includes('data: event 2'), 3000);

    let slowDone = false;
    const slowStarted = performance.now();
    const slow = rawRequest(a.url, { path: '/slow/report?x=1' }).then((res) => {
      slowDone = true;
      return res;
    });
    await waitFor(() => slowUp.received.length === 1, 2000);

    // Before the signal, the listener accepts connections.
    expect(await connectResult(a.url)).toBe('connected');
    const signalled = performance.now();
    a.child.kill('SIGTERM');

    // New connections are refused almost at once, while the slow request is still running.
    await waitFor(async () => (await connectResult(a.url)) === 'ECONNREFUSED', 1000, 20);
    expect(slowDone).toBe(false);

    const res: RawResponse = await slow;
    expect(res.status).toBe(200);
    expect(res.headers['content-length']).toBe(String(SLOW_BODY.length));
    expect(res.body.length).toBe(SLOW_BODY.length);
    expect(res.body === SLOW_BODY).toBe(true);
    expect(performance.now() - slowStarted).toBeGreaterThanOrEqual(SLOW_MS - 50);

    // The stream stays open through the grace period, then ends cleanly (not cut).
    const streamEnded = await sse.ended;
    const afterSignal = streamEnded - signalled;
    expect(afterSignal).toBeGreaterThanOrEqual(GRACE_A - 100);
    expect(afterSignal).toBeLessThan(GRACE_A + 1000);
    const text = sse.text();
    expect(text.endsWith('\n\n'), 'the last event is whole').toBe(true);
    const events = text.split('\n\n').filter(Boolean);
    expect(events.length).toBeGreaterThan(GRACE_A / 100 / 2); // events kept flowing during the grace period
    await waitFor(() => upstreamClosed.has('/sse/feed'), 2000); // and its upstream request was stopped

    const exit = await a.exited;
    expect(exit).toEqual({ code: 0, signal: null });
    expect(performance.now() - signalled).toBeLessThan(GRACE_A + 3000);
    expect(a.stderr()).toBe('');

    const shutdown = lines(a, 'shutting down: finishing in-flight requests');
    expect(shutdown).toHaveLength(1);
    expect(shutdown[0]).toMatchObject({ level: 'info', signal: 'SIGTERM', graceMs: GRACE_A });
    expect(lines(a, 'grace period over: ended open event streams')).toMatchObject([{ streams: 1 }]);
    expect(lines(a, 'keygate stopped')).toHaveLength(1);
    // The access log has both requests, each finished (not 499), the slow one without its query.
    const access = a.logLines().filter((l) => l.log === 'access');
    expect(access.find((l) => l.route === 'slow')).toMatchObject({ status: 200, path: '/slow/report' });
    expect(access.find((l) => l.route === 'sse')).toMatchObject({ status: 200, path: '/sse/feed' });
    // Order: the shutdown line, then the stream end, then "stopped".
    const order = a.logLines().map((l) => l.msg);
    expect(order.indexOf('shutting down: finishing in-flight requests')).toBeLessThan(order.indexOf('grace period over: ended open event streams'));
    expect(order.indexOf('grace period over: ended open event streams')).toBeLessThan(order.indexOf('keygate stopped'));
  });

  it('graceMs: 500 and an upstream that never answers: SIGINT still ends the process (exit 0) right after the grace period', async () => {
    const hung = rawRequest(b.url, { path: '/hang/forever' }).then(
      (res) => `status ${res.status}`,
      (error: NodeJS.ErrnoException) => error.code ?? error.message,
    );
    await waitFor(() => hangUp.received.length === 1, 2000);
    const signalled = performance.now();
    b.child.kill('SIGINT');
    const exit = await b.exited;
    const took = performance.now() - signalled;
    expect(exit).toEqual({ code: 0, signal: null });
    expect(took).toBeGreaterThanOrEqual(GRACE_B - 50); // the request was given its grace period …
    expect(took).toBeLessThan(GRACE_B + 1500); // … and no more
    // The client's connection was closed, and so was the upstream request.
    expect(await hung).toMatch(/ECONNRESET|socket hang up/);
    await waitFor(() => upstreamClosed.has('/hang/forever'), 2000);
    expect(lines(b, 'shutting down: finishing in-flight requests')).toMatchObject([{ signal: 'SIGINT', graceMs: GRACE_B }]);
    expect(lines(b, 'keygate stopped')).toHaveLength(1);
    expect(await connectResult(b.url)).toBe('ECONNREFUSED');
    expect(await connectResult(b.adminUrl)).toBe('ECONNREFUSED');
  });
});

describe('hot reload of a running serve', () => {
  async function hup(): Promise<void> {
    c.child.kill('SIGHUP');
  }

  it('edit the YAML, SIGHUP: the new route answers, the old one still does', async () => {
    expect((await rawRequest(c.url, { path: '/two/x' })).status).toBe(404);
    dir.writeYaml('c.yaml', reloadConfig([route('one'), route('two')]));
    await hup();
    const res = await waitFor(async () => {
      const r = await rawRequest(c.url, { path: '/two/x' });
      return r.status === 200 ? r : null;
    }, 3000, 20);
    expect(res.json.url).toBe('/two/x');
    expect((await rawRequest(c.url, { path: '/one/x' })).status).toBe(200);
    const reloaded = await waitFor(() => lines(c, 'configuration reloaded')[0], 2000, 20);
    expect(reloaded).toMatchObject({ level: 'info', applied: ['routes'], restartNeeded: [], routes: ['one', 'two'] });
    expect(c.child.exitCode).toBeNull();
  });

  it('a YAML syntax error: refused, the reason logged, the old routes keep working', async () => {
    dir.writeYaml('c.yaml', 'routes:\n  - name: three\n    pathPrefix: [unclosed\n');
    await hup();
    const refused = await waitFor(() => lines(c, 'reload refused: the new configuration is invalid; the old one stays in force')[0], 3000, 20);
    expect(refused.level).toBe('error');
    expect(refused.problems.join('\n')).toMatch(/YAML syntax/);
    expect((await rawRequest(c.url, { path: '/one/x' })).status).toBe(200);
    expect((await rawRequest(c.url, { path: '/two/x' })).status).toBe(200);
    expect(c.child.exitCode).toBeNull();
  });

  it('an invalid config (schema): refused naming the field, the old routes keep working', async () => {
    dir.writeYaml('c.yaml', reloadConfig([route('one'), { name: 'bad', pathPrefix: '/bad', upstream: 'not a url' }]));
    await hup();
    const refused = await waitFor(() => lines(c, 'reload refused: the new configuration is invalid; the old one stays in force')[1], 3000, 20);
    expect(refused.problems).toEqual([expect.stringContaining('routes[1].upstream')]);
    // "two" is still there: the refused file (which dropped it) did not apply at all.
    expect((await rawRequest(c.url, { path: '/two/x' })).status).toBe(200);
    expect((await rawRequest(c.url, { path: '/bad/x' })).status).toBe(404);
    expect(lines(c, 'configuration reloaded')).toHaveLength(1);
  });

  it('a section that needs a restart is logged as such and keeps its running value', async () => {
    const [port] = (await freePorts(1)) as [number];
    dir.writeYaml('c.yaml', reloadConfig([route('one'), route('two')], { listen: { host: '127.0.0.1', port } }));
    await hup();
    const warning = await waitFor(() => lines(c, 'these config changes take effect only after a restart')[0], 3000, 20);
    expect(warning).toMatchObject({ level: 'warn', sections: ['listen'] });
    expect(await connectResult(`http://127.0.0.1:${port}`)).toBe('ECONNREFUSED');
    expect((await rawRequest(c.url, { path: '/two/x' })).status).toBe(200);
  });

  it('POST /v1/reload with a platform-admin key re-reads the file: 200 {applied, restartNeeded}', async () => {
    dir.writeYaml('c.yaml', reloadConfig([route('one'), route('two'), route('four')]));
    const res = await call(c.adminUrl, 'POST', '/v1/reload', { key: rootKey });
    expect(res.status, res.text).toBe(200);
    expect(res.json).toEqual({ applied: ['routes'], restartNeeded: [] });
    expect((await rawRequest(c.url, { path: '/four/x' })).status).toBe(200);

    dir.writeYaml('c.yaml', reloadConfig([{ name: 'one', pathPrefix: 'nope', upstream: echoUp.url }]));
    const bad = await call(c.adminUrl, 'POST', '/v1/reload', { key: rootKey });
    expect(bad.status, bad.text).toBe(422);
    expect(bad.json).toMatchObject({ code: 'validation_failed', detail: expect.stringContaining('routes[0].pathPrefix') });
    expect((await rawRequest(c.url, { path: '/four/x' })).status).toBe(200);
  });

  it('SIGTERM after reloads: exit 0', async () => {
    expect(await c.stop('SIGTERM', 8000)).toEqual({ code: 0, signal: null });
    expect(c.stderr()).toBe('');
  });
});

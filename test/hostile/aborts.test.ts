/**
 * Faults in what keygate depends on, part 1: clients that give up. 1,000 clients abort
 * mid-upload (headers and part of a 1 MB body sent, then the connection is reset) and
 * 1,000 mid-download (the first bytes of a 4 MB response read, then reset), 50 at a time,
 * through a keygate in its own process. Afterwards every upstream request must have been
 * abandoned (none left hanging = no leaked upstream connection), keygate's TCP sockets and
 * file descriptors must be back to what they were, and its heap (after a GC) flat.
 */
import { once } from 'node:events';
import { request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/http.ts';
import { handles, spawnProbedKeygate, type Probe, type ProbedKeygate } from './helpers/child.ts';
import { closeAll } from '../helpers/close.ts';
import { serveLocal, type LocalServer } from '../helpers/upstream.ts';

const ABORTS = 1000;
const CONCURRENCY = 50;
const MB = 1024 * 1024;

const upstreamState = { started: 0, finished: 0, abandoned: 0 };
let upstream: LocalServer;
let kg: ProbedKeygate;
let key: string;

function connections(server: Server): Promise<number> {
  return new Promise((resolve, reject) => server.getConnections((error, n) => (error ? reject(error) : resolve(n))));
}

beforeAll(async () => {
  upstream = await serveLocal((req, res) => {
    upstreamState.started++;
    res.on('close', () => {
      if (res.writableFinished) upstreamState.finished++;
      else upstreamState.abandoned++;
    });
    if (req.url!.startsWith('/api/download')) {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': 4 * MB });
      const chunk = Buffer.alloc(64 * 1024, '.');
      let sent = 0;
      const pump = () => {
        while (sent < 4 * MB) {
          sent += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
      return;
    }
    req.resume();
    req.on('end', () => res.end('ok'));
  });
  // Idle keep-alive connections are closed quickly, so "back to baseline" means zero.
  upstream.server.keepAliveTimeout = 200;
  kg = await spawnProbedKeygate('aborts', {
    log: { level: 'info', access: true },
    limits: { failedAuth: { max: 0 } },
    routes: [{ name: 'api', pathPrefix: '/api', upstream: upstream.url, maxBodyBytes: 8 * MB }],
  });
  key = await kg.createKey('acme', 'aborts');
}, 30_000);

afterAll(() => closeAll(kg, upstream));

/** Starts a request, lets `progress` bytes pass in its direction, then resets the connection. */
function abortAfter(kind: 'upload' | 'download', progress: number): Promise<void> {
  const url = new URL(kg.url);
  return new Promise((resolve) => {
    const req = httpRequest({
      host: url.hostname,
      port: url.port,
      method: kind === 'upload' ? 'POST' : 'GET',
      path: `/api/${kind}`,
      headers: { 'x-api-key': key, ...(kind === 'upload' ? { 'content-length': MB } : {}) },
      agent: false,
    });
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      req.destroy();
      resolve();
    };
    req.on('error', finish);
    req.on('close', finish);
    if (kind === 'upload') {
      req.write(Buffer.alloc(progress, '.'), () => setTimeout(() => req.socket?.resetAndDestroy(), 5));
    } else {
      req.end();
      req.on('response', (res: IncomingMessage) => {
        let got = 0;
        res.on('data', (chunk: Buffer) => {
          got += chunk.length;
          if (got >= progress) req.socket?.resetAndDestroy();
        });
      });
    }
    setTimeout(finish, 10_000).unref();
  });
}

async function storm(kind: 'upload' | 'download', total: number): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < total) {
        next++;
        await abortAfter(kind, 32 * 1024 + Math.floor(Math.random() * 64 * 1024));
      }
    }),
  );
}

async function settled(): Promise<Probe> {
  await waitFor(() => upstreamState.started === upstreamState.finished + upstreamState.abandoned, 10_000, 20).catch((error: Error) => {
    throw new Error(`${error.message}: upstream requests ${JSON.stringify(upstreamState)}`);
  });
  await waitFor(async () => (await connections(upstream.server)) === 0, 10_000, 20);
  let probe = await kg.probe();
  // Closed sockets leave the handle list on the next loop turns.
  for (let i = 0; i < 50 && handles(probe) > baselineSockets; i++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    probe = await kg.probe();
  }
  return probe;
}

let baselineSockets = 0;
const figures: string[] = [];

describe('clients aborting mid-transfer', () => {
  it(`${ABORTS} aborted uploads and ${ABORTS} aborted downloads leave no upstream request, socket or memory behind`, async () => {
    // Warm-up: both paths once at small scale, so that lazily built state exists.
    await storm('upload', 100);
    await storm('download', 100);
    baselineSockets = Infinity;
    await settled();
    const before = await kg.probe();
    baselineSockets = handles(before);
    upstreamState.started = upstreamState.finished = upstreamState.abandoned = 0;
    for (const kind of ['upload', 'download'] as const) {
      const t0 = Date.now();
      const { abandoned, finished } = upstreamState;
      await storm(kind, ABORTS);
      const after = await settled();
      figures.push(
        `${kind}: ${ABORTS} aborted in ${Date.now() - t0} ms; upstream requests abandoned ${upstreamState.abandoned - abandoned}, finished ${upstreamState.finished - finished} (all bytes sent before the reset arrived); ` +
          `keygate sockets ${handles(before)} → ${handles(after)}, fds ${before.fds} → ${after.fds}, heap ${(before.heapUsed / MB).toFixed(1)} → ${(after.heapUsed / MB).toFixed(1)} MB, rss ${(before.rss / MB).toFixed(0)} → ${(after.rss / MB).toFixed(0)} MB`,
      );
      expect(handles(after), kind).toBe(handles(before));
      expect(after.fds, kind).toBeLessThanOrEqual(before.fds);
      expect((after.heapUsed - before.heapUsed) / MB, kind).toBeLessThan(8);
    }
    console.log(`[hostile aborts]\n  ${figures.join('\n  ')}`);
    // Every upstream request was either completed or abandoned: none is still open.
    expect(upstreamState.started).toBe(upstreamState.finished + upstreamState.abandoned);
    // Aborted uploads always leave an upstream request to abandon; a download of 32-96 KB can be
    // written whole into the socket buffers before the reset arrives (then it is 'finished').
    expect(upstreamState.abandoned).toBeGreaterThan(ABORTS / 2);
  }, 180_000);
});

/**
 * `workers: 2` on the real command: event streams spread over both worker processes all end,
 * between two events, when their key is revoked through the admin API — whichever worker
 * answered the revocation, the other learns it from the store's feed (embedded store:
 * `store.pollMs`) and ends its own streams. Eight streams on eight connections land on
 * both workers unless the kernel's SO_REUSEPORT spread puts them all on one (1 in 128).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { waitFor } from '../helpers/http.ts';
import { freePorts, parseJsonOutput, runKeygate, spawnKeygate, tempDir, type KeygateProcess, type TempDir } from '../helpers/process.ts';
import { openStream, writeEvents, type Stream } from '../helpers/streams.ts';
import { startUpstream, type TestUpstream } from '../helpers/upstream.ts';

const STREAMS = 8;
const POLL_MS = 100;

let dir: TempDir;
let up: TestUpstream;
let serve: KeygateProcess, configFile: string;

function events(req: IncomingMessage, res: ServerResponse): void {
  req.resume();
  res.writeHead(200, { 'content-type': 'text/event-stream' });
  writeEvents(res);
}

function open(path: string, key: string): Promise<Stream> {
  return openStream(serve.url, path, { 'x-api-key': key }, 'utf8');
}

async function cli(args: string[]): Promise<{ key: string; id: string }> {
  return parseJsonOutput(await runKeygate([...args, '--json', '--config', configFile]));
}

beforeAll(async () => {
  dir = tempDir('keygate-stream-workers-');
  up = await startUpstream(events);
  const [listen, admin] = (await freePorts(2)) as [number, number];
  configFile = dir.writeYaml('keygate.yaml', {
    workers: 2,
    listen: { host: '127.0.0.1', port: listen },
    admin: { host: '127.0.0.1', port: admin },
    store: { path: join(dir.path, 'data', 'keygate.db'), pollMs: POLL_MS },
    log: { level: 'info' },
    shutdown: { graceMs: 500 },
    routes: [{ name: 'sse', pathPrefix: '/sse', upstream: up.url }],
  });
  serve = await spawnKeygate(configFile, { timeoutMs: 15_000 });
  await waitFor(() => new Set(serve.logLines().filter((l) => l.msg === 'keygate listening').map((l) => l.pid)).size === 2, 10_000, 20);
});

afterAll(async () => {
  await serve?.stop();
  await up?.close();
  dir?.remove();
});

it('a key revoked through the admin API ends its event streams on both workers, between two events', async () => {
  const root = await cli(['keys', 'create', '--tenant', 'system', '--role', 'admin', '--name', 'root']);
  const victim = await cli(['keys', 'create', '--tenant', 'acme', '--name', 'victim']);
  const streams = await Promise.all(Array.from({ length: STREAMS }, (_, i) => open(`/sse/${i}`, victim.key)));
  await Promise.all(streams.map((s) => s.until('second half of 2\n\n')));
  const t0 = performance.now();
  const res = await fetch(`${serve.adminUrl}/v1/keys/${victim.id}/revoke`, { method: 'POST', headers: { 'x-api-key': root.key } });
  const answered = performance.now() - t0;
  expect(res.status).toBe(200);
  const ends = await Promise.all(streams.map((s) => s.ended));
  const lags = ends.map((end) => end.at - t0).sort((x, y) => x - y);
  console.log(`[keygate sse workers: 2] revoke through the admin API (answered in ${answered.toFixed(0)} ms) → ${STREAMS} event streams ended after ${lags[0]!.toFixed(0)}–${lags.at(-1)!.toFixed(0)} ms (store.pollMs ${POLL_MS})`);
  for (const end of ends) {
    expect(end.complete).toBe(true);
    expect(end.text.endsWith('\n\n')).toBe(true);
    for (const event of end.text.split('\n\n').slice(0, -1)) expect(event).toMatch(/^id: (\d+)\ndata: first half of \1\ndata: second half of \1$/);
  }
  // The revocation is written by the time the admin API answers; the other worker polls for it.
  expect(lags.at(-1)! - answered).toBeLessThan(POLL_MS + 300);
  // The streams were served by both workers (the access line names the process).
  await waitFor(() => serve.logLines().filter((l) => l.log === 'access' && l.route === 'sse').length === STREAMS, 3000, 20);
  const pids = new Set(serve.logLines().filter((l) => l.log === 'access' && l.route === 'sse').map((l) => l.pid));
  expect(pids.size).toBe(2);
});

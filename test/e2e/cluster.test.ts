/**
 * `workers: 2` (issue 8), on the real command: the serve process becomes a primary with two
 * worker processes (its children) sharing the listeners; connections are spread over both;
 * `/metrics` sums `keygate_requests_total` across workers, whichever worker answers the
 * scrape; a worker killed with SIGKILL is replaced and requests keep succeeding meanwhile;
 * SIGHUP to the primary reloads every worker; SIGTERM to the primary drains and stops them
 * all (an in-flight request completes) and exits 0.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rawRequest, waitFor } from '../helpers/http.ts';
import { freePorts, spawnKeygate, tempDir, type KeygateProcess, type TempDir } from '../helpers/process.ts';
import { startUpstream, type TestUpstream } from '../helpers/upstream.ts';

const N = 40;
const SLOW_MS = 700;

let dir: TempDir;
let up: TestUpstream;
let slowUp: TestUpstream;
let serve: KeygateProcess, configFile: string;
let ports: { listen: number; admin: number };

function config(routes: unknown[]): Record<string, unknown> {
  return {
    workers: 2,
    listen: { host: '127.0.0.1', port: ports.listen },
    admin: { host: '127.0.0.1', port: ports.admin },
    store: { path: join(dir.path, 'data', 'keygate.db'), pollMs: 100 },
    log: { level: 'info' },
    shutdown: { graceMs: 3000 },
    routes: [
      { name: 'counted', pathPrefix: '/counted', upstream: up.url, auth: { required: false } },
      { name: 'spread', pathPrefix: '/spread', upstream: up.url, auth: { required: false } },
      { name: 'slow', pathPrefix: '/slow', upstream: slowUp.url, auth: { required: false } },
      ...routes,
    ],
  };
}

/** The pids of the serve process's children (its workers), sorted. */
function children(): number[] {
  try {
    return execFileSync('pgrep', ['-P', String(serve.pid)], { encoding: 'utf8' })
      .split('\n')
      .filter(Boolean)
      .map(Number)
      .sort((x, y) => x - y);
  } catch {
    return []; // pgrep exits 1 when there are none
  }
}

function alive(pid: number): boolean {
  // A reaped process has no /proc entry; a zombie has one with state Z.
  if (!existsSync(`/proc/${pid}`)) return false;
  try {
    return !/^State:\s+Z/m.test(execFileSync('cat', [`/proc/${pid}/status`], { encoding: 'utf8' }));
  } catch {
    return false;
  }
}

function logged(msg: string): Record<string, any>[] {
  return serve.logLines().filter((l) => l.msg === msg);
}

/** Pids of the workers that logged "keygate listening". */
function listeningPids(): number[] {
  return logged('keygate listening').map((l) => Number(l.pid));
}

/** Sum of every sample of `name` whose labels include all of `labels`. */
function metricSum(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

/**
 * GET on a new connection (so the primary hands each to the next worker): the status, or
 * the connection error's code, or 'timeout' when nothing came back within `timeoutMs`.
 */
function get(path: string, timeoutMs = 5000): Promise<number | string> {
  const url = new URL(serve.url);
  return new Promise((resolve) => {
    const req = httpGet({ host: url.hostname, port: url.port, path, agent: false, timeout: timeoutMs }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
    });
    req.on('timeout', () => {
      req.destroy();
      resolve('timeout');
    });
    req.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
  });
}

/** `n` requests one after the other. */
async function burst(path: string, n: number): Promise<(number | string)[]> {
  const statuses: (number | string)[] = [];
  for (let i = 0; i < n; i++) statuses.push(await get(`${path}/${i}`));
  return statuses;
}

/** The pids found in access lines of `route`. */
function accessPids(route: string): Set<number> {
  return new Set(
    serve
      .logLines()
      .filter((l) => l.log === 'access' && l.route === route)
      .map((l) => Number(l.pid)),
  );
}

beforeAll(async () => {
  dir = tempDir('keygate-cluster-');
  [up, slowUp] = await Promise.all([
    startUpstream(),
    startUpstream((req, res) => {
      req.resume();
      setTimeout(() => res.end('slow done'), SLOW_MS);
    }),
  ]);
  const [listen, admin] = (await freePorts(2)) as [number, number];
  ports = { listen, admin };
  configFile = dir.writeYaml('keygate.yaml', config([]));
  serve = await spawnKeygate(configFile, { timeoutMs: 15_000 });
  // spawnKeygate returns on the first worker's line; wait for the second.
  await waitFor(() => new Set(listeningPids()).size === 2, 10_000, 20);
});

afterAll(async () => {
  const workers = serve ? children() : [];
  await serve?.stop('SIGKILL');
  for (const pid of workers) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  await Promise.all([up?.close(), slowUp?.close()]);
  dir?.remove();
});

describe('workers: 2', () => {
  it('runs two worker processes, children of the serve process', () => {
    const pids = children();
    expect(pids).toHaveLength(2);
    expect(pids).toEqual([...new Set(listeningPids())].sort((x, y) => x - y));
    expect(pids).not.toContain(serve.pid);
    expect(logged('keygate primary started')).toMatchObject([{ pid: serve.pid, workers: 2 }]);
  });

  it('spreads connections over both workers; /metrics sums keygate_requests_total across them', async () => {
    const statuses = await burst('/counted', N);
    expect(statuses).toEqual(Array(N).fill(200));
    // Both workers served some (the access log names the process).
    const workers = children();
    await waitFor(() => workers.every((pid) => accessPids('counted').has(pid)), 3000, 20);
    const perWorker = workers.map((pid) => serve.logLines().filter((l) => l.log === 'access' && l.route === 'counted' && l.pid === pid).length);
    expect(Math.min(...perWorker)).toBeGreaterThan(0);

    // Exactly N in total, whichever worker answers the scrape (new connection each time).
    for (let i = 0; i < 4; i++) {
      const res = await rawRequest(`http://127.0.0.1:${ports.admin}`, { path: '/metrics' });
      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toMatch(/^text\/plain/);
      expect(metricSum(res.body, 'keygate_requests_total', { route: 'counted' })).toBe(N);
      expect(metricSum(res.body, 'keygate_requests_total', { route: 'counted', status_class: '2xx', outcome: 'public' })).toBe(N);
      // The per-worker process metrics are there too (prom-client's defaults, aggregated).
      expect(res.body).toMatch(/^process_cpu_user_seconds_total \d/m);
    }
  });

  it('a worker killed with SIGKILL is replaced; requests keep succeeding meanwhile', async () => {
    const [victim, survivor] = children() as [number, number];
    const exitsBefore = logged('worker exited; starting a new one').length;
    process.kill(victim, 'SIGKILL');
    // Once the primary has seen the death, and while it starts the replacement:
    const noticed = await waitFor(() => logged('worker exited; starting a new one')[exitsBefore], 3000, 10);
    expect(noticed).toMatchObject({ level: 'error', worker: victim, signal: 'SIGKILL' });
    const during = await burst('/spread', 20);
    expect(during).toEqual(Array(20).fill(200));

    const replacement = await waitFor(() => {
      const pids = children();
      return pids.length === 2 && !pids.includes(victim) && pids.includes(survivor) ? pids.find((p) => p !== survivor) : undefined;
    }, 10_000, 20);
    expect(alive(victim)).toBe(false);
    await waitFor(() => listeningPids().includes(replacement), 10_000, 20);

    // The new worker takes its share of the connections. The kernel picks the worker by a
    // hash of each connection (SO_REUSEPORT), so keep opening connections, all of which must
    // succeed, until one of them has reached the replacement.
    await waitFor(async () => {
      expect(await burst('/spread', 10)).toEqual(Array(10).fill(200));
      return accessPids('spread').has(replacement);
    }, 10_000, 50);
  });

  it('connections handed to a worker that dies before taking them are not left hanging', async () => {
    // A worker that is busy (its event loop blocked: here SIGSTOP) is still handed new
    // connections by the primary; if it then dies (OOM killer, crash), those connections
    // must be served by another worker or at least closed, never left open forever.
    const [victim, survivor] = children() as [number, number];
    const exitsBefore = logged('worker exited; starting a new one').length;
    process.kill(victim, 'SIGSTOP');
    let results: (number | string)[];
    try {
      const pending = Promise.all([0, 1, 2, 3].map((i) => get(`/spread/stalled-${i}`, 3000)));
      await new Promise((resolve) => setTimeout(resolve, 200));
      process.kill(victim, 'SIGKILL');
      results = await pending;
    } finally {
      try {
        process.kill(victim, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    // Whatever happened, the cluster is back to two workers before the next test.
    await waitFor(() => logged('worker exited; starting a new one').length > exitsBefore, 3000, 10);
    const replacement = await waitFor(() => {
      const pids = children();
      return pids.length === 2 && !pids.includes(victim) && pids.includes(survivor) ? pids.find((p) => p !== survivor) : undefined;
    }, 10_000, 20);
    await waitFor(() => listeningPids().includes(replacement), 10_000, 20);

    expect(results.filter((r) => r === 'timeout'), `results: ${JSON.stringify(results)}`).toEqual([]);
  });

  it('SIGHUP to the primary reloads every worker', async () => {
    const workers = children();
    expect(workers).toHaveLength(2);
    expect((await rawRequest(serve.url, { path: '/added/x' })).status).toBe(404);
    dir.writeYaml('keygate.yaml', config([{ name: 'added', pathPrefix: '/added', upstream: up.url, auth: { required: false } }]));
    serve.child.kill('SIGHUP');
    await waitFor(() => {
      const pids = new Set(logged('configuration reloaded').map((l) => Number(l.pid)));
      return workers.every((pid) => pids.has(pid));
    }, 5000, 20);
    expect(await burst('/added', 10)).toEqual(Array(10).fill(200));
    // The kernel spreads connections over the workers at random (SO_REUSEPORT): ten can all
    // land on one. Keep asking until each worker has served the new route (a worker that had
    // not reloaded would answer 404 with no route, and never show up here).
    await waitFor(async () => {
      const served = accessPids('added');
      if (workers.every((pid) => served.has(pid))) return true;
      expect(await get('/added/more')).toBe(200);
      return false;
    }, 5000, 20);
    expect(serve.child.exitCode).toBeNull();
  });

  it('SIGTERM to the primary: an in-flight request completes, every worker stops, exit 0', async () => {
    const workers = children();
    expect(workers).toHaveLength(2);
    const inFlight = rawRequest(serve.url, { path: '/slow/x' });
    await waitFor(() => slowUp.received.length === 1, 3000);
    serve.child.kill('SIGTERM');
    const res = await inFlight;
    expect(res.status).toBe(200);
    expect(res.body).toBe('slow done');
    const exit = await Promise.race([serve.exited, new Promise((resolve) => setTimeout(resolve, 8000, 'timeout'))]);
    expect(exit).toEqual({ code: 0, signal: null });
    for (const pid of workers) expect(alive(pid), `worker ${pid} is gone`).toBe(false);
    expect(logged('stopping workers')).toMatchObject([{ pid: serve.pid, signal: 'SIGTERM' }]);
    expect(logged('all workers stopped')).toHaveLength(1);
    const stopped = new Set(logged('keygate stopped').map((l) => Number(l.pid)));
    for (const pid of workers) expect(stopped.has(pid), `worker ${pid} logged "keygate stopped"`).toBe(true);
  });
});

/**
 * Attacks whose answer can depend on how many keygate processes there are, against the real
 * `keygate serve` command in two topologies:
 *
 *  (a) `workers: 2` on the embedded store: two worker processes share the listeners
 *      (SO_REUSEPORT, the kernel picks one per connection), each with its own cache, its own
 *      failed-auth count, and revocations made by the other seen within `store.pollMs`;
 *  (b) two instances on one redis-server: revocations pushed to every instance.
 *
 * Which process answered is never guessed: proxy requests carry a unique path, found in the
 * access log with its pid; admin calls and event streams are traced to the process holding
 * the server end of their connection (`ss`, helpers/spawned.ts). Every case runs on every
 * process:
 *
 *  1. the failure limit is counted per process: a flood of made-up keys from one address over
 *     many connections costs the store at most `max` lookups per process plus those already
 *     in flight (keygate_store_lookups_total summed over the processes, equal to the 401s;
 *     on Redis also HGETALL in INFO commandstats), and a key that works, used before from
 *     that same address, is served on every process throughout and after, while blocked.
 *     A working key seen by one worker only is served by the other as well (workers share
 *     the keys they learn); one seen by one instance only is answered 429, without a lookup,
 *     by the other instance (the documented price, per instance);
 *  2. a key revoked through A's admin API: no process serves it once the call has answered
 *     (Redis: pushed), or only within `store.pollMs` plus scheduling slack (embedded store,
 *     where the other worker polls the SQLite file);
 *  3. identity headers sent by the client (x-tenant-id, x-api-key-id, x-auth-*, the `_`
 *     spellings, x-forwarded-for) never reach the upstream, nor does the credential;
 *  4. a tenant admin key cannot see, rename, rotate or revoke another tenant's key through
 *     any process (404), nor create one there (403); its own tenant's keys it does see;
 *  5. an open event stream ends, cleanly between two events, when its key is revoked
 *     through A: pushed (Redis), or within `store.pollMs` (workers).
 *
 * The processes run with the hostile capture: their listener bytes, stdout and stderr are
 * scanned for the keys created for them, their hashes and the pepper (last test of each).
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ServerResponse } from 'node:http';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withKeyService } from '../../src/cli/context.ts';
import { loadConfig } from '../../src/config/load.ts';
import { generateKey } from '../../src/keys/format.ts';
import { waitFor } from '../helpers/http.ts';
import { cliKeys } from '../helpers/keygate.ts';
import { freePorts, spawnKeygate, tempDir, type KeygateProcess, type TempDir } from '../helpers/process.ts';
import { startRedisServer, type RedisServer } from '../helpers/redis-server.ts';
import { startUpstream, echoHandler, type Received, type TestUpstream } from '../helpers/upstream.ts';
import { openSocket, type ParsedResponse, parseResponses, RawConnection } from '../helpers/raw-socket.ts';
import { serverPid, spawnCapture, type SpawnCapture } from './helpers/spawned.ts';
import { TEST_PEPPER } from '../helpers/pepper.ts';

/** limits.failedAuth.max; the window is long enough that nothing is forgiven during the file. */
const MAX = 20;
const WINDOW_MS = 600_000;
/** store.pollMs of the embedded store (workers see each other's revocations within it). */
const POLL_MS = 100;
/** Scheduling slack on a busy 2-core machine, on top of POLL_MS. */
const SLACK_MS = 250;
const SPOOF = 'spoofed';

interface Keys {
  root: { key: string; id: string };
  good: { key: string; id: string };
  victim: { key: string; id: string };
  spoof: { key: string; id: string };
  acmeAdmin: { key: string; id: string };
  globex: { key: string; id: string };
  stream: { key: string; id: string };
  /** Used first in the per-process "known key" case. */
  fresh: { key: string; id: string };
}

interface Topology {
  label: string;
  /** Proxy URLs: one per instance (Redis), or the one both workers share. */
  proxies: string[];
  /** Admin URLs, in the same order; [0] is "A", the one revocations go through. */
  admins: string[];
  /** Where "B" is reached: the other instance, or the workers' shared listener. */
  b: { proxy: string; admin: string };
  /** The processes that serve requests: the workers, or the instances. */
  pids: number[];
  /** Those reached through `b`: both workers, or the second instance. */
  bPids: number[];
  /** The spawned processes (for workers: the primary, whose stdout carries the workers' lines). */
  processes: KeygateProcess[];
  capture: SpawnCapture;
  keys: Keys;
  /** How long after a revocation's answer another process may still serve the key. */
  revocationLagMs: number;
  /** The flood's source address. */
  attacker: string;
  /** Store lookups so far over every process (metric), and HGETALL calls on Redis. */
  lookups(): Promise<{ metric: number; hgetall: number | null }>;
  stop(): Promise<void>;
}

let upstream: TestUpstream;
let requestSeq = 0;
const report: string[] = [];

/** The upstream: event streams under /sse (an event every 50 ms until the client goes), otherwise the echo. */
async function startTestUpstream(): Promise<TestUpstream> {
  return startUpstream((req, res) => {
    if (!req.url?.startsWith('/sse')) return echoHandler(req, res);
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    let n = 0;
    const tick = (r: ServerResponse) => r.write(`id: ${++n}\ndata: tick ${n}\n\n`);
    tick(res);
    const timer = setInterval(() => tick(res), 50);
    res.on('close', () => clearInterval(timer));
  });
}

/**
 * Creates the keys the way `keygate keys create` does (the CLI's own code, in this process:
 * a CLI process per key would cost a second each) against the processes' config and store,
 * and remembers each for the secret scan.
 */
async function createKeys(configFile: string, env: NodeJS.ProcessEnv, capture: SpawnCapture): Promise<Keys> {
  const io = { out: () => {}, err: () => {}, env: { KEYGATE_PEPPER: TEST_PEPPER, ...env }, stdin: process.stdin };
  return withKeyService(loadConfig(configFile, io.env), io, async (service) => {
    const keys = cliKeys(service);
    const make = async (input: Parameters<typeof keys.create>[0]) => {
      const created = await keys.create(input);
      capture.rememberKey(created.key);
      return { key: created.key, id: created.record.id };
    };
    return {
      root: await make({ tenant: 'system', role: 'admin', name: 'root' }),
      good: await make({ tenant: 'acme', name: 'good' }),
      victim: await make({ tenant: 'acme', name: 'victim' }),
      spoof: await make({ tenant: 'acme', name: 'spoof', permissions: ['read', 'write'], user: 'alice', client: 'mcp' }),
      acmeAdmin: await make({ tenant: 'acme', name: 'acme-admin', permissions: ['keys:manage'] }),
      globex: await make({ tenant: 'globex', name: 'globex' }),
      stream: await make({ tenant: 'acme', name: 'stream' }),
      fresh: await make({ tenant: 'acme', name: 'fresh' }),
    };
  });
}

function baseConfig(): Record<string, unknown> {
  return {
    log: { level: 'info' },
    shutdown: { graceMs: 1000 },
    // Longer than the file: a working key's cache entry never expires mid-test (that would cost a lookup).
    cache: { maxAgeMs: 120_000 },
    limits: { failedAuth: { max: MAX, windowMs: WINDOW_MS } },
    routes: [
      { name: 'api', pathPrefix: '/api', upstream: upstream.url },
      { name: 'sse', pathPrefix: '/sse', upstream: upstream.url },
    ],
  };
}

/** Sum of the samples of `name` in a /metrics answer. */
async function metric(adminUrl: string, name: string): Promise<number> {
  const text = await (await fetch(`${adminUrl}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) if (line.startsWith(`${name} `) || line.startsWith(`${name}{`)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  return sum;
}

async function startWorkers(): Promise<Topology> {
  const dir: TempDir = tempDir('keygate-topologies-');
  const capture = spawnCapture('workers');
  const [listen, admin] = (await freePorts(2)) as [number, number];
  const file = dir.writeYaml('keygate.yaml', {
    ...baseConfig(),
    workers: 2,
    listen: { host: '127.0.0.1', port: listen },
    admin: { host: '127.0.0.1', port: admin },
    store: { path: `${dir.path}/data/keygate.db`, pollMs: POLL_MS },
  });
  const serve = await spawnKeygate(file, { ...capture.options(), timeoutMs: 20_000 });
  const listening = () => [...new Set(serve.logLines().filter((l) => l.msg === 'keygate listening').map((l) => Number(l.pid)))];
  await waitFor(() => listening().length === 2, 15_000, 20);
  const keys = await createKeys(file, {}, capture);
  const workers = listening().sort((x, y) => x - y);
  const url = serve.url;
  const adminUrl = serve.adminUrl;
  return {
    label: 'workers',
    proxies: [url],
    admins: [adminUrl],
    b: { proxy: url, admin: adminUrl },
    pids: workers,
    bPids: workers,
    processes: [serve],
    capture,
    keys,
    revocationLagMs: POLL_MS + SLACK_MS,
    attacker: '127.0.0.41',
    lookups: async () => ({ metric: await metric(adminUrl, 'keygate_store_lookups_total'), hgetall: null }),
    async stop() {
      await serve.stop('SIGTERM', 5000);
      dir.remove();
    },
  };
}

async function startRedisPair(): Promise<Topology> {
  const redis: RedisServer = await startRedisServer();
  const raw = new Redis(redis.url);
  const dir = tempDir('keygate-topologies-redis-');
  const capture = spawnCapture('redis');
  const env = { KEYGATE_REDIS_URL: redis.url };
  const file = dir.writeYaml('keygate.yaml', { ...baseConfig(), listen: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 } });
  const instances = await Promise.all([spawnKeygate(file, capture.options(env)), spawnKeygate(file, capture.options(env))]);
  const keys = await createKeys(file, env, capture);
  return {
    label: 'redis',
    proxies: instances.map((i) => i.url),
    admins: instances.map((i) => i.adminUrl),
    b: { proxy: instances[1]!.url, admin: instances[1]!.adminUrl },
    pids: instances.map((i) => i.pid),
    bPids: [instances[1]!.pid],
    processes: instances,
    capture,
    keys,
    revocationLagMs: 0,
    attacker: '127.0.0.42',
    async lookups() {
      const counts = await Promise.all(instances.map((i) => metric(i.adminUrl, 'keygate_store_lookups_total')));
      const info = await raw.info('commandstats');
      return { metric: counts.reduce((x, y) => x + y, 0), hgetall: Number(/cmdstat_hgetall:calls=(\d+)/.exec(info)?.[1] ?? 0) };
    },
    async stop() {
      await Promise.all(instances.map((i) => i.stop('SIGTERM', 5000)));
      raw.disconnect();
      await redis.stop();
      dir.remove();
    },
  };
}

// ---- requests ---------------------------------------------------------------------------

const path = (t: Topology, what: string) => `/api/${t.label}-${what}-${++requestSeq}`;

function get(target: string, headers: string[] = []): string {
  return `GET ${target} HTTP/1.1\r\nHost: gw\r\n${headers.map((h) => `${h}\r\n`).join('')}\r\n`;
}

/**
 * A keep-alive connection pinned to whichever process the kernel gave it: requests one at a
 * time; with `pid`, the kernel is first asked which process that is (helpers/spawned.ts).
 * (RawConnection reopens after a close and does not say where its socket went.)
 */
interface Pinned {
  /** The process that holds the server end (null when not asked). */
  pid: number | null;
  send(payload: string): Promise<ParsedResponse>;
  close(): void;
}

async function pinned(base: string, options: { localAddress?: string; pid?: boolean } = {}): Promise<Pinned> {
  const socket = await openSocket(base, options.localAddress ? { localAddress: options.localAddress } : {});
  let data: Buffer = Buffer.alloc(0);
  let closed = false;
  let wake: (() => void) | null = null;
  socket.on('data', (chunk: Buffer) => {
    data = Buffer.concat([data, chunk]);
    wake?.();
  });
  socket.on('close', () => {
    closed = true;
    wake?.();
  });
  const pid = options.pid === false ? null : await serverPid(socket).catch((error: unknown) => {
    socket.destroy();
    throw error;
  });
  return {
    pid,
    async send(payload) {
      socket.write(payload);
      const deadline = Date.now() + 5000;
      for (;;) {
        const { responses, rest } = parseResponses(data);
        if (responses.length) {
          data = rest;
          return responses[0]!;
        }
        const line = payload.slice(0, payload.indexOf('\r\n'));
        if (closed) throw new Error(`connection closed without an answer to ${line}`);
        if (Date.now() > deadline) throw new Error(`no answer within 5 s to ${line}`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 50);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        wake = null;
      }
    },
    close: () => socket.destroy(),
  };
}

/** One request on a connection of its own. */
async function oneShot(base: string, payload: string, options: { localAddress?: string; pid?: boolean } = {}): Promise<{ pid: number | null; response: ParsedResponse }> {
  const connection = await pinned(base, options);
  try {
    return { pid: connection.pid, response: await connection.send(payload) };
  } finally {
    connection.close();
  }
}

/** An admin API call on `connection`. */
async function adminCall(connection: Pinned, method: string, target: string, key: string, body?: unknown): Promise<{ pid: number; status: number; json: any }> {
  const text = body === undefined ? '' : JSON.stringify(body);
  const head = `${method} ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Api-Key: ${key}\r\n${body === undefined ? 'Content-Length: 0\r\n' : `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(text)}\r\n`}\r\n${text}`;
  const response = await connection.send(head);
  let json: unknown;
  try {
    json = JSON.parse(response.body);
  } catch {
    json = undefined;
  }
  return { pid: connection.pid!, status: response.status, json };
}

/** An admin API call on a connection of its own. */
async function adminOnce(base: string, method: string, target: string, key: string, body?: unknown): Promise<{ pid: number; status: number; json: any }> {
  const connection = await pinned(base);
  try {
    return await adminCall(connection, method, target, key, body);
  } finally {
    connection.close();
  }
}

/**
 * Runs `attempt` (which reports the pid it reached) over `bases` in turn until every process
 * has been reached `times` times; returns how often each was.
 */
async function everywhere(pids: number[], bases: string[], attempt: (base: string, i: number) => Promise<number>, times = 1, tries = 60): Promise<Map<number, number>> {
  const reached = new Map<number, number>(pids.map((pid) => [pid, 0]));
  for (let i = 0; i < tries; i++) {
    const pid = await attempt(bases[i % bases.length]!, i);
    expect(pids, `a request was answered by pid ${pid}, not one of the processes it should reach`).toContain(pid);
    reached.set(pid, reached.get(pid)! + 1);
    if ([...reached.values()].every((n) => n >= times)) return reached;
  }
  throw new Error(`${tries} connections did not reach every process ${times} times: ${JSON.stringify([...reached])}`);
}

/** Access-log lines by path, over every process, once every path in `paths` is there. */
async function accessByPath(t: Topology, paths: readonly string[]): Promise<Map<string, Record<string, unknown>>> {
  let index = new Map<string, Record<string, unknown>>();
  await waitFor(
    () => {
      index = new Map();
      for (const p of t.processes) for (const line of p.logLines()) if (line.log === 'access') index.set(String(line.path), line);
      return paths.every((p) => index.has(p));
    },
    5000,
    20,
  );
  return index;
}

const codeOf = (response: ParsedResponse): string | undefined => {
  try {
    return (JSON.parse(response.body) as { code?: string }).code;
  } catch {
    return undefined;
  }
};

// ---- the cases ----------------------------------------------------------------------------

function topologySuite(label: string, start: () => Promise<Topology>) {
  describe(label, () => {
    let t: Topology;
    beforeAll(async () => {
      t = await start();
    }, 40_000);
    afterAll(async () => {
      // Only when the last test did not get to it (a failure before): stop and keep the capture.
      if (t && t.processes.some((p) => p.child.exitCode === null && p.child.signalCode === null)) {
        await t.stop();
        t.capture.finish(t.processes);
      }
    });

    it('failure limit per process: a flood of made-up keys from one address costs at most max lookups per process (+ in flight); a working key used before from that address is served by every process throughout', async () => {
      const { good } = t.keys;
      const from = { localAddress: t.attacker };
      // The working key, used before from the attacker's address on every process.
      await everywhere(t.pids, t.proxies, async (base) => {
        const { pid, response } = await oneShot(base, get(path(t, 'warm'), [`X-Api-Key: ${good.key}`]), from);
        expect(response.status).toBe(200);
        return pid!;
      });
      const before = await t.lookups();

      const LANES = 8;
      const PER_LANE = 60;
      const PER_CONNECTION = 12;
      const flood: { path: string; status: number; code: string | undefined; retryAfter: string | undefined }[] = [];
      const working: { path: string; status: number }[] = [];
      let flooding = true;
      let connections = 0;
      const lanes = Array.from({ length: LANES }, async (_, lane) => {
        const connection = new RawConnection(t.proxies[lane % t.proxies.length]!, from);
        for (let i = 0; i < PER_LANE; i++) {
          if (i % PER_CONNECTION === 0) connection.close();
          const p = path(t, `flood${lane}`);
          const { response } = await connection.request(`GET ${p} HTTP/1.1\r\nHost: gw\r\nX-Api-Key: ${generateKey('kg', 'acme')}\r\n\r\n`);
          if (response === null) throw new Error('the flood got no answer');
          flood.push({ path: p, status: response.status, code: codeOf(response), retryAfter: response.headers['retry-after'] });
        }
        connection.close();
        connections += connection.opened;
      });
      // Meanwhile, the working key from the same address, each request on a new connection.
      const workingLane = (async () => {
        for (let i = 0; flooding || i < 10; i++) {
          const p = path(t, 'working');
          const { response } = await oneShot(t.proxies[i % t.proxies.length]!, get(p, [`X-Api-Key: ${good.key}`]), { ...from, pid: false });
          working.push({ path: p, status: response.status });
        }
      })();
      await Promise.all(lanes);
      flooding = false;
      await workingLane;
      // And after the flood, on every process: the address is blocked there (a made-up key gets
      // 429), and the working key is served to it on the very same connection.
      await everywhere(t.pids, t.proxies, async (base) => {
        const connection = await pinned(base, from);
        try {
          const blocked = await connection.send(get(path(t, 'blocked'), [`X-Api-Key: ${generateKey('kg', 'acme')}`]));
          expect(blocked.status, `pid ${connection.pid} has blocked ${t.attacker}`).toBe(429);
          const p = path(t, 'after');
          const response = await connection.send(get(p, [`X-Api-Key: ${good.key}`]));
          working.push({ path: p, status: response.status });
        } finally {
          connection.close();
        }
        return connection.pid!;
      }, 3);
      const after = await t.lookups();

      const lines = await accessByPath(t, [...flood, ...working].map((r) => r.path));
      const pidOf = (p: string) => Number(lines.get(p)!.pid);
      const per = new Map(t.pids.map((pid) => [pid, { unknown: 0, blocked: 0, working: 0 }]));
      for (const r of flood) {
        const counts = per.get(pidOf(r.path))!;
        if (r.status === 401) counts.unknown++;
        if (r.status === 429) counts.blocked++;
      }
      for (const r of working) per.get(pidOf(r.path))!.working++;
      const unknown = flood.filter((r) => r.status === 401).length;
      const lookups = after.metric - before.metric;
      const hgetall = after.hgetall === null ? null : after.hgetall - before.hgetall!;
      report.push(
        `[${t.label}] flood: ${flood.length} made-up keys from ${t.attacker} over ${connections} connections (${LANES} at a time): ` +
          `${unknown} looked up (401), ${flood.length - unknown} refused (429); per process ${JSON.stringify(Object.fromEntries(per))}; ` +
          `store lookups +${lookups}${hgetall === null ? '' : `, HGETALL +${hgetall}`} (bound ${MAX} × ${t.pids.length} + ${LANES} in flight); ` +
          `working key ${working.filter((r) => r.status === 200).length}/${working.length} served`,
      );

      // The key that works: 100 % success, on every process.
      expect(working.filter((r) => r.status !== 200)).toEqual([]);
      for (const [pid, counts] of per) expect(counts.working, `pid ${pid} served the working key`).toBeGreaterThan(0);
      // The flood: only 401 invalid_key (a lookup) or 429 rate_limited with Retry-After (none).
      expect(flood).toHaveLength(LANES * PER_LANE);
      for (const r of flood) {
        if (r.status === 401) expect(r.code).toBe('invalid_key');
        else {
          expect(r.status).toBe(429);
          expect(r.code).toBe('rate_limited');
          expect(Number(r.retryAfter)).toBeGreaterThanOrEqual(1);
        }
      }
      // Counted per process: each looks up its own `max` (plus what was in flight), then refuses.
      for (const [pid, counts] of per) {
        expect(counts.unknown, `pid ${pid}: lookups for the flood`).toBeGreaterThanOrEqual(MAX);
        expect(counts.unknown, `pid ${pid}: lookups for the flood`).toBeLessThanOrEqual(MAX + LANES);
        expect(counts.blocked, `pid ${pid} refused the rest`).toBeGreaterThan(0);
      }
      // The store's cost: each 401 was one lookup, and there were no others.
      expect(lookups).toBe(unknown);
      expect(lookups).toBeLessThanOrEqual(MAX * t.pids.length + LANES);
      if (hgetall !== null) {
        expect(hgetall).toBeGreaterThanOrEqual(unknown);
        expect(hgetall).toBeLessThanOrEqual(MAX * t.pids.length + LANES);
      }
    });

    it("a working key seen by one process only, from the blocked address: workers share what they learn (served by both, no lookup); separate instances do not (429 without a lookup by the other: the documented price)", async () => {
      const { fresh } = t.keys;
      const [seeded, other] = t.pids as [number, number];
      // Seen by one process only (the first instance, or whichever worker a connection reaches
      // first), from another, unblocked, address.
      let seen = false;
      for (let i = 0; i < 40 && !seen; i++) {
        const connection = await pinned(t.proxies[0]!);
        try {
          if (connection.pid === seeded) {
            expect((await connection.send(get(path(t, 'fresh-seed'), [`X-Api-Key: ${fresh.key}`]))).status).toBe(200);
            seen = true;
          }
        } finally {
          connection.close();
        }
      }
      expect(seen, `a connection reached pid ${seeded}`).toBe(true);
      const before = await t.lookups();
      const statuses = new Map<number, number[]>([
        [seeded, []],
        [other, []],
      ]);
      await everywhere(t.pids, t.proxies, async (base) => {
        const connection = await pinned(base, { localAddress: t.attacker });
        try {
          const response = await connection.send(get(path(t, 'fresh'), [`X-Api-Key: ${fresh.key}`]));
          statuses.get(connection.pid!)!.push(response.status);
          if (response.status === 429) expect(codeOf(response)).toBe('rate_limited');
        } finally {
          connection.close();
        }
        return connection.pid!;
      }, 3);
      const after = await t.lookups();
      report.push(`[${t.label}] known per process: a key seen by pid ${seeded} only, from the blocked address: ${JSON.stringify(Object.fromEntries(statuses))}, lookups +${after.metric - before.metric}`);
      expect(new Set(statuses.get(seeded))).toEqual(new Set([200]));
      // Workers of one machine tell each other which keys exist (cluster/known-keys-ipc.ts).
      expect(new Set(statuses.get(other))).toEqual(new Set([t.label === 'workers' ? 200 : 429]));
      // The other worker knows the key exists, not its record: one lookup of a real key, then its cache.
      // The other instance looks nothing up.
      expect(after.metric - before.metric).toBeLessThanOrEqual(t.label === 'workers' ? 1 : 0);
      if (after.hgetall !== null) expect(after.hgetall - before.hgetall!).toBe(0);
    });

    it('revocation fan-out: revoked through A, no process serves the key after the answer (Redis), or only within store.pollMs (workers)', async () => {
      const { victim, root } = t.keys;
      // Cached on every process first: the revocation must evict it, not merely be looked up.
      await everywhere(t.pids, t.proxies, async (base) => {
        const { pid, response } = await oneShot(base, get(path(t, 'victim-warm'), [`X-Api-Key: ${victim.key}`]));
        expect(response.status).toBe(200);
        return pid!;
      }, 2);

      interface Poll {
        path: string;
        sentAt: number;
        status: number;
        code: string | undefined;
      }
      const polls: Poll[] = [];
      const poll = async (base: string) => {
        const p = path(t, 'victim');
        const sentAt = performance.now();
        const { response } = await oneShot(base, get(p, [`X-Api-Key: ${victim.key}`]), { pid: false });
        polls.push({ path: p, sentAt, status: response.status, code: codeOf(response) });
      };
      let polling = true;
      const lanes = Array.from({ length: 4 }, async (_, lane) => {
        while (polling) await poll(t.proxies[lane % t.proxies.length]!);
      });
      await sleep(80);
      const revoked = await adminOnce(t.admins[0]!, 'POST', `/v1/keys/${victim.id}/revoke`, root.key);
      const answered = performance.now();
      expect(revoked.status).toBe(200);
      expect(revoked.json).toMatchObject({ id: victim.id, status: 'revoked' });
      // Right after the answer: a burst on separate connections to every process.
      await Promise.all(Array.from({ length: 12 }, (_, i) => poll(t.proxies[i % t.proxies.length]!)));
      await sleep(t.revocationLagMs + 200);
      polling = false;
      await Promise.all(lanes);

      const lines = await accessByPath(t, polls.map((p) => p.path));
      const pidOf = (p: Poll) => Number(lines.get(p.path)!.pid);
      const afterAnswer = polls.filter((p) => p.sentAt >= answered);
      const servedAfter = afterAnswer.filter((p) => p.status === 200);
      const lastServed = new Map<number, number>();
      for (const p of servedAfter) lastServed.set(pidOf(p), Math.max(lastServed.get(pidOf(p)) ?? 0, p.sentAt - answered));
      report.push(
        `[${t.label}] revocation (admin call taken by pid ${revoked.pid}): ${polls.filter((p) => p.sentAt < answered && p.status === 200).length} served before the answer, ` +
          `${afterAnswer.length} requests after it (by pid ${JSON.stringify(Object.fromEntries(t.pids.map((pid) => [pid, afterAnswer.filter((p) => pidOf(p) === pid).length])))}), ` +
          `${servedAfter.length} served after it${servedAfter.length ? ` (last sent ${JSON.stringify(Object.fromEntries([...lastServed].map(([pid, ms]) => [pid, `${ms.toFixed(1)} ms`])))} after the answer)` : ''}; allowed lag ${t.revocationLagMs} ms`,
      );

      // Served after the answer: never (Redis), or only within the allowed lag (workers).
      if (t.revocationLagMs === 0) expect(servedAfter).toEqual([]);
      for (const p of afterAnswer) {
        if (p.status === 200) expect(p.sentAt - answered, `pid ${pidOf(p)} served the key ${(p.sentAt - answered).toFixed(1)} ms after the answer`).toBeLessThanOrEqual(t.revocationLagMs);
        else expect({ status: p.status, code: p.code }).toEqual({ status: 401, code: 'key_revoked' });
      }
      // And every process was asked, and refused it.
      for (const pid of t.pids) {
        expect(afterAnswer.filter((p) => pidOf(p) === pid && p.code === 'key_revoked').length, `pid ${pid} refused the revoked key`).toBeGreaterThan(0);
      }
      // Still refused on every process well after.
      await everywhere(t.pids, t.proxies, async (base) => {
        const { pid, response } = await oneShot(base, get(path(t, 'victim-later'), [`X-Api-Key: ${victim.key}`]));
        expect({ status: response.status, code: codeOf(response) }).toEqual({ status: 401, code: 'key_revoked' });
        return pid!;
      });
    });

    it('spoofed identity headers never reach the upstream from any process, nor does the credential', async () => {
      const { spoof } = t.keys;
      const spoofed = [
        `X-Tenant-Id: ${SPOOF}-tenant`,
        `x-api-key-id: ${SPOOF}-id`,
        `X-Auth-Role: ${SPOOF}-admin`,
        `X-AUTH-PERMISSIONS: ${SPOOF}-everything`,
        `x-auth-user: ${SPOOF}-root`,
        `X-Auth-Client: ${SPOOF}-client`,
        `X_Tenant_Id: ${SPOOF}-cgi`,
        `x_auth_role: ${SPOOF}-cgi`,
        `X-Forwarded-For: ${SPOOF}-address`,
      ];
      const credentials = [`X-Api-Key: ${spoof.key}`, `Authorization: Bearer ${spoof.key}`];
      const sent: { path: string; pid: number; form: number }[] = [];
      // Each process, with the key in either header (one connection per attempt, both forms on it).
      await everywhere(t.pids, t.proxies, async (base) => {
        const connection = await pinned(base);
        try {
          for (const [form, credential] of credentials.entries()) {
            const p = path(t, `spoof${form}`);
            const response = await connection.send(get(p, [...spoofed, credential, `X-Tenant-Id: ${SPOOF}-again`]));
            expect(response.status, response.body).toBe(200);
            sent.push({ path: p, pid: connection.pid!, form });
          }
        } finally {
          connection.close();
        }
        return connection.pid!;
      });

      const random = spoof.key.slice(-64, -8).toLowerCase();
      const values = (r: Received, name: string) => {
        const out: string[] = [];
        for (let i = 0; i < r.rawHeaders.length; i += 2) if (r.rawHeaders[i]!.toLowerCase() === name) out.push(r.rawHeaders[i + 1]!);
        return out;
      };
      for (const { path: p, pid } of sent) {
        const received = upstream.received.filter((r) => r.url === p);
        expect(received, `the upstream got ${p} once`).toHaveLength(1);
        const r = received[0]!;
        const text = r.rawHeaders.join('\n');
        expect(text, `pid ${pid}: a spoofed value reached the upstream`).not.toContain(SPOOF);
        expect(text.toLowerCase(), `pid ${pid}: the credential reached the upstream`).not.toContain(random);
        expect(r.rawHeaders.filter((_, i) => i % 2 === 0 && r.rawHeaders[i]!.includes('_'))).toEqual([]);
        expect(values(r, 'x-api-key')).toEqual([]);
        expect(values(r, 'authorization')).toEqual([]);
        expect(values(r, 'x-tenant-id')).toEqual(['acme']);
        expect(values(r, 'x-api-key-id')).toEqual([spoof.id]);
        expect(values(r, 'x-auth-permissions')).toEqual(['read,write']);
        expect(values(r, 'x-auth-user')).toEqual(['alice']);
        expect(values(r, 'x-auth-client')).toEqual(['mcp']);
        expect(values(r, 'x-auth-role')).toHaveLength(1);
        expect(values(r, 'x-forwarded-for')).toEqual(['127.0.0.1']);
      }
      report.push(`[${t.label}] spoofing: ${sent.length} requests, by pid ${JSON.stringify(Object.fromEntries(t.pids.map((pid) => [pid, sent.filter((s) => s.pid === pid).length])))}: no spoofed value, no credential upstream`);
    });

    it("cross-tenant admin: a tenant admin key used on A cannot see or revoke another tenant's key through B (404)", async () => {
      const { acmeAdmin, globex, good, root } = t.keys;
      const listed = await adminOnce(t.admins[0]!, 'GET', '/v1/keys', acmeAdmin.key);
      expect(listed.status).toBe(200);
      const ids = (listed.json as { keys: { id: string; tenant: string }[] }).keys.map((k) => k.id);
      expect(ids).toContain(good.id);
      expect(ids).not.toContain(globex.id);
      expect(new Set((listed.json as { keys: { tenant: string }[] }).keys.map((k) => k.tenant))).toEqual(new Set(['acme']));

      const tried: { pid: number; what: string; status: number }[] = [];
      await everywhere(t.bPids, [t.b.admin], async (base) => {
        const connection = await pinned(base);
        // Another tenant's keys (the platform admin's included) are invisible: 404, never 403.
        const attempts: [string, string, number, unknown?][] = [
          ['GET', `/v1/keys/${globex.id}`, 404],
          ['POST', `/v1/keys/${globex.id}/revoke`, 404],
          ['PATCH', `/v1/keys/${globex.id}`, 404, { name: 'taken over' }],
          ['POST', `/v1/keys/${globex.id}/rotate`, 404, { overlapSeconds: 0 }],
          ['POST', '/v1/tenants/globex/keys/revoke', 404],
          ['POST', `/v1/keys/${root.id}/revoke`, 404],
          // Creating a key in another tenant is refused outright.
          ['POST', '/v1/keys', 403, { tenant: 'globex', name: 'planted' }],
        ];
        for (const [method, target, status, body] of attempts) {
          const res = await adminCall(connection, method, target, acmeAdmin.key, body);
          expect(res.status, `${method} ${target} on pid ${res.pid}: ${JSON.stringify(res.json)}`).toBe(status);
          expect(JSON.stringify(res.json)).not.toMatch(/"(key|tenant|name)":/);
          tried.push({ pid: res.pid, what: `${method} ${target}`, status: res.status });
        }
        const list = await adminCall(connection, 'GET', '/v1/keys?tenant=globex&revoked=true', acmeAdmin.key);
        expect(list.status).toBe(200);
        expect(list.json).toEqual({ keys: [] });
        // The same key is an admin here: its own tenant's key is there.
        const own = await adminCall(connection, 'GET', `/v1/keys/${good.id}`, acmeAdmin.key);
        expect(own.status).toBe(200);
        expect(own.json).toMatchObject({ id: good.id, tenant: 'acme' });
        connection.close();
        return connection.pid!;
      }, 1, 40);
      // Nothing happened to the other tenant's key: active, named as before, working everywhere.
      const record = await adminOnce(t.admins[0]!, 'GET', `/v1/keys/${globex.id}`, root.key);
      expect(record.json).toMatchObject({ id: globex.id, tenant: 'globex', name: 'globex', status: 'active' });
      const globexKeys = await adminOnce(t.admins[0]!, 'GET', '/v1/keys?tenant=globex&revoked=true', root.key);
      expect((globexKeys.json as { keys: { id: string }[] }).keys.map((k) => k.id)).toEqual([globex.id]);
      const rootRecord = await adminOnce(t.admins[0]!, 'GET', `/v1/keys/${root.id}`, root.key);
      expect(rootRecord.json).toMatchObject({ id: root.id, status: 'active' });
      await everywhere(t.pids, t.proxies, async (base) => {
        const { pid, response } = await oneShot(base, get(path(t, 'globex'), [`X-Api-Key: ${globex.key}`]));
        expect(response.status).toBe(200);
        return pid!;
      });
      report.push(`[${t.label}] cross-tenant admin: ${tried.length} calls on pids ${[...new Set(tried.map((c) => c.pid))].join(', ')}: ${tried.filter((c) => c.status === 404).length} × 404, ${tried.filter((c) => c.status === 403).length} × 403 (create in another tenant)`);
    });

    it('an open event stream on B ends when its key is revoked through A', async () => {
      const { stream, root } = t.keys;
      interface Stream {
        pid: number;
        events: number;
        data: Buffer;
        endedAt: number | null;
        complete: boolean;
        close(): void;
      }
      const streams: Stream[] = [];
      try {
        await everywhere(t.bPids, [t.b.proxy], async (base) => {
          const socket = await openSocket(base);
          const pid = await serverPid(socket);
          const s: Stream = { pid, events: 0, data: Buffer.alloc(0), endedAt: null, complete: false, close: () => socket.destroy() };
          streams.push(s);
          const finish = () => (s.endedAt ??= performance.now());
          socket.on('data', (chunk: Buffer) => {
            s.data = Buffer.concat([s.data, chunk]);
            s.events = (s.data.toString('latin1').match(/data: tick/g) ?? []).length;
            if (parseResponses(s.data).responses.length > 0) {
              s.complete = true;
              finish();
            }
          });
          socket.on('close', finish);
          socket.write(`GET /sse/${t.label}-${++requestSeq} HTTP/1.1\r\nHost: gw\r\nAccept: text/event-stream\r\nX-Api-Key: ${stream.key}\r\n\r\n`);
          await waitFor(() => s.events > 0 || s.endedAt !== null, 3000);
          expect(s.endedAt, s.data.toString('latin1')).toBeNull();
          expect(s.data.toString('latin1')).toMatch(/^HTTP\/1\.1 200 /);
          return pid;
        }, 1, 30);

        const revoked = await adminOnce(t.admins[0]!, 'POST', `/v1/keys/${stream.id}/revoke`, root.key);
        const answered = performance.now();
        expect(revoked.status).toBe(200);
        const bound = Math.max(t.revocationLagMs, SLACK_MS) + 250;
        await waitFor(() => streams.every((s) => s.endedAt !== null), bound + 2000, 5).catch(() => {});
        const lags = streams.map((s) => (s.endedAt === null ? null : s.endedAt - answered));
        report.push(`[${t.label}] event streams: ${streams.length} on pids ${streams.map((s) => s.pid).join(', ')} ended ${lags.map((l) => (l === null ? 'never' : `${l.toFixed(1)} ms`)).join(', ')} after the revocation answered (bound ${bound} ms)`);
        for (const s of streams) {
          expect(s.endedAt, `the stream on pid ${s.pid} ended`).not.toBeNull();
          expect(s.endedAt! - answered, `the stream on pid ${s.pid} ended in time`).toBeLessThanOrEqual(bound);
          // Cleanly, between two events: the chunked body is complete and ends with a whole event.
          expect(s.complete, `the stream on pid ${s.pid} ended with its last chunk, not a reset`).toBe(true);
          const body = parseResponses(s.data).responses[0]!.body;
          expect(body.endsWith('\n\n'), JSON.stringify(body.slice(-40))).toBe(true);
        }
      } finally {
        for (const s of streams) s.close();
      }
    });

    it('nothing the processes wrote (listener bytes, stdout, stderr) holds a key, a key hash or the pepper', async () => {
      await t.stop();
      const { findings, bytes } = t.capture.finish(t.processes);
      expect(findings.map((f) => `${f.kind} ${f.hint} in ${f.file} at ${f.offset} after ${f.context}`)).toEqual([]);
      // The scan saw what it had to: the processes' logs, and the bytes of their listeners.
      expect(t.processes.every((p) => p.stdout().includes('"keygate listening"'))).toBe(true);
      expect(bytes.log).toBeGreaterThan(0);
      expect(bytes.responses).toBeGreaterThan(0);
      report.push(`[${t.label}] secret scan: ${bytes.log} bytes of stdout/stderr, ${bytes.responses} bytes written on the listeners: nothing found`);
    });
  });
}

beforeAll(async () => {
  upstream = await startTestUpstream();
});

afterAll(async () => {
  await upstream?.close();
  for (const line of report) console.log(`[hostile topologies] ${line}`);
});

topologySuite('workers: 2 on the embedded store', startWorkers);
topologySuite('two instances on one Redis', startRedisPair);

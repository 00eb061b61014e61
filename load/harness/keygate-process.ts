/**
 * keygate as a child process for the bench: `node bin/keygate.js serve --config <tmp yaml>`
 * with the access log on (written to a file in the temp directory), metrics on (always,
 * on the admin listener), a small cache so the cache-miss scenario really misses, and
 * one route `/` → the stub upstream.
 */
import { openSync, closeSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { freePort } from '../../test/helpers/redis-server.ts';
import { track } from './processes.ts';
import type { StoreTarget } from './keys.ts';

const repo = fileURLToPath(new URL('../../', import.meta.url));

export interface KeygateOptions {
  dir: string;
  upstreamPort: number;
  store: StoreTarget;
  workers: number | 'auto';
  pepper: string;
  cacheMax: number;
  /** Preload test/hostile/helpers/probe-preload.ts (with --expose-gc): `probeMemory` can then ask for memory after a full GC. */
  probe?: boolean;
}

export interface KeygateProcess {
  child: ChildProcess;
  port: number;
  adminPort: number;
  logFile: string;
  configFile: string;
}

export async function startKeygate(o: KeygateOptions): Promise<KeygateProcess> {
  const port = await freePort();
  const adminPort = await freePort();
  const store = o.store.kind === 'embedded'
    ? `store: { kind: embedded, path: ${JSON.stringify(o.store.path)} }`
    : `store: { kind: redis, redis: { url: ${JSON.stringify(o.store.url)} } }`;
  const configFile = join(o.dir, 'keygate.yaml');
  writeFileSync(configFile, [
    `listen: { host: 127.0.0.1, port: ${port} }`,
    `admin: { host: 127.0.0.1, port: ${adminPort} }`,
    store,
    `cache: { max: ${o.cacheMax} }`,
    // Every bench client comes from 127.0.0.1: the invalid-key scenarios measure verification,
    // not the per-address limits that would answer them 429 after a few.
    'limits: { failedAuth: { max: 0 }, connectionsPerAddress: 0 }',
    'log: { level: info, access: true }',
    `workers: ${o.workers}`,
    'routes:',
    `  - { name: bench, pathPrefix: /, upstream: "http://127.0.0.1:${o.upstreamPort}" }`,
    '',
  ].join('\n'));
  const logFile = join(o.dir, 'keygate.log');
  const fd = openSync(logFile, 'a');
  const preload = o.probe ? ['--expose-gc', '--import', join(repo, 'test/hostile/helpers/probe-preload.ts')] : [];
  // e.g. KEYGATE_BENCH_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" to profile a scenario.
  const extra = (process.env.KEYGATE_BENCH_NODE_ARGS ?? '').split(' ').filter((a) => a !== '');
  const child = track(spawn(process.execPath, [...preload, ...extra, join(repo, 'bin/keygate.js'), 'serve', '--config', configFile], {
    cwd: o.dir,
    env: { ...process.env, KEYGATE_PEPPER: o.pepper },
    stdio: ['ignore', fd, fd],
  }));
  closeSync(fd);
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`keygate exited at start; see ${logFile}`);
    try {
      const res = await fetch(`http://127.0.0.1:${adminPort}/readyz`);
      await res.arrayBuffer();
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`keygate not ready within 15 s; see ${logFile}`);
    await sleep(50);
  }
  return { child, port, adminPort, logFile, configFile };
}

/** A few numbers from keygate's /metrics (Prometheus text), for the report's footer. */
export async function metricsText(adminPort: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${adminPort}/metrics`);
  return res.text();
}

export interface MemoryProbe {
  heapUsed: number;
  rss: number;
  fds: number;
}

/** Memory after a full GC, from a keygate started with `probe: true` (SIGUSR2, answered on its log). */
export async function probeMemory(kg: KeygateProcess): Promise<MemoryProbe> {
  const seen = readFileSync(kg.logFile, 'utf8').split('KEYGATE_PROBE ').length;
  kg.child.kill('SIGUSR2');
  const deadline = Date.now() + 10_000;
  for (;;) {
    const parts = readFileSync(kg.logFile, 'utf8').split('KEYGATE_PROBE ');
    if (parts.length > seen) return JSON.parse(parts.at(-1)!.split('\n')[0]!) as MemoryProbe;
    if (Date.now() > deadline) throw new Error('keygate did not answer the memory probe within 10 s');
    await sleep(50);
  }
}

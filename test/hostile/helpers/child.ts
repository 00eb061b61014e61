/**
 * keygate as a separate process (`keygate serve`, as users run it) with the probe preloaded
 * (probe-preload.ts), for the tests that measure memory and handles — the soak and the
 * abort storms — where the test's own clients must not share keygate's heap. Like
 * capture.ts, everything it writes is kept for the secret scan: the bytes on its listener
 * sockets, its stdout and stderr, its audit log, and the keys created for it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { EmbeddedStore } from '../../../src/store/embedded/store.ts';
import { childEnv, KEYGATE_BIN, parseJsonOutput, REPO_ROOT, runKeygate, tempDir } from '../../helpers/process.ts';
import { captureDir, type LedgerEntry } from './capture.ts';
import { recordChild } from '../../helpers/child-reaper.ts';
import { TEST_PEPPER, testHasher } from '../../helpers/pepper.ts';

const PROBE = fileURLToPath(new URL('./probe-preload.ts', import.meta.url));
let started = 0;

export interface Probe {
  heapUsed: number;
  rss: number;
  external: number;
  arrayBuffers: number;
  fds: number;
  resources: Record<string, number>;
}

export interface ProbedKeygate {
  child: ChildProcess;
  url: string;
  adminUrl: string;
  /** Collects garbage in the child and reports its memory and handles. */
  probe(): Promise<Probe>;
  /** `keygate keys create --json` against the child's config; the key is remembered for the scan. */
  createKey(tenant: string, name: string): Promise<string>;
  /** Bytes of stdout so far. */
  logBytes(): number;
  stop(): Promise<void>;
}

/** Starts `keygate serve` with `config` (listeners and store path are filled in). */
export async function spawnProbedKeygate(tag: string, config: Record<string, unknown>): Promise<ProbedKeygate> {
  const dir = tempDir('keygate-hostile-child-');
  const storePath = join(dir.path, 'keygate.db');
  const file = dir.writeYaml('keygate.yaml', { listen: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 }, store: { path: storePath }, ...config });
  const testFile = basename(expect.getState().testPath ?? 'unknown').replace(/\.test\.ts$/, '');
  const prefix = join(captureDir(), `${testFile}-${tag}-${process.pid}-child${++started}`);
  const log = openSync(`${prefix}.log`, 'a');
  let logBytes = 0;
  const ledger: LedgerEntry[] = [{ kind: 'pepper', value: TEST_PEPPER }];
  const hash = testHasher;
  const child = spawn(process.execPath, ['--expose-gc', '--import', PROBE, KEYGATE_BIN, 'serve', '--config', file], {
    cwd: REPO_ROOT,
    env: childEnv({ HOSTILE_TAP: `${prefix}.responses` }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  recordChild(child);
  const probes: ((probe: Probe) => void)[] = [];
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (text: string) => {
    stderr += text;
    let newline: number;
    while ((newline = stderr.indexOf('\n')) !== -1) {
      const line = stderr.slice(0, newline + 1);
      stderr = stderr.slice(newline + 1);
      if (line.startsWith('KEYGATE_PROBE ')) probes.shift()?.(JSON.parse(line.slice(14)) as Probe);
      else writeSync(log, line);
    }
  });
  let head = '';
  const listening = new Promise<{ proxy: string; admin: string }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`keygate did not start:\n${head}`)), 15_000);
    child.stdout!.on('data', (chunk: Buffer) => {
      writeSync(log, chunk);
      logBytes += chunk.length;
      if (head.length < 100_000) {
        head += chunk.toString('utf8');
        const line = head.split('\n').find((l) => l.includes('"keygate listening"'));
        if (line) {
          clearTimeout(timer);
          resolve(JSON.parse(line) as { proxy: string; admin: string });
        }
      }
    });
    child.once('exit', (code) => reject(new Error(`keygate exited (${code}) at start:\n${head}\n${stderr}`)));
  });
  const exited = once(child, 'exit');
  const { proxy, admin } = await listening;
  return {
    child,
    url: `http://${proxy}`,
    adminUrl: `http://${admin}`,
    logBytes: () => logBytes,
    probe() {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no probe answer within 10 s')), 10_000);
        probes.push((probe) => {
          clearTimeout(timer);
          resolve(probe);
        });
        child.kill('SIGUSR2');
      });
    },
    async createKey(tenant, name) {
      const { key } = parseJsonOutput<{ key: string }>(await runKeygate(['keys', 'create', '--tenant', tenant, '--name', name, '--json', '--config', file]));
      ledger.push({ kind: 'key', value: key }, { kind: 'hash', value: hash(key) });
      return key;
    },
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(timer);
      }
      const store = new EmbeddedStore({ path: storePath });
      try {
        writeFileSync(`${prefix}.audit`, JSON.stringify((await store.listAudit({ limit: 10_000 })).entries));
      } finally {
        await store.close();
      }
      writeFileSync(`${prefix}.secrets.json`, JSON.stringify(ledger));
      closeSync(log);
      dir.remove();
    },
  };
}

/** Active handles of one type in a probe (TCPSocketWrap = TCP sockets, servers included). */
export const handles = (probe: Probe, type = 'TCPSocketWrap'): number => probe.resources[type] ?? 0;

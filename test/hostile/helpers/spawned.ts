/**
 * The hostile capture (capture.ts, child.ts) for `keygate serve` processes started with
 * spawnKeygate (test/helpers/process.ts) — a primary and its workers, or several instances
 * on one store — and a way to tell which of those processes holds a given connection.
 *
 * Capture: the probe preload (probe-preload.ts, HOSTILE_TAP) taps every listener socket of
 * every process (cluster workers inherit node's --import), stdout and stderr are written at
 * `finish`, with the ledger of what must never appear: the keys created for the processes,
 * their hashes, the pepper. `finish` scans all of it at once, so a test can assert on the
 * findings directly; the run's global scan (global-setup.ts) reads the same files again.
 *
 * Which process: with `workers: N` every worker binds the listener (SO_REUSEPORT) and the
 * kernel picks one per connection, so the only way to know is to ask the kernel: `ss`
 * names the process that accepted the server end of a connection.
 */
import { execFile } from 'node:child_process';
import { readFileSync, existsSync, writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { expect } from 'vitest';
import { createKeyHasher } from '../../../src/keys/hash.ts';
import { type KeygateProcess } from '../../helpers/process.ts';
import { captureDir, type LedgerEntry } from './capture.ts';
import { scan, type Finding } from './secret-scan.ts';
import { TEST_PEPPER } from '../../helpers/pepper.ts';

const PROBE = fileURLToPath(new URL('./probe-preload.ts', import.meta.url));
const run = promisify(execFile);
let started = 0;

export interface SpawnCapture {
  /** spawnKeygate options: the probe preload with its tap file, and `env`. */
  options(env?: NodeJS.ProcessEnv): { nodeArgs: string[]; env: NodeJS.ProcessEnv };
  /** Records a key created for these processes (and its hash) as never to be written. */
  rememberKey(key: string): void;
  /**
   * Writes the processes' stdout and stderr and the ledger into the capture directory and
   * returns what a scan of them and of the tapped listener bytes finds (nothing, if keygate
   * behaves), with how many bytes of each were scanned. Call once, after the processes have
   * stopped.
   */
  finish(processes: readonly (KeygateProcess | undefined)[]): { findings: Finding[]; bytes: { log: number; responses: number } };
}

/** `pepper`: the one the processes hash keys with (spawnKeygate's childEnv sets TEST_PEPPER). */
export function spawnCapture(tag: string, pepper = TEST_PEPPER): SpawnCapture {
  const testFile = basename(expect.getState().testPath ?? 'unknown').replace(/\.test\.ts$/, '');
  const name = `${testFile}-${tag}-${process.pid}-spawned${++started}`;
  const prefix = join(captureDir(), name);
  const hash = createKeyHasher(pepper);
  const ledger: LedgerEntry[] = [{ kind: 'pepper', value: pepper }];
  return {
    options: (env = {}) => ({ nodeArgs: ['--import', PROBE], env: { HOSTILE_TAP: `${prefix}.responses`, ...env } }),
    rememberKey(key) {
      ledger.push({ kind: 'key', value: key }, { kind: 'hash', value: hash(key) });
    },
    finish(processes) {
      const log = processes.map((p) => (p ? `${p.stdout()}${p.stderr()}` : '')).join('');
      writeFileSync(`${prefix}.log`, log);
      writeFileSync(`${prefix}.secrets.json`, JSON.stringify(ledger));
      const responses = existsSync(`${prefix}.responses`) ? readFileSync(`${prefix}.responses`, 'latin1') : '';
      const files = new Map<string, string>([
        [`${name}.log`, log],
        [`${name}.responses`, responses],
      ]);
      return { findings: scan({ files, ledgers: new Map([[name, ledger]]) }), bytes: { log: Buffer.byteLength(log), responses: responses.length } };
    },
  };
}

/**
 * The pid of the process that accepted the server end of `socket` (a connected client
 * socket to a loopback listener). Waits for the accept: until the process has taken the
 * connection from its listener's queue, no process holds it.
 */
export async function serverPid(socket: Socket, timeoutMs = 5000): Promise<number> {
  const filter = `( sport = :${socket.remotePort} and dport = :${socket.localPort} )`;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { stdout } = await run('ss', ['-Htnp', 'state', 'established', filter]);
    const pid = /pid=(\d+)/.exec(stdout)?.[1];
    if (pid !== undefined) return Number(pid);
    if (Date.now() > deadline) throw new Error(`no process holds the server end of 127.0.0.1:${socket.localPort} → ${socket.remotePort}: ${stdout}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

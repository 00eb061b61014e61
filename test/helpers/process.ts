/**
 * keygate as a separate process, the way a user runs it: `node bin/keygate.js serve` in the
 * background and one-shot CLI commands. Also: free loopback ports, temporary config files,
 * the child's resident memory (VmRSS) and cleanup that survives a failing test (every child
 * still alive when the worker exits is killed).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { connect as connectTcp, createServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import { recordChild } from './child-reaper.ts';
import { TEST_PEPPER } from './pepper.ts';

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const KEYGATE_BIN = join(REPO_ROOT, 'bin', 'keygate.js');

const alive = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of alive) child.kill('SIGKILL');
});

/** config/keygate.yaml as shipped, parsed (for tests that run the example config). */
export function shippedConfig(): Record<string, any> {
  return parseYaml(readFileSync(join(REPO_ROOT, 'config', 'keygate.yaml'), 'utf8')) as Record<string, any>;
}

/** Free ports for the shipped config's three listeners: proxy, admin and the echo upstream. */
export async function shippedPorts(): Promise<{ listen: number; admin: number; echo: number }> {
  const [listen, admin, echo] = (await freePorts(3)) as [number, number, number];
  return { listen, admin, echo };
}

/** `n` distinct free ports on 127.0.0.1 (all held open together, then released). */
export async function freePorts(n: number): Promise<number[]> {
  const servers = Array.from({ length: n }, () => createServer());
  try {
    return await Promise.all(
      servers.map(async (server) => {
        server.listen(0, '127.0.0.1');
        await once(server, 'listening');
        return (server.address() as AddressInfo).port;
      }),
    );
  } finally {
    await Promise.all(servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
  }
}

export interface TempDir {
  path: string;
  /** Writes `data` as YAML to `name` inside the directory and returns its path. */
  writeYaml(name: string, data: unknown): string;
  remove(): void;
}

export function tempDir(prefix = 'keygate-proc-'): TempDir {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return {
    path,
    writeYaml(name, data) {
      const file = join(path, name);
      writeFileSync(file, typeof data === 'string' ? data : toYaml(data));
      return file;
    },
    remove() {
      rmSync(path, { recursive: true, force: true });
    },
  };
}

/**
 * The child's environment: this process's, minus every KEYGATE_* and NODE_OPTIONS (so the
 * test runner's settings do not leak in), plus a pepper and `extra`.
 */
export function childEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (name.startsWith('KEYGATE_') || name === 'NODE_OPTIONS') continue;
    env[name] = value;
  }
  return { ...env, KEYGATE_PEPPER: TEST_PEPPER, ...extra };
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Starts node with `args` in the repository root and the test environment, collecting its output; killed if the worker exits. */
function spawnNode(args: string[], env: NodeJS.ProcessEnv | undefined, stdin: 'pipe' | 'ignore'): { child: ChildProcess; output: { stdout: string; stderr: string } } {
  const child = spawn(process.execPath, args, { cwd: REPO_ROOT, env: childEnv(env), stdio: [stdin, 'pipe', 'pipe'] });
  alive.add(child);
  recordChild(child);
  const output = { stdout: '', stderr: '' };
  child.stdout!.setEncoding('utf8').on('data', (s: string) => (output.stdout += s));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (output.stderr += s));
  return { child, output };
}

/** Runs `keygate <args>` to completion (killed after `timeoutMs`). */
export async function runKeygate(args: string[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number; input?: string } = {}): Promise<CliResult> {
  const { child, output } = spawnNode([KEYGATE_BIN, ...args], options.env, 'pipe');
  child.stdin!.end(options.input ?? '');
  // A safety net, not a speed check: each CLI run loads TypeScript (~1 s of CPU), and the suite
  // runs two files at once on two cores.
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 30_000);
  try {
    const [code, signal] = (await once(child, 'close')) as [number | null, NodeJS.Signals | null];
    return { code, signal, stdout: output.stdout, stderr: output.stderr };
  } finally {
    clearTimeout(timer);
    alive.delete(child);
  }
}

/** Parses `keygate keys create --json` output (one JSON object). */
export function parseJsonOutput<T = any>(result: CliResult): T {
  if (result.code !== 0) throw new Error(`keygate exited ${result.code}: ${result.stderr}`);
  return JSON.parse(result.stdout) as T;
}

export interface KeygateProcess {
  child: ChildProcess;
  pid: number;
  /** http://127.0.0.1:<proxy port>, from the "keygate listening" line. */
  url: string;
  adminUrl: string;
  stdout(): string;
  stderr(): string;
  /** The stdout JSON lines so far, parsed (non-JSON lines skipped). */
  logLines(): Record<string, unknown>[];
  /** Resolves with the exit once the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  rssKb(): Promise<number>;
  /** Sends `signal` (SIGTERM) and waits up to `timeoutMs` for the exit, then SIGKILLs. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function parseLines(text: string): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      out.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // a partial line still being written
    }
  }
  return out;
}

/**
 * Starts `keygate serve --config <configFile>` and resolves once it logs "keygate listening"
 * (so the config's log.level must be info or lower); rejects, with its output, if it exits
 * or is not listening within `timeoutMs`. The URLs come from that line, so `listen.port: 0`
 * and `admin.port: 0` work. `nodeArgs` go to node itself (e.g. `--trace-gc` when
 * investigating a memory figure).
 */
export async function spawnKeygate(configFile: string, options: { env?: NodeJS.ProcessEnv; timeoutMs?: number; nodeArgs?: string[] } = {}): Promise<KeygateProcess> {
  const { child, output } = spawnNode([...(options.nodeArgs ?? []), KEYGATE_BIN, 'serve', '--config', configFile], options.env, 'ignore');
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      alive.delete(child);
      resolve({ code, signal });
    });
  });

  const listening = await new Promise<Record<string, unknown>>((resolve, reject) => {
    const timer = setTimeout(() => finish(new Error(`keygate serve did not log "keygate listening" within ${options.timeoutMs ?? 20_000} ms`)), options.timeoutMs ?? 20_000);
    const check = () => {
      const line = parseLines(output.stdout).find((l) => l.msg === 'keygate listening');
      if (line) finish(null, line);
    };
    const onExit = (code: number | null, signal: NodeJS.Signals | null) => finish(new Error(`keygate serve exited (${signal ?? code}) before listening`));
    function finish(error: Error | null, line?: Record<string, unknown>) {
      clearTimeout(timer);
      child.stdout!.off('data', check);
      child.off('exit', onExit);
      if (error) {
        child.kill('SIGKILL');
        reject(new Error(`${error.message}\n--- stdout ---\n${output.stdout}\n--- stderr ---\n${output.stderr}`));
      } else resolve(line!);
    }
    child.stdout!.on('data', check);
    child.once('exit', onExit);
  });

  const pid = child.pid!;
  return {
    child,
    pid,
    url: `http://${String(listening.proxy)}`,
    adminUrl: `http://${String(listening.admin)}`,
    stdout: () => output.stdout,
    stderr: () => output.stderr,
    logLines: () => parseLines(output.stdout),
    exited,
    rssKb: () => readRssKb(pid),
    async stop(signal = 'SIGTERM', timeoutMs = 5000) {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      try {
        return await exited;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

/** VmRSS of a process, in KiB (Linux /proc). */
export async function readRssKb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  if (!match) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(match[1]);
}

export interface RssSampler {
  /** Stops sampling; the largest VmRSS seen (KiB), including one last sample. */
  stop(): Promise<{ maxKb: number; samples: number }>;
}

/** Samples a process's VmRSS every `intervalMs` until stopped. */
export function sampleRss(pid: number, intervalMs = 20): RssSampler {
  let maxKb = 0;
  let samples = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      try {
        maxKb = Math.max(maxKb, await readRssKb(pid));
        samples++;
      } catch {
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      try {
        maxKb = Math.max(maxKb, await readRssKb(pid));
        samples++;
      } catch {
        // exited
      }
      return { maxKb, samples };
    },
  };
}

export interface Blackhole {
  /** A loopback port where a TCP connect hangs (the SYN is dropped), as if the host were unreachable. */
  port: number;
  close(): Promise<void>;
}

/**
 * A loopback listener that never accepts: a child process listens with backlog 1 and then
 * blocks its event loop, and this process fills the accept queue, so the kernel drops every
 * further SYN and a connect() times out. The only way to a connect timeout without sending
 * traffic off the machine. Verified with a probe before it is returned.
 */
export async function startBlackhole(): Promise<Blackhole> {
  const script = `
    const server = require('node:net').createServer();
    server.listen({ host: '127.0.0.1', port: 0, backlog: 1 }, () => {
      process.stdout.write(server.address().port + '\\n');
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60000);
      process.exit(0);
    });`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  alive.add(child);
  recordChild(child);
  child.once('exit', () => alive.delete(child));
  const fillers: Socket[] = [];
  const close = async () => {
    for (const socket of fillers) socket.destroy();
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
  };
  try {
    const [line] = (await once(child.stdout!, 'data')) as [Buffer];
    const port = Number(String(line).trim());
    // Fill the accept queue (backlog + 1 entries); the connections past it hang in SYN_SENT.
    for (let i = 0; i < 4; i++) {
      const socket = connectTcp(port, '127.0.0.1');
      socket.on('error', () => {});
      fillers.push(socket);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
    const probe = connectTcp(port, '127.0.0.1');
    probe.on('error', () => {});
    fillers.push(probe);
    const connected = await Promise.race([once(probe, 'connect').then(() => true), new Promise((resolve) => setTimeout(resolve, 300, false))]);
    if (connected) throw new Error('startBlackhole: a connect to the full listener still succeeded');
    return { port, close };
  } catch (error) {
    await close();
    throw error;
  }
}

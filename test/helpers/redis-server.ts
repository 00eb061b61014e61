/**
 * Real `redis-server` processes for the Redis tests: each on a free loopback port with its
 * own temporary directory, no persistence unless asked for. Helpers to kill it, freeze it
 * (SIGSTOP: connections stay open but nothing answers), resume it and restart it on the
 * same port. Every process still running when the test worker exits is killed.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** Whether `redis-server` can be run here at all. */
export function redisServerAvailable(): boolean {
  const result = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  return result.status === 0;
}

/** A free loopback port; with `clusterBus`, port + 10000 is free too. */
export async function freePort(clusterBus = false): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await listenOnce(0);
    if (!clusterBus) return port;
    if (port + 10000 < 65536 && (await listenOnce(port + 10000).then(() => true, () => false))) return port;
  }
  throw new Error('no free port found');
}

async function listenOnce(port: number): Promise<number> {
  const server = createServer();
  server.listen(port, '127.0.0.1');
  await once(server, 'listening');
  const bound = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return bound;
}

/** Sends one inline command over a fresh socket and returns the raw reply (or throws). */
export async function rawCommand(port: number, command: string, timeoutMs = 1000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let data = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no reply from 127.0.0.1:${port} within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.on('connect', () => socket.write(`${command}\r\n`));
    socket.on('data', (chunk) => {
      data += chunk.toString('utf8');
      if (data.endsWith('\r\n')) {
        clearTimeout(timer);
        socket.end();
        resolve(data);
      }
    });
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

export interface RedisServerOptions {
  /** Extra arguments for redis-server (e.g. ['--replicaof', '127.0.0.1', '6380']). */
  args?: string[];
  /** Keep data across kill/restart (AOF, fsync always). */
  persist?: boolean;
  /** Start as a sentinel with this config text (the file must be writable: sentinel rewrites it). */
  sentinelConfig?: string;
  port?: number;
}

export interface RedisServer {
  port: number;
  url: string;
  dir: string;
  /** The process is running (even if paused). */
  readonly alive: boolean;
  /** Everything the server wrote to stdout/stderr (for diagnosing a failing test). */
  output(): string;
  /** SIGKILL: no shutdown save, connections reset. */
  kill(): Promise<void>;
  /** SIGSTOP: sockets stay open, nothing is answered. */
  pause(): void;
  resume(): void;
  /** Starts the server again on the same port and directory. */
  restart(): Promise<void>;
  /** Kills it (if running) and removes its directory. */
  stop(): Promise<void>;
}

export async function startRedisServer(options: RedisServerOptions = {}): Promise<RedisServer> {
  const port = options.port ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), 'keygate-redis-'));
  let args: string[];
  if (options.sentinelConfig !== undefined) {
    const file = join(dir, 'sentinel.conf');
    writeFileSync(file, `port ${port}\nbind 127.0.0.1\ndir ${dir}\n${options.sentinelConfig}\n`);
    args = [file, '--sentinel'];
  } else {
    args = [
      '--port', String(port),
      '--bind', '127.0.0.1',
      '--dir', dir,
      '--save', '',
      '--appendonly', options.persist ? 'yes' : 'no',
      ...(options.persist ? ['--appendfsync', 'always'] : []),
      ...(options.args ?? []),
    ];
  }
  let child: ChildProcess | null = null;
  let out = '';
  let paused = false;

  const launch = async () => {
    const proc = spawn('redis-server', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    running.add(proc);
    proc.stdout!.setEncoding('utf8').on('data', (s: string) => (out += s));
    proc.stderr!.setEncoding('utf8').on('data', (s: string) => (out += s));
    proc.once('exit', () => running.delete(proc));
    const deadline = Date.now() + 5000;
    for (;;) {
      if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`redis-server exited at start:\n${out}`);
      try {
        if ((await rawCommand(port, 'PING', 500)).startsWith('+PONG')) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not answer PING within 5 s:\n${out}`);
      await sleep(20);
    }
  };

  const killNow = async () => {
    const proc = child;
    child = null;
    paused = false;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = once(proc, 'exit');
    proc.kill('SIGKILL');
    await exited;
  };

  await launch();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    dir,
    get alive() {
      const proc = child as ChildProcess | null;
      return proc !== null && proc.exitCode === null && proc.signalCode === null;
    },
    output: () => out,
    kill: killNow,
    pause() {
      if (child && !paused) {
        child.kill('SIGSTOP');
        paused = true;
      }
    },
    resume() {
      if (child && paused) {
        child.kill('SIGCONT');
        paused = false;
      }
    },
    async restart() {
      await killNow();
      await launch();
    },
    async stop() {
      await killNow();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Polls `check` every `everyMs` until it returns true; throws after `timeoutMs`. */
export async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 5000, everyMs = 10): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

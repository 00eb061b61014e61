/**
 * Child processes of the bench and their clean-up: every child is registered, `stopAll`
 * sends SIGTERM (then SIGKILL after a grace period), and a last-resort `exit` handler
 * SIGKILLs whatever is still alive. Ctrl-C / SIGTERM of the harness run `stopAll` first.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';

const children = new Set<ChildProcess>();
const cleanups: (() => Promise<void>)[] = [];

process.once('exit', () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

/** Extra clean-up (e.g. the Redis server, temp directories), run by `stopAll` in reverse order. */
export function onCleanup(fn: () => Promise<void>): void {
  cleanups.push(fn);
}

export function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** Spawns a child that prints `listening <port>` on stdout and resolves with that port. */
export async function spawnListening(what: string, command: string, args: string[], options: SpawnOptions = {}): Promise<{ child: ChildProcess; port: number }> {
  const child = track(spawn(command, args, { ...options, stdio: ['ignore', 'pipe', 'inherit'] }));
  const lines = createInterface({ input: child.stdout! });
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} did not start within 10 s`)), 10_000);
    child.once('exit', (code, signal) => reject(new Error(`${what} exited at start (${code ?? signal})`)));
    lines.on('line', (line) => {
      const match = /^listening (\d+)$/.exec(line);
      if (match) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    });
  });
  child.stdout!.resume();
  return { child, port };
}

export async function stopChild(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

let stopping: Promise<void> | null = null;

/** True once clean-up has begun (after Ctrl-C, errors from the interrupted run are noise). */
export function isStopping(): boolean {
  return stopping !== null;
}

export function stopAll(): Promise<void> {
  stopping ??= (async () => {
    await Promise.all([...children].map((c) => stopChild(c)));
    for (const fn of cleanups.reverse()) {
      try {
        await fn();
      } catch (error) {
        process.stderr.write(`cleanup failed: ${(error as Error).message}\n`);
      }
    }
  })();
  return stopping;
}

/** Ctrl-C and SIGTERM: stop every child, then exit. */
export function installSignalHandlers(): void {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      process.stderr.write(`\n${signal}: stopping…\n`);
      void stopAll().finally(() => process.exit(130));
    });
  }
}

/** Runs a bench, then stops every child; a failure (not an interruption) is printed and exits 1. */
export async function runBench(what: string, main: () => Promise<void>): Promise<void> {
  try {
    await main();
    await stopAll();
  } catch (error) {
    if (!isStopping()) process.stderr.write(`${what} failed: ${(error as Error).stack ?? String(error)}\n`);
    await stopAll();
    process.exitCode = 1;
  }
}

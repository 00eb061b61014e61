/**
 * `workers: auto|N`: the primary process forks N workers (each a full keygate with its own
 * cache and revocation subscriber, sharing the listeners), restarts any that crash, forwards
 * SIGHUP (reload) and on SIGTERM/SIGINT lets every worker drain, then exits 0.
 */
import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import type { Logger } from '../observability/logger.ts';
import { relayKnownKeys } from './known-keys-ipc.ts';
import { serveClusterMetrics } from './metrics-ipc.ts';
import { serveClusterLimits } from './limits-ipc.ts';

export function workerCount(setting: 'auto' | number): number {
  return setting === 'auto' ? availableParallelism() : setting;
}

export interface PrimaryOptions {
  workers: number;
  graceMs: number;
  logger: Logger;
}

/** Resolves with the exit code once every worker has stopped after a signal. */
export function runPrimary({ workers, graceMs, logger }: PrimaryOptions): Promise<number> {
  serveClusterMetrics();
  relayKnownKeys();
  // The embedded store's rate limits, shared by the workers (workers on Redis never ask).
  serveClusterLimits();
  let stopping = false;
  const crashes: number[] = [];
  const fork = (): Worker => cluster.fork();
  cluster.on('exit', (worker, code, signal) => {
    if (stopping) return;
    const now = Date.now();
    crashes.push(now);
    while (crashes.length && now - crashes[0]! > 60_000) crashes.shift();
    // Back off when workers keep dying (e.g. the store is misconfigured), without giving up.
    const delay = Math.min(100 * 2 ** Math.max(0, crashes.length - 1), 10_000);
    logger.error({ worker: worker.process.pid, code, signal, restartInMs: delay }, 'worker exited; starting a new one');
    setTimeout(() => stopping || fork(), delay).unref();
  });
  for (let i = 0; i < workers; i++) fork();
  logger.info({ workers }, 'keygate primary started');

  process.on('SIGHUP', () => {
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGHUP');
  });
  return new Promise((resolve) => {
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal }, 'stopping workers');
      const alive = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined);
      let left = alive.length;
      if (left === 0) resolve(0);
      const force = setTimeout(() => {
        for (const worker of alive) worker.process.kill('SIGKILL');
      }, graceMs + 5000);
      force.unref();
      for (const worker of alive) {
        worker.once('exit', () => {
          if (--left === 0) {
            clearTimeout(force);
            logger.info('all workers stopped');
            resolve(0);
          }
        });
        worker.process.kill('SIGTERM');
      }
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
}

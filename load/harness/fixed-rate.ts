/**
 * An open-loop fixed-rate load generator with microsecond latencies, for the added-latency
 * scenario. autocannon's `overallRate` splits the rate across connections and lets each
 * connection send its whole per-second quota at the start of every second, so "1000 req/s"
 * is really a burst of 1000 requests once a second, and its latencies are whole
 * milliseconds. Here request i is due at start + i/rate (checked every millisecond), goes
 * out on a keep-alive undici Pool, and its latency counts from when it was due, not from
 * when it was sent (no coordinated omission).
 */
import { Pool } from 'undici';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AcResult } from './autocannon.ts';

export interface FixedRateOptions {
  url: string;
  path: string;
  rate: number;
  seconds: number;
  connections: number;
  headers: Record<string, string>;
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return 0;
  const index = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, index)]!;
}

const ms3 = (n: number) => Math.round(n * 1000) / 1000;

export async function fixedRate(o: FixedRateOptions): Promise<AcResult> {
  const pool = new Pool(o.url, { connections: o.connections, keepAliveTimeout: 60_000 });
  const total = Math.round(o.rate * o.seconds);
  const latencies = new Float64Array(total);
  const statusCodeStats: Record<string, { count: number }> = {};
  let done = 0;
  let errors = 0;
  let sent = 0;
  const inFlight = new Set<Promise<void>>();
  const start = performance.now();
  const one = async (due: number): Promise<void> => {
    try {
      const res = await pool.request({ origin: o.url, path: o.path, method: 'GET', headers: o.headers });
      await res.body.dump();
      const code = String(res.statusCode);
      (statusCodeStats[code] ??= { count: 0 }).count++;
      latencies[done++] = performance.now() - due;
    } catch {
      errors++;
    }
  };
  while (sent < total) {
    const now = performance.now();
    while (sent < total && start + (sent * 1000) / o.rate <= now) {
      const p = one(start + (sent * 1000) / o.rate);
      inFlight.add(p);
      void p.finally(() => inFlight.delete(p));
      sent++;
    }
    await sleep(1);
  }
  await Promise.all(inFlight);
  const elapsed = (performance.now() - start) / 1000;
  await pool.close();
  const sorted = latencies.subarray(0, done).sort();
  const mean = done === 0 ? 0 : sorted.reduce((a, b) => a + b, 0) / done;
  const latency = {
    mean: ms3(mean), average: ms3(mean), total: done,
    p50: ms3(percentile(sorted, 50)), p90: ms3(percentile(sorted, 90)), p99: ms3(percentile(sorted, 99)),
    p99_9: ms3(percentile(sorted, 99.9)), max: ms3(sorted.length ? sorted[sorted.length - 1]! : 0),
  };
  const rps = done / elapsed;
  return {
    requests: { mean: rps, average: rps, total: done, p50: rps, p90: rps, p99: rps, p99_9: rps, max: rps },
    latency,
    errors,
    timeouts: 0,
    non2xx: Object.entries(statusCodeStats).filter(([c]) => !c.startsWith('2')).reduce((n, [, s]) => n + s.count, 0),
    duration: elapsed,
    statusCodeStats,
  };
}

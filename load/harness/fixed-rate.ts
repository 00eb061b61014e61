/**
 * An open-loop fixed-rate load generator with microsecond latencies, for the added-latency
 * scenario. autocannon's `overallRate` splits the rate across connections and lets each
 * connection send its whole per-second quota at the start of every second, so "1000 req/s"
 * is really a burst of 1000 requests once a second, and its latencies are whole
 * milliseconds.
 *
 * Here every target gets `rate` requests a second, **interleaved in one run**: slot k is due
 * at start + k / (rate × targets) and goes to target k mod targets, so direct and keygate
 * see the same moments of the shared machine (a GC in the upstream, a busy neighbour) instead
 * of consecutive runs with different luck. Each request goes out on a keep-alive undici Pool
 * per target through a bare dispatch handler (no body stream, no promise), and two latencies
 * are kept:
 *  - from the due time: includes the generator's own lateness (it wakes every ~1 ms), the
 *    figure without coordinated omission;
 *  - from the send: the target's own latency. The generator is a separate process from the
 *    targets and never waits for a response before sending, so a target that stalls still
 *    has the requests that arrive during the stall counted with their full wait.
 * The first second is a warm-up (connections opened, JIT) and is not counted.
 */
import { execFile } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Pool, type Dispatcher } from 'undici';
import type { AcHistogram, AcResult } from './autocannon.ts';

export interface FixedRateTarget {
  name: string;
  url: string;
}

export interface FixedRateOptions {
  targets: FixedRateTarget[];
  path: string;
  /** Requests per second to each target. */
  rate: number;
  seconds: number;
  /** Keep-alive connections per target. */
  connections: number;
  headers: Record<string, string>;
}

export interface FixedRateResult extends AcResult {
  /** Latency from when the request was sent (`latency` counts from when it was due). */
  sendLatency: AcHistogram;
}

const WARMUP_MS = 1000;

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return 0;
  const index = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, index)]!;
}

const ms3 = (n: number) => Math.round(n * 1000) / 1000;

function histogram(values: Float64Array): AcHistogram {
  const sorted = values.slice().sort();
  const mean = sorted.length === 0 ? 0 : sorted.reduce((a, b) => a + b, 0) / sorted.length;
  return {
    mean: ms3(mean), average: ms3(mean), total: sorted.length,
    p50: ms3(percentile(sorted, 50)), p90: ms3(percentile(sorted, 90)), p99: ms3(percentile(sorted, 99)),
    p99_9: ms3(percentile(sorted, 99.9)), max: ms3(sorted.length ? sorted[sorted.length - 1]! : 0),
  };
}

class Tally {
  readonly fromDue: Float64Array;
  readonly fromSend: Float64Array;
  count = 0;
  errors = 0;
  inFlight = 0;
  readonly statusCodeStats: Record<string, { count: number }> = {};
  constructor(capacity: number) {
    this.fromDue = new Float64Array(capacity);
    this.fromSend = new Float64Array(capacity);
  }
}

class Probe implements Dispatcher.DispatchHandler {
  readonly #tally: Tally;
  readonly #due: number;
  readonly #sent: number;
  readonly #counted: boolean;
  #status = 0;
  constructor(tally: Tally, due: number, sent: number, counted: boolean) {
    this.#tally = tally;
    this.#due = due;
    this.#sent = sent;
    this.#counted = counted;
    tally.inFlight++;
  }
  onRequestStart(): void {}
  onResponseStart(_c: Dispatcher.DispatchController, status: number): void {
    this.#status = status;
  }
  onResponseData(): void {}
  onResponseEnd(): void {
    const now = performance.now();
    const t = this.#tally;
    t.inFlight--;
    if (!this.#counted) return;
    (t.statusCodeStats[String(this.#status)] ??= { count: 0 }).count++;
    t.fromDue[t.count] = now - this.#due;
    t.fromSend[t.count] = now - this.#sent;
    t.count++;
  }
  onResponseError(): void {
    this.#tally.inFlight--;
    if (this.#counted) this.#tally.errors++;
  }
}

export async function fixedRate(o: FixedRateOptions): Promise<Map<string, FixedRateResult>> {
  const n = o.targets.length;
  const pools = o.targets.map((t) => new Pool(t.url, { connections: o.connections, keepAliveTimeout: 60_000 }));
  const perTarget = Math.round(o.rate * o.seconds);
  const tallies = o.targets.map(() => new Tally(perTarget + n));
  const slotMs = 1000 / (o.rate * n);
  const warmupSlots = Math.round(WARMUP_MS / slotMs);
  const total = warmupSlots + perTarget * n;
  const request = { path: o.path, method: 'GET', headers: o.headers };
  const start = performance.now();
  let k = 0;
  while (k < total) {
    const now = performance.now();
    while (k < total && start + k * slotMs <= now) {
      const i = k % n;
      pools[i]!.dispatch(request, new Probe(tallies[i]!, start + k * slotMs, performance.now(), k >= warmupSlots));
      k++;
    }
    await sleep(1);
  }
  while (tallies.some((t) => t.inFlight > 0)) await sleep(5);
  const elapsed = (performance.now() - start - WARMUP_MS) / 1000;
  await Promise.all(pools.map((p) => p.close()));
  const results = new Map<string, FixedRateResult>();
  o.targets.forEach((target, i) => {
    const t = tallies[i]!;
    const rps = t.count / elapsed;
    const requests = { mean: rps, average: rps, total: t.count, p50: rps, p90: rps, p99: rps, p99_9: rps, max: rps };
    results.set(target.name, {
      requests,
      latency: histogram(t.fromDue.subarray(0, t.count)),
      sendLatency: histogram(t.fromSend.subarray(0, t.count)),
      errors: t.errors,
      timeouts: 0,
      non2xx: Object.entries(t.statusCodeStats).filter(([c]) => !c.startsWith('2')).reduce((sum, [, s]) => sum + s.count, 0),
      duration: elapsed,
      statusCodeStats: t.statusCodeStats,
    });
  });
  return results;
}

/**
 * `fixedRate` in a child process of its own (`node fixed-rate.ts '<options JSON>'` prints the
 * results as JSON): the harness process holds the keys and every earlier result, and its
 * garbage collections would otherwise land in the latencies of whichever target was in
 * flight.
 */
export async function fixedRateInChild(o: FixedRateOptions): Promise<Map<string, FixedRateResult>> {
  const out = await new Promise<string>((resolve, reject) => {
    execFile(process.execPath, [fileURLToPath(import.meta.url), JSON.stringify(o)], { maxBuffer: 16 * 1024 * 1024 }, (error, stdout) => (error ? reject(error) : resolve(stdout)));
  });
  return new Map(JSON.parse(out) as [string, FixedRateResult][]);
}

if (process.argv[1] !== undefined && import.meta.filename === process.argv[1] && process.argv[2] !== undefined) {
  const results = await fixedRate(JSON.parse(process.argv[2]) as FixedRateOptions);
  process.stdout.write(JSON.stringify([...results]));
}

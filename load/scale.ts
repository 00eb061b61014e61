/**
 * `npm run bench:scale`: does keygate's cost depend on how many keys exist, and what does
 * it hold in memory?
 *
 *  - flat: two redis-servers, one holding --small keys and one holding --large keys, each
 *    behind its own keygate (same config, a cache far smaller than the keys in rotation, so
 *    every request is a store lookup). Both are loaded in alternation with the same number
 *    of distinct keys (--rotate, drawn at random from each store): the ratio large/small is
 *    what a million keys cost over a thousand.
 *  - memory: a keygate whose cache holds --cached keys: resident memory idle, after every
 *    one of them has been verified once (all cached), then sampled across a --soak-request
 *    run of cache hits spread over those keys, to show whether anything grows.
 *
 *   node load/scale.ts [--small 1000] [--large 1000000] [--rotate 1000] [--duration 5]
 *                      [--rounds 3] [--cached 100000] [--soak 1000000] [--only flat,memory]
 *
 * Prints a markdown report and writes it to load/results/scale-<timestamp>.md.
 */
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startRedisServer } from '../test/helpers/redis-server.ts';
import { autocannon, rotateKeys } from './harness/autocannon.ts';
import { metricsText, probeMemory, startKeygate, type KeygateProcess } from './harness/keygate-process.ts';
import { createKeys, type StoreTarget } from './harness/keys.ts';
import { publish } from './harness/report.ts';
import { installSignalHandlers, onCleanup, runBench, spawnListening, stopChild } from './harness/processes.ts';

const here = fileURLToPath(new URL('.', import.meta.url));
const PEPPER = 'bench-pepper-0123456789abcdef';

const { values } = parseArgs({
  options: {
    small: { type: 'string', default: '1000' },
    large: { type: 'string', default: '1000000' },
    rotate: { type: 'string', default: '1000' },
    duration: { type: 'string', default: '5' },
    rounds: { type: 'string', default: '3' },
    connections: { type: 'string', default: '64' },
    cached: { type: 'string', default: '100000' },
    soak: { type: 'string', default: '1000000' },
    only: { type: 'string', default: 'flat,memory' },
  },
});
const int = (name: keyof typeof values): number => {
  const n = Number(values[name]);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name} must be a positive whole number, got ${values[name]}`);
  return n;
};
const small = int('small');
const large = int('large');
const rotate = int('rotate');
const duration = int('duration');
const rounds = int('rounds');
const connections = int('connections');
const cached = int('cached');
const soak = int('soak');
const parts = new Set(String(values.only).split(','));
if (rotate > small) throw new Error('--rotate must not exceed --small');

const log = (text: string) => process.stderr.write(`${text}\n`);
installSignalHandlers();

/** Metric values from keygate's /metrics, summed over label sets. */
async function metric(adminPort: number, name: string): Promise<number> {
  let sum = 0;
  for (const line of (await metricsText(adminPort)).split('\n')) {
    if (line.startsWith(`${name} `) || line.startsWith(`${name}{`)) sum += Number(line.split(' ').at(-1));
  }
  return sum;
}
/** RSS and V8 heap in use after a full GC (the probe preloaded into keygate), in MB. */
async function memory(kg: KeygateProcess): Promise<{ rss: number; heap: number }> {
  const probe = await probeMemory(kg);
  return { rss: probe.rss / 2 ** 20, heap: probe.heapUsed / 2 ** 20 };
}
const lookups = (adminPort: number) => metric(adminPort, 'keygate_store_lookup_duration_seconds_count');

function sample<T>(items: readonly T[], count: number): T[] {
  const copy = [...items];
  for (let i = 0; i < count; i++) {
    const j = i + Math.floor(Math.random() * (copy.length - i));
    [copy[i], copy[j]] = [copy[j]!, copy[i]!];
  }
  return copy.slice(0, count);
}

function subdir(dir: string, name: string): string {
  const path = join(dir, name);
  mkdirSync(path);
  return path;
}

async function timed<T>(what: string, fn: () => Promise<T>): Promise<T> {
  const t0 = Date.now();
  log(`${what}…`);
  const value = await fn();
  log(`  ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return value;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'keygate-scale-'));
  onCleanup(async () => rmSync(dir, { recursive: true, force: true }));
  const started = new Date();
  const report: string[] = [
    `# keygate scale bench — ${started.toISOString()}`,
    '',
    `- Node ${process.version}, ${availableParallelism()} cores (${cpus()[0]?.model ?? 'unknown CPU'}), load average at start ${loadavg().map((n) => n.toFixed(2)).join(' ')}`,
    '- keygate: one process, Redis store (its own redis-server), access log on (to a file), metrics on',
    '',
  ];
  const upstream = await spawnListening('upstream', process.execPath, [join(here, 'harness/upstream.ts')]);

  const redisSmall = await startRedisServer();
  onCleanup(() => redisSmall.stop());
  const redisLarge = await startRedisServer();
  onCleanup(() => redisLarge.stop());
  const smallStore: StoreTarget = { kind: 'redis', url: redisSmall.url };
  const largeStore: StoreTarget = { kind: 'redis', url: redisLarge.url };
  const smallKeys = await timed(`creating ${small} keys in the small store`, () => createKeys(smallStore, PEPPER, small));
  const largeKeys = await timed(`creating ${large} keys in the large store`, () => createKeys(largeStore, PEPPER, large, 2000));

  if (parts.has('flat')) {
    // A cache of 100 entries with ≥1000 keys in rotation: every request asks Redis.
    const cacheMax = Math.max(1, Math.floor(rotate / 10));
    const a = await startKeygate({ dir: subdir(dir, 'small'), upstreamPort: upstream.port, store: smallStore, workers: 1, pepper: PEPPER, cacheMax });
    const b = await startKeygate({ dir: subdir(dir, 'large'), upstreamPort: upstream.port, store: largeStore, workers: 1, pepper: PEPPER, cacheMax });
    const targets = [
      { name: `${small} keys`, kg: a, keys: sample(smallKeys, rotate) },
      { name: `${large} keys`, kg: b, keys: sample(largeKeys, rotate) },
    ];
    for (const t of targets) await autocannon({ url: `http://127.0.0.1:${t.kg.port}/`, connections, duration: 1, requests: rotateKeys(t.keys) });
    const rows: { round: number; name: string; rps: number; p50: number; p99: number; perReq: number; non2xx: number }[] = [];
    for (let round = 1; round <= rounds; round++) {
      const order = round % 2 === 1 ? targets : [...targets].reverse();
      for (const t of order) {
        const before = await lookups(t.kg.adminPort);
        const r = await autocannon({ url: `http://127.0.0.1:${t.kg.port}/`, connections, duration, requests: rotateKeys(t.keys) });
        const total = Object.values(r.statusCodeStats).reduce((n, s) => n + s.count, 0);
        const perReq = total === 0 ? 0 : ((await lookups(t.kg.adminPort)) - before) / total;
        rows.push({ round, name: t.name, rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, perReq, non2xx: r.non2xx + r.errors });
        log(`flat r${round} ${t.name}: ${r.requests.average.toFixed(0)} rps, ${perReq.toFixed(2)} lookups/req`);
      }
    }
    const ratios = Array.from({ length: rounds }, (_, i) => {
      const [s, l] = [rows.find((r) => r.round === i + 1 && r.name === targets[0]!.name)!, rows.find((r) => r.round === i + 1 && r.name === targets[1]!.name)!];
      return l.rps / s.rps;
    });
    report.push(
      `## Verify cost against the number of keys (cache-miss path)`,
      '',
      `${rotate} distinct keys in rotation drawn from each store, cache.max ${cacheMax} (every request a store lookup), ${connections} connections, ${duration} s per run.`,
      '',
      '| round | store | rps | p50 ms | p99 ms | store lookups/req | non-2xx |',
      '| --- | --- | ---: | ---: | ---: | ---: | ---: |',
      ...rows.map((r) => `| ${r.round} | ${r.name} | ${r.rps.toFixed(0)} | ${r.p50} | ${r.p99} | ${r.perReq.toFixed(2)} | ${r.non2xx} |`),
      '',
      `rps ${large} keys / ${small} keys, per round: ${ratios.map((x) => x.toFixed(3)).join(', ')}`,
      '',
    );
    await stopChild(a.child);
    await stopChild(b.child);
  }

  if (parts.has('memory')) {
    const count = Math.min(cached, largeKeys.length);
    const kg = await startKeygate({ dir: subdir(dir, 'memory'), upstreamPort: upstream.port, store: largeStore, workers: 1, pepper: PEPPER, cacheMax: count + 1000, probe: true });
    const keys = largeKeys.slice(0, count);
    const idle = await memory(kg);
    await timed(`verifying ${count} keys once`, () => autocannon({ url: `http://127.0.0.1:${kg.port}/`, connections, duration: 3600, amount: count, requests: rotateKeys(keys) }));
    const entries = await metric(kg.adminPort, 'keygate_cache_entries');
    const warm = await memory(kg);
    const samples: { requests: number; rss: number; heap: number }[] = [{ requests: 0, ...warm }];
    const chunk = Math.max(1, Math.floor(soak / 10));
    let sent = 0;
    while (sent < soak) {
      const amount = Math.min(chunk, soak - sent);
      await autocannon({ url: `http://127.0.0.1:${kg.port}/`, connections, duration: 3600, amount, requests: rotateKeys(keys) });
      sent += amount;
      samples.push({ requests: sent, ...(await memory(kg)) });
      log(`soak ${sent}/${soak}: rss ${samples.at(-1)!.rss.toFixed(1)} MB, heap ${samples.at(-1)!.heap.toFixed(1)} MB`);
    }
    const half = samples[Math.floor(samples.length / 2)]!;
    const last = samples.at(-1)!;
    report.push(
      '## Memory',
      '',
      `cache.max ${count + 1000}; ${count} distinct keys verified once (cache entries afterwards: ${entries}), then ${soak} cache-hit requests over those keys in ${samples.length - 1} steps.`,
      '',
      `| state | RSS MB | V8 heap used MB |`,
      '| --- | ---: | ---: |',
      `| idle, after start | ${idle.rss.toFixed(1)} | ${idle.heap.toFixed(1)} |`,
      `| ${count} keys cached | ${warm.rss.toFixed(1)} | ${warm.heap.toFixed(1)} |`,
      ...samples.slice(1).map((s) => `| after ${s.requests} requests | ${s.rss.toFixed(1)} | ${s.heap.toFixed(1)} |`),
      '',
      `${count} cached keys: heap +${(warm.heap - idle.heap).toFixed(1)} MB over idle (${(((warm.heap - idle.heap) * 2 ** 20) / count).toFixed(0)} bytes per key), RSS +${(warm.rss - idle.rss).toFixed(1)} MB (with the warm-up's connections and buffers). Across the soak: heap ${(last.heap - warm.heap).toFixed(1)} MB, RSS ${(last.rss - warm.rss).toFixed(1)} MB from cached to the end; over its second half heap ${(last.heap - half.heap).toFixed(1)} MB, RSS ${(last.rss - half.rss).toFixed(1)} MB. Both read after a full GC in keygate (test/hostile/helpers/probe-preload.ts).`,
      '',
    );
    await stopChild(kg.child);
  }

  const file = publish(report.join('\n'), started, 'scale-');
  log(`written to ${file}`);
}

await runBench('scale bench', main);

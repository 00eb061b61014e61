/**
 * `npm run bench`: keygate against the same upstream reached directly and through a plain
 * http-proxy-3 baseline, scenario by scenario, targets in alternation within one run.
 * Only the ratios of one run mean anything on a shared machine.
 *
 *   node load/run.ts [--duration S] [--connections N] [--workers N|auto] [--redis]
 *                    [--only hit,miss,…] [--rounds N] [--keys N] [--rate-seconds S]
 *
 * Prints a markdown report and writes it to load/results/<timestamp>.md.
 */
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startRedisServer } from '../test/helpers/redis-server.ts';
import { autocannon, type AcOptions } from './harness/autocannon.ts';
import { fixedRateInChild } from './harness/fixed-rate.ts';
import { startKeygate, metricsText } from './harness/keygate-process.ts';
import { badChecksumKeys, createKeys, unknownKeys, type StoreTarget } from './harness/keys.ts';
import { installSignalHandlers, onCleanup, runBench, spawnListening } from './harness/processes.ts';
import { addedLatency, missAgainstHit, publish, table, type Run } from './harness/report.ts';
import { SCENARIO_NAMES, scenarios, type TargetName } from './harness/scenarios.ts';

const here = fileURLToPath(new URL('.', import.meta.url));
const PEPPER = 'bench-pepper-0123456789abcdef';
const CACHE_MAX = 1000;
const RATE = 1000;

const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '5' },
    connections: { type: 'string', default: '64' },
    workers: { type: 'string', default: '1' },
    redis: { type: 'boolean', default: false },
    only: { type: 'string' },
    rounds: { type: 'string', default: '1' },
    keys: { type: 'string', default: '20000' },
    'rate-seconds': { type: 'string', default: '10' },
    warmup: { type: 'string', default: '1' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (values.help) {
  process.stdout.write(`usage: node load/run.ts [--duration S=5] [--connections N=64] [--workers N|auto] [--redis]
  [--only ${SCENARIO_NAMES.join(',')}] [--rounds N=1] [--keys N=20000] [--rate-seconds S=10] [--warmup S=1]\n`);
  process.exit(0);
}
const positive = (name: string, text: string): number => {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number, got ${text}`);
  return n;
};
const duration = positive('duration', values.duration);
const connections = Math.round(positive('connections', values.connections));
const workers: number | 'auto' = values.workers === 'auto' ? 'auto' : Math.round(positive('workers', values.workers));
const rounds = Math.round(positive('rounds', values.rounds));
const keyCount = Math.round(positive('keys', values.keys));
const rateSeconds = positive('rate-seconds', values['rate-seconds']);
const warmup = Number(values.warmup);
const only = values.only?.split(',').map((s) => s.trim()).filter(Boolean);
for (const name of only ?? []) {
  if (!(SCENARIO_NAMES as readonly string[]).includes(name)) throw new Error(`--only: unknown scenario ${name} (known: ${SCENARIO_NAMES.join(', ')})`);
}

const log = (text: string) => process.stderr.write(`${text}\n`);
installSignalHandlers();

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'keygate-bench-'));
  onCleanup(async () => rmSync(dir, { recursive: true, force: true }));
  const started = new Date();
  const load = loadavg().map((n) => n.toFixed(2)).join(' ');

  let store: StoreTarget = { kind: 'embedded', path: join(dir, 'keygate.db') };
  if (values.redis) {
    const redis = await startRedisServer();
    onCleanup(() => redis.stop());
    store = { kind: 'redis', url: redis.url };
    log(`redis-server on ${redis.url}`);
  }

  log(`creating ${keyCount + 1} keys in the ${store.kind} store…`);
  const t0 = Date.now();
  const [hit, ...many] = await createKeys(store, PEPPER, keyCount + 1);
  log(`  ${Date.now() - t0} ms`);
  const keys = { hit: hit!, many, badChecksum: badChecksumKeys(1000), unknown: unknownKeys(Math.max(20_000, keyCount)) };

  const node = process.execPath;
  const upstream = await spawnListening('upstream', node, [join(here, 'harness/upstream.ts')]);
  const baseline = await spawnListening('baseline', node, [join(here, 'harness/baseline-proxy.ts')], {
    env: { ...process.env, BASELINE_KEY: keys.hit, BASELINE_TARGET: `http://127.0.0.1:${upstream.port}` },
  });
  const floor = await spawnListening('floor', node, [join(here, 'harness/floor-proxy.ts')], {
    env: { ...process.env, FLOOR_KEY: keys.hit, FLOOR_TARGET: `http://127.0.0.1:${upstream.port}` },
  });
  const keygate = await startKeygate({ dir, upstreamPort: upstream.port, store, workers, pepper: PEPPER, cacheMax: CACHE_MAX });
  log(`upstream :${upstream.port}  baseline :${baseline.port}  floor :${floor.port}  keygate :${keygate.port} (admin :${keygate.adminPort}, workers ${workers})`);

  const urls: Record<TargetName, string> = {
    direct: `http://127.0.0.1:${upstream.port}`,
    keygate: `http://127.0.0.1:${keygate.port}`,
    baseline: `http://127.0.0.1:${baseline.port}`,
    floor: `http://127.0.0.1:${floor.port}`,
  };

  // Sanity: the valid key passes keygate and the baseline, a bad one does not.
  for (const target of ['keygate', 'baseline', 'floor'] as const) {
    const ok = await fetch(`${urls[target]}/`, { headers: { 'x-api-key': keys.hit } });
    const bad = await fetch(`${urls[target]}/`, { headers: { 'x-api-key': keys.unknown[0]! } });
    await ok.arrayBuffer();
    await bad.arrayBuffer();
    if (ok.status !== 200 || bad.status !== 401) throw new Error(`${target}: valid key → ${ok.status}, unknown key → ${bad.status} (expected 200, 401)`);
  }

  const lookups = async (): Promise<number> => {
    let sum = 0;
    for (const line of (await metricsText(keygate.adminPort)).split('\n')) {
      if (line.startsWith('keygate_store_lookup_duration_seconds_count')) sum += Number(line.split(' ').at(-1));
    }
    return sum;
  };

  const base = (target: TargetName): AcOptions => ({ url: urls[target], connections, duration: warmup, timeout: 10 });
  if (warmup > 0) {
    log(`warm-up ${warmup} s per target`);
    for (const target of ['direct', 'keygate', 'floor', 'baseline'] as const) {
      await autocannon({ ...base(target), headers: { 'x-api-key': keys.hit } });
    }
  }

  const selected = scenarios(keys, duration, rateSeconds, RATE).filter((s) => (only ? only.includes(s.name) : !s.optIn));
  const runs: Run[] = [];
  // Round-major: every scenario once per round, so scenarios compared with each other
  // (miss against hit-rotated) ran minutes apart at most, not a whole bench apart.
  for (let round = 1; round <= rounds; round++) {
    for (const scenario of selected) {
      if (scenario.generator === 'open-loop') {
        // Every target in one interleaved run (fixed-rate.ts): the same moments for all.
        const before = await lookups();
        const results = await fixedRateInChild({
          targets: scenario.targets.map((name) => ({ name, url: urls[name] })),
          path: scenario.path ?? '/',
          rate: scenario.rate ?? RATE,
          seconds: scenario.seconds,
          connections,
          headers: scenario.options().headers ?? {},
        });
        const after = await lookups();
        for (const target of scenario.targets) {
          const result = results.get(target)!;
          const run: Run = { scenario, round, target, result, sendLatency: result.sendLatency };
          if (target === 'keygate') run.lookupsPerRequest = result.requests.total === 0 ? 0 : (after - before) / result.requests.total;
          runs.push(run);
          log(`${scenario.name} r${round} ${target}: p50 ${result.sendLatency.p50} ms, p99 ${result.sendLatency.p99} ms from the send`);
        }
        continue;
      }
      // Alternate the order between rounds so no target always runs first.
      const order = round % 2 === 1 ? scenario.targets : [...scenario.targets].reverse();
      for (const target of order) {
        const before = target === 'keygate' ? await lookups() : 0;
        const result = await autocannon({
          ...base(target),
          duration: scenario.seconds,
          ...scenario.options(),
          url: urls[target] + (scenario.path ?? '/'),
          ...(scenario.rate === undefined ? {} : { overallRate: scenario.rate }),
        });
        const run: Run = { scenario, round, target, result };
        if (target === 'keygate') {
          const total = Object.values(result.statusCodeStats).reduce((n, s) => n + s.count, 0);
          run.lookupsPerRequest = total === 0 ? 0 : ((await lookups()) - before) / total;
        }
        runs.push(run);
        log(`${scenario.name} r${round} ${target}: ${result.requests.average.toFixed(0)} rps, p50 ${result.latency.p50} ms, p99 ${result.latency.p99} ms`);
      }
    }
  }

  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  const report = [
    `# keygate bench — ${started.toISOString()}`,
    '',
    `- Node ${process.version}, ${availableParallelism()} cores (${cpu}), load average at start ${load}`,
    `- keygate: store ${store.kind}, workers ${workers}, access log on (to a file), metrics on, cache.max ${CACHE_MAX}; ${keyCount} keys for the miss scenario`,
    `- autocannon: ${connections} connections, ${duration} s per target run (fixed-rate: ${rateSeconds} s at ${RATE} req/s), ${rounds} round(s), warm-up ${warmup} s per target`,
    '- upstream, baseline (http-proxy-3 + keep-alive agent + `x-api-key === KEY`), floor (node:http + one undici Pool + `x-api-key === KEY`, nothing else: load/harness/floor-proxy.ts), keygate, autocannon (in the harness) and the fixed-rate generator each in their own process, all on 127.0.0.1, sharing the cores',
    '- latencies: autocannon\'s are whole milliseconds (HDR histogram, lowest discernible value 1 ms: sub-millisecond differences show as 0 or 1); the fixed-rate scenario uses load/harness/fixed-rate.ts instead (open loop, evenly spaced, all targets interleaved in one run, µs resolution; latency from the due time includes up to ~1 ms of the generator\'s timer granularity, latency from the send does not: compare the added latency)',
    '- only ratios within this run mean anything; ⚠ marks a run with unexpected status codes or errors',
    '',
    '## Scenarios',
    '',
    ...selected.map((s) => `- **${s.name}** (${s.targets.join(', ')}): ${s.description}`),
    '',
    '## Results',
    '',
    table(runs),
    '',
  ];
  const missHit = missAgainstHit(runs);
  if (missHit) report.push('## Cache miss against cache hit (keygate rps, same round, same generator)', '', missHit, '');
  const added = addedLatency(runs);
  if (added) report.push('## Added latency at a fixed rate (minus direct, same round)', '', added, '');
  const file = publish(report.join('\n'), started);
  log(`written to ${file}`);
}

await runBench('bench', main);

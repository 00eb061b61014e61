/**
 * The bench report: one markdown table of every target run (rps, latency percentiles,
 * status codes, ratios to direct and to the baseline measured in the same round), plus
 * the added latency of the fixed-rate scenario.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AcHistogram, AcResult } from './autocannon.ts';
import type { Scenario, TargetName } from './scenarios.ts';

export interface Run {
  scenario: Scenario;
  round: number;
  target: TargetName;
  result: AcResult;
  /** keygate only: store lookups per request during the run (from /metrics). */
  lookupsPerRequest?: number;
  /** Open-loop runs: latency from the send (result.latency counts from the due time). */
  sendLatency?: AcHistogram;
}

const f0 = (n: number) => n.toFixed(0);
const f2 = (n: number) => n.toFixed(2);
/** autocannon latencies are whole ms; the open-loop generator's have µs. */
const ms = (n: number) => (Number.isInteger(n) ? String(n) : n.toFixed(3));
const ratio = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined || b === 0 ? '' : (a / b).toFixed(3));

function codes(result: AcResult): string {
  const parts = Object.entries(result.statusCodeStats).map(([code, { count }]) => `${code}×${count}`);
  if (result.errors) parts.push(`err×${result.errors}`);
  if (result.timeouts) parts.push(`timeout×${result.timeouts}`);
  return parts.join(' ');
}

function rowOk(run: Run): string {
  const expected = run.target === 'direct' ? 200 : run.scenario.expect;
  const stats = run.result.statusCodeStats;
  const good = Object.keys(stats).every((c) => Number(c) === expected) && run.result.errors === 0 && run.result.timeouts === 0;
  return good ? '' : ' ⚠';
}

export function table(runs: Run[]): string {
  const lines = [
    '| scenario | round | target | rps | p50 ms | p99 ms | p99.9 ms | status codes | store lookups/req | rps ×direct | rps ×floor | rps ×baseline |',
    '| --- | --- | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |',
  ];
  for (const run of runs) {
    const peer = (t: TargetName) => runs.find((r) => r.scenario === run.scenario && r.round === run.round && r.target === t)?.result.requests.average;
    const rps = run.result.requests.average;
    const gw = run.target === 'keygate' && run.scenario.rate === undefined; // a fixed rate makes rps ratios meaningless
    lines.push(
      `| ${run.scenario.name} | ${run.round} | ${run.target} | ${f0(rps)} | ${ms(run.result.latency.p50)} | ${ms(run.result.latency.p99)} | ${ms(run.result.latency.p99_9)} | ${codes(run.result)}${rowOk(run)} | ${run.lookupsPerRequest === undefined ? '' : f2(run.lookupsPerRequest)} | ${gw ? ratio(rps, peer('direct')) : ''} | ${gw ? ratio(rps, peer('floor')) : ''} | ${gw ? ratio(rps, peer('baseline')) : ''} |`,
    );
  }
  return lines.join('\n');
}

/**
 * For rate-limited scenarios: each target's percentiles minus direct's, per round, from
 * the due time and (open-loop runs) from the send.
 */
export function addedLatency(runs: Run[]): string {
  const rated = runs.filter((r) => r.scenario.rate !== undefined && r.target !== 'direct');
  if (rated.length === 0) return '';
  const lines = [
    '| scenario | round | target | achieved rps | p50 ms | p99 ms | p99.9 ms | added p50 ms | added p99 ms | added p99.9 ms | from the send: p50 / p99 / p99.9 ms | added from the send: p50 / p99 / p99.9 ms |',
    '| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  const plus = (a: number, b: number | undefined) => (b === undefined ? '' : `${a - b >= 0 ? '+' : ''}${ms(Math.round((a - b) * 1000) / 1000)}`);
  for (const run of rated) {
    const peer = runs.find((r) => r.scenario === run.scenario && r.round === run.round && r.target === 'direct');
    const direct = peer?.result.latency;
    const l = run.result.latency;
    const s = run.sendLatency;
    const ds = peer?.sendLatency;
    const sent = s ? `${ms(s.p50)} / ${ms(s.p99)} / ${ms(s.p99_9)}` : '';
    const sentAdded = s && ds ? `${plus(s.p50, ds.p50)} / ${plus(s.p99, ds.p99)} / ${plus(s.p99_9, ds.p99_9)}` : '';
    lines.push(`| ${run.scenario.name} | ${run.round} | ${run.target} | ${f0(run.result.requests.average)} | ${ms(l.p50)} | ${ms(l.p99)} | ${ms(l.p99_9)} | ${plus(l.p50, direct?.p50)} | ${plus(l.p99, direct?.p99)} | ${plus(l.p99_9, direct?.p99_9)} | ${sent} | ${sentAdded} |`);
  }
  for (const run of runs.filter((r) => r.scenario.rate !== undefined && r.target === 'direct' && r.sendLatency)) {
    const s = run.sendLatency!;
    lines.push(`| ${run.scenario.name} | ${run.round} | direct | ${f0(run.result.requests.average)} | ${ms(run.result.latency.p50)} | ${ms(run.result.latency.p99)} | ${ms(run.result.latency.p99_9)} | | | | ${ms(s.p50)} / ${ms(s.p99)} / ${ms(s.p99_9)} | |`);
  }
  return lines.join('\n');
}

/** keygate's rps on the miss scenario over its rps on hit-rotated, per round. */
export function missAgainstHit(runs: Run[]): string {
  const pick = (name: string, round: number, target: TargetName) => runs.find((r) => r.scenario.name === name && r.round === round && r.target === target)?.result.requests.average;
  const lines = ['| round | miss rps | hit rps | miss/hit | miss ×direct | hit ×direct |', '| --- | ---: | ---: | ---: | ---: | ---: |'];
  for (const round of new Set(runs.map((r) => r.round))) {
    const miss = pick('miss', round, 'keygate');
    const hit = pick('hit-rotated', round, 'keygate');
    if (miss === undefined || hit === undefined) continue;
    lines.push(`| ${round} | ${f0(miss)} | ${f0(hit)} | ${ratio(miss, hit)} | ${ratio(miss, pick('miss', round, 'direct'))} | ${ratio(hit, pick('hit-rotated', round, 'direct'))} |`);
  }
  return lines.length > 2 ? lines.join('\n') : '';
}

/** Prints a report and writes it to load/results/<prefix><start time>.md; returns the file. */
export function publish(text: string, started: Date, prefix = ''): string {
  process.stdout.write(`${text}\n`);
  const dir = fileURLToPath(new URL('../results/', import.meta.url));
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${prefix}${started.toISOString().replace(/[:.]/g, '-')}.md`);
  writeFileSync(file, text);
  return file;
}

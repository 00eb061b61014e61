/**
 * Faults in what keygate depends on, part 4: time. A bounded soak through a keygate in its
 * own process: a mixed load — valid keys, uploads, unknown keys (each a store lookup),
 * malformed keys, no key, no route — in phases, with keygate's heap (after a GC), RSS,
 * file descriptors and TCP handles read between phases (probe-preload.ts). Memory and
 * handles must stay flat: the last phase may not end higher than the first by more than
 * noise, and nothing may be left open once the clients are gone.
 *
 * `npm test` runs 100k requests; `KEYGATE_SOAK_REQUESTS=1000000 npx vitest run
 * test/hostile/soak.test.ts` runs the long one (figures in the report and load/README.md).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { autocannon, type AcOptions, type AcRequest } from '../../load/harness/autocannon.ts';
import { generateKey } from '../../src/keys/format.ts';
import { waitFor } from '../helpers/http.ts';
import { handles, spawnProbedKeygate, type Probe, type ProbedKeygate } from './helpers/child.ts';
import { typo } from '../helpers/typo.ts';
import { closeAll } from '../helpers/close.ts';
import { serveLocal, type LocalServer } from '../helpers/upstream.ts';

const TOTAL = Number(process.env.KEYGATE_SOAK_REQUESTS ?? 100_000);
const PHASES = 5;
const WARM_UP = Math.min(20_000, TOTAL / PHASES);
const MB = 1024 * 1024;

let upstream: LocalServer;
let kg: ProbedKeygate;
let key: string;

beforeAll(async () => {
  upstream = await serveLocal((req, res) => {
    req.resume();
    req.on('end', () => res.end('ok'));
  });
  kg = await spawnProbedKeygate('soak', {
    log: { level: 'info', access: true },
    // One client address sends every kind of failure here; the limiter has its own test.
    limits: { failedAuth: { max: 0 } },
    cache: { negativeMax: 10_000 },
    routes: [{ name: 'api', pathPrefix: '/api', upstream: upstream.url }],
  });
  key = await kg.createKey('acme', 'soak');
}, 30_000);

afterAll(() => closeAll(kg, upstream));

/** One cycle of the mix: 20 requests, of which 14 succeed. */
function mix(): NonNullable<AcOptions['requests']> {
  const body = Buffer.alloc(1024, 'b');
  const entry = (make: () => AcRequest) => ({ setupRequest: (req: AcRequest) => ({ ...req, ...make() }) });
  const valid = entry(() => ({ method: 'GET', path: '/api/items', headers: { 'x-api-key': key } }));
  return [
    ...Array.from({ length: 12 }, () => valid),
    entry(() => ({ method: 'POST', path: '/api/upload', headers: { 'x-api-key': key, 'content-type': 'application/octet-stream' }, body })),
    entry(() => ({ method: 'POST', path: '/api/upload', headers: { 'x-api-key': key, 'content-type': 'application/octet-stream' }, body })),
    entry(() => ({ method: 'GET', path: '/api/items', headers: { 'x-api-key': generateKey('kg', 'acme') } })),
    entry(() => ({ method: 'GET', path: '/api/items', headers: { 'x-api-key': generateKey('kg', 'soak') } })),
    entry(() => ({ method: 'GET', path: '/api/items', headers: { 'x-api-key': typo(key) } })),
    entry(() => ({ method: 'GET', path: '/api/items', headers: { 'x-api-key': 'kg_acme_short' } })),
    entry(() => ({ method: 'GET', path: '/api/items', headers: {} })),
    entry(() => ({ method: 'GET', path: '/nowhere', headers: { 'x-api-key': key } })),
  ];
}

async function run(amount: number): Promise<{ rps: number; statuses: Record<string, number>; errors: number }> {
  const result = await autocannon({ url: kg.url, connections: 20, duration: 0, amount, requests: mix(), timeout: 10 } as AcOptions & { amount: number });
  const statuses = Object.fromEntries(Object.entries(result.statusCodeStats).map(([code, s]) => [code, s.count]));
  return { rps: Math.round(result.requests.average), statuses, errors: result.errors + result.timeouts };
}

/** A probe once the load's connections are gone (they close at the end of a run). */
async function quiet(): Promise<Probe> {
  let probe = await kg.probe();
  await waitFor(async () => {
    probe = await kg.probe();
    return handles(probe) === 0;
  }, 10_000, 100).catch(() => {});
  return probe;
}

describe(`soak: ${TOTAL.toLocaleString('en')} requests`, () => {
  it('memory and handles stay flat', async () => {
    const warm = await run(WARM_UP);
    expect(warm.errors).toBe(0);
    const baseline = await quiet();
    const rows: string[] = [`warm-up ${WARM_UP}: ${warm.rps} req/s; heap ${(baseline.heapUsed / MB).toFixed(1)} MB, rss ${(baseline.rss / MB).toFixed(0)} MB, fds ${baseline.fds}, tcp ${handles(baseline)}`];
    const heaps: number[] = [];
    const rss: number[] = [];
    let last = baseline;
    const started = Date.now();
    for (let phase = 1; phase <= PHASES; phase++) {
      const r = await run(TOTAL / PHASES);
      expect(r.errors, `phase ${phase}`).toBe(0);
      // 14 of every 20 succeed; the rest are keygate's own 401s and 404s; never a 5xx.
      expect(Object.keys(r.statuses).filter((s) => s.startsWith('5'))).toEqual([]);
      last = await quiet();
      heaps.push(last.heapUsed);
      rss.push(last.rss);
      rows.push(`phase ${phase}: ${r.rps} req/s ${JSON.stringify(r.statuses)}; heap ${(last.heapUsed / MB).toFixed(1)} MB, rss ${(last.rss / MB).toFixed(0)} MB, fds ${last.fds}, tcp ${handles(last)}`);
    }
    rows.push(`${TOTAL} requests in ${((Date.now() - started) / 1000).toFixed(1)} s; access log ${(kg.logBytes() / MB).toFixed(1)} MB`);
    console.log(`[hostile soak]\n  ${rows.join('\n  ')}`);
    // Nothing left open once the clients are gone.
    expect(handles(last)).toBe(0);
    expect(last.fds).toBeLessThanOrEqual(baseline.fds);
    // Flat: the heap after the last phase within 8 MB of the warmed-up one, and no steady
    // climb (the second half of the phases no higher than the first half by more than 4 MB).
    expect((last.heapUsed - baseline.heapUsed) / MB).toBeLessThan(8);
    const half = Math.floor(heaps.length / 2);
    const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
    expect((mean(heaps.slice(half)) - mean(heaps.slice(0, half))) / MB).toBeLessThan(4);
    // RSS takes a step or two while the allocator finds its level (V8 frees socket buffers
    // lazily), then stays: the same halves, with a wider margin.
    expect((mean(rss.slice(half)) - mean(rss.slice(0, half))) / MB).toBeLessThan(48);
  }, 30 * 60_000);
});

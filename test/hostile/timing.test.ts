/**
 * Attacks on the front door, part 7: timing. An attacker who could tell from the response
 * time how much of a guessed key matches a real one could find it a digit at a time. keygate
 * looks keys up by their HMAC, so the time must not depend on it: unknown well-formed keys
 * (valid checksum, so each one is hashed and looked up in the store) sharing 0, 32 or 52 of
 * the 56 random hex digits of a real key are sent interleaved in random order on one
 * keep-alive connection, and their latency distributions are compared pairwise — medians,
 * the Mann-Whitney effect size (0.5 = indistinguishable) and a permutation test. The bounds
 * are loose enough for a loaded 2-core CI machine; the figures are printed.
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { crc32 } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startUpstream, type TestUpstream } from '../helpers/upstream.ts';
import { startHostileKeygate, type HostileKeygate } from './helpers/capture.ts';
import { RawConnection } from '../helpers/raw-socket.ts';
import { median, permutationP, probabilityOfSuperiority, quantile } from './helpers/stats.ts';

const PER_GROUP = 1000;
const SHARED = [0, 32, 52] as const;

let upstream: TestUpstream;
let kg: HostileKeygate;
let real: string;

beforeAll(async () => {
  upstream = await startUpstream();
  kg = await startHostileKeygate('timing', {
    limits: { failedAuth: { max: 0 } },
    // Room for every unknown key, so none is evicted and asked twice.
    cache: { negativeMax: 20_000 },
    routes: [{ name: 'api', pathPrefix: '/api', upstream: upstream.url }],
    log: { level: 'warn', access: false },
  });
  real = (await kg.keys.create({ tenant: 'acme', name: 'real' })).key;
});

afterAll(async () => {
  await kg?.stop();
  await upstream?.close();
});

const used = new Set<string>();

/** A well-formed key never sent before, not `real`, sharing its first `shared` random hex digits. */
function lookalike(shared: number): string {
  for (;;) {
    const key = candidate(shared);
    if (used.has(key)) continue;
    used.add(key);
    return key;
  }
}

function candidate(shared: number): string {
  const head = real.slice(0, -64);
  const random = real.slice(-64, -8);
  let fresh = random.slice(0, shared) + randomBytes(28).toString('hex').slice(shared);
  // The digit after the shared ones must differ, or more would be shared.
  if (shared < 56 && fresh[shared] === random[shared]) fresh = fresh.slice(0, shared) + ((parseInt(random[shared]!, 16) + 1) % 16).toString(16) + fresh.slice(shared + 1);
  const body = head + fresh;
  return body + crc32(body).toString(16).padStart(8, '0');
}

describe('response time of unknown keys', () => {
  it('does not depend on how much of the key matches a real one', async () => {
    const connection = new RawConnection(kg.url);
    const send = async (key: string) => {
      const started = performance.now();
      const { response } = await connection.request(`GET /api/t HTTP/1.1\r\nHost: gw\r\nX-Api-Key: ${key}\r\n\r\n`);
      const ms = performance.now() - started;
      return { status: response?.status, ms };
    };
    // Warm-up: the real key (cached), and unknown keys through every code path.
    expect((await send(real)).status).toBe(200);
    for (let i = 0; i < 200; i++) await send(lookalike(SHARED[i % SHARED.length]!));
    const plan = SHARED.flatMap((shared) => Array.from({ length: PER_GROUP }, () => shared));
    for (let i = plan.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [plan[i], plan[j]] = [plan[j]!, plan[i]!];
    }
    const samples = new Map<number, number[]>(SHARED.map((s) => [s, []]));
    const calls = kg.keygate.verifier.stats.storeCalls;
    for (const shared of plan) {
      const key = lookalike(shared);
      const { status, ms } = await send(key);
      expect(status).toBe(401);
      samples.get(shared)!.push(ms);
    }
    connection.close();
    // Each one really was hashed and looked up.
    expect(kg.keygate.verifier.stats.storeCalls - calls).toBe(plan.length);
    const lines: string[] = [];
    for (const s of SHARED) {
      const v = samples.get(s)!;
      lines.push(`  shared ${String(s).padStart(2)} hex: median ${median(v).toFixed(3)} ms, p10 ${quantile(v, 0.1).toFixed(3)}, p90 ${quantile(v, 0.9).toFixed(3)}`);
    }
    const comparisons: { pair: string; a: number; p: number; diff: number; scale: number }[] = [];
    for (const [x, y] of [[0, 32], [0, 52], [32, 52]] as const) {
      const a = samples.get(x)!;
      const b = samples.get(y)!;
      comparisons.push({ pair: `${x} vs ${y}`, a: probabilityOfSuperiority(a, b), p: permutationP(a, b), diff: median(a) - median(b), scale: Math.min(median(a), median(b)) });
    }
    for (const c of comparisons) lines.push(`  ${c.pair}: median difference ${(c.diff * 1000).toFixed(1)} µs, P(slower) ${c.a.toFixed(3)}, permutation p ${c.p.toFixed(3)}`);
    console.log(`[hostile timing] ${plan.length} unknown keys, ${PER_GROUP} per group, interleaved:\n${lines.join('\n')}`);
    for (const c of comparisons) {
      // Indistinguishable within noise: no group is systematically slower…
      expect(c.a, c.pair).toBeGreaterThan(0.4);
      expect(c.a, c.pair).toBeLessThan(0.6);
      // …and the medians agree to a quarter of a millisecond or 25 %.
      expect(Math.abs(c.diff), c.pair).toBeLessThan(Math.max(0.25, c.scale * 0.25));
    }
  }, 120_000);
});

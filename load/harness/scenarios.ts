/**
 * The bench scenarios: what each sends, to which targets, and which status codes are
 * expected from each target. Every scenario runs against keygate and the upstream
 * directly (and the http-proxy-3 baseline and the bare node:http + undici floor where they
 * apply), in alternation.
 */
import { rotateKeys, type AcOptions } from './autocannon.ts';

export type TargetName = 'direct' | 'keygate' | 'baseline' | 'floor';

export interface BenchKeys {
  /** The one key of the cache-hit scenarios (also the baseline's KEY). */
  hit: string;
  /** Many distinct valid keys, more than keygate's cache holds. */
  many: string[];
  badChecksum: string[];
  unknown: string[];
}

export interface Scenario {
  name: string;
  description: string;
  targets: TargetName[];
  /** Seconds per target run (the fixed-rate scenario runs longer). */
  seconds: number;
  /** Fixed request rate (all connections together); none = as fast as possible. */
  rate?: number;
  /** `open-loop`: load/harness/fixed-rate.ts (µs latencies) instead of autocannon. */
  generator?: 'autocannon' | 'open-loop';
  /** Only run when named in --only. */
  optIn?: boolean;
  /** Request path (default /). */
  path?: string;
  /** Status codes keygate / the baseline / the floor should answer (direct always answers 200). */
  expect: number;
  options: () => Partial<AcOptions>;
}

export const SCENARIO_NAMES = ['hit', 'miss', 'hit-rotated', 'bad-checksum', 'unknown-key', 'post-64k', 'sse', 'fixed-rate', 'fixed-rate-autocannon'] as const;

export function scenarios(keys: BenchKeys, seconds: number, rateSeconds: number, rate: number): Scenario[] {
  const body = Buffer.alloc(64 * 1024, 'x');
  const all: TargetName[] = ['direct', 'keygate', 'floor', 'baseline'];
  return [
    {
      name: 'hit',
      description: 'GET /, one valid key (cache hit)',
      targets: all,
      seconds,
      expect: 200,
      options: () => ({ headers: { 'x-api-key': keys.hit } }),
    },
    {
      name: 'miss',
      description: `GET /, ${keys.many.length} distinct valid keys in rotation (cache.max smaller: every lookup misses)`,
      targets: ['direct', 'keygate'],
      seconds,
      expect: 200,
      options: () => ({ requests: rotateKeys(keys.many) }),
    },
    {
      // The miss scenario's generator builds every request (a key each): autocannon then
      // costs more CPU, which on a shared machine leaves keygate less. This is the hit path
      // through that same generator, so miss/hit compares like with like.
      name: 'hit-rotated',
      description: 'GET /, the one valid key sent through the same per-request generator as miss (the hit path to compare miss with)',
      targets: ['direct', 'keygate'],
      seconds,
      expect: 200,
      options: () => ({ requests: rotateKeys([keys.hit]) }),
    },
    {
      name: 'bad-checksum',
      description: `GET /, ${keys.badChecksum.length} well-formed keys with a wrong checksum in rotation`,
      targets: all,
      seconds,
      expect: 401,
      options: () => ({ requests: rotateKeys(keys.badChecksum) }),
    },
    {
      name: 'unknown-key',
      description: `GET /, ${keys.unknown.length} keys with a good checksum that do not exist, in rotation (more than the negative cache holds)`,
      targets: all,
      seconds,
      expect: 401,
      options: () => ({ requests: rotateKeys(keys.unknown) }),
    },
    {
      name: 'post-64k',
      description: 'POST / with a 64 KB body, one valid key',
      targets: all,
      seconds,
      expect: 200,
      options: () => ({ method: 'POST', body, headers: { 'x-api-key': keys.hit, 'content-type': 'application/octet-stream' } }),
    },
    {
      name: 'sse',
      description: 'GET /sse, one valid key: 5 small events 2 ms apart, then the end of the stream',
      targets: all,
      seconds,
      path: '/sse',
      expect: 200,
      options: () => ({ headers: { 'x-api-key': keys.hit, accept: 'text/event-stream' } }),
    },
    {
      name: 'fixed-rate',
      description: `GET /, one valid key, ${rate} requests/s to each target, evenly spaced and interleaved across the targets in one run, for ${rateSeconds} s (open-loop generator, µs latencies from the due time and from the send): added latency`,
      // Not the baseline: a fourth target would add a fourth request to every generator
      // wake-up, and the latency of each depends on how many arrive together.
      targets: ['direct', 'keygate', 'floor'],
      seconds: rateSeconds,
      rate,
      generator: 'open-loop',
      expect: 200,
      options: () => ({ headers: { 'x-api-key': keys.hit } }),
    },
    {
      name: 'fixed-rate-autocannon',
      description: `GET /, one valid key, autocannon overallRate ${rate} for ${rateSeconds} s (opt-in: each connection sends its per-second quota in a burst, whole-ms latencies)`,
      targets: all,
      seconds: rateSeconds,
      rate,
      optIn: true,
      expect: 200,
      options: () => ({ headers: { 'x-api-key': keys.hit } }),
    },
  ];
}

/**
 * The slice of autocannon's programmatic API the bench uses, typed (the package ships no
 * types). autocannon(opts) without a callback returns a promise of the result.
 */
import { createRequire } from 'node:module';

export interface AcRequest {
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
}

export interface AcOptions {
  url: string;
  connections: number;
  duration: number;
  /** Stop after this many requests (then `duration` is only a ceiling). */
  amount?: number;
  method?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  overallRate?: number;
  requests?: { setupRequest?: (req: AcRequest, context: object) => AcRequest }[];
  setupClient?: (client: object) => void;
  timeout?: number;
}

export interface AcHistogram {
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  p99_9: number;
  max: number;
  average: number;
  total: number;
}

export interface AcResult {
  requests: AcHistogram;
  latency: AcHistogram;
  errors: number;
  timeouts: number;
  non2xx: number;
  duration: number;
  statusCodeStats: Record<string, { count: number }>;
}

const require = createRequire(import.meta.url);
export const autocannon = require('autocannon') as (opts: AcOptions) => Promise<AcResult>;

/** A `requests` entry that sends the next key of `keys` (round robin over all connections) in x-api-key. */
export function rotateKeys(keys: readonly string[]): NonNullable<AcOptions['requests']> {
  let next = 0;
  return [
    {
      setupRequest: (req) => {
        const key = keys[next++ % keys.length]!;
        return { ...req, headers: { ...req.headers, 'x-api-key': key } };
      },
    },
  ];
}

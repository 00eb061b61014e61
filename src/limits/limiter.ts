/**
 * What the limit stage asks of a store: decide a request against several buckets at once,
 * charging all of them or none (limits/gcra.ts). Redis decides in one script with its own
 * clock, shared by every instance (store/redis/limits.ts); the embedded store decides in
 * memory, in the one process that serves or, with `workers: N`, in the primary, which every
 * worker asks (cluster/limits-ipc.ts).
 */
import { LRUCache } from 'lru-cache';
import { gcra, type BucketAnswer } from './gcra.ts';

/** One bucket a request is counted in: its id in the store and its rate. */
export interface Bucket {
  /** e.g. `k:key_abc:20/s` (docs/limits.md, "Buckets"). */
  readonly id: string;
  readonly count: number;
  readonly periodMs: number;
}

export interface LimitDecision {
  allowed: boolean;
  /** When refused: milliseconds until it would be allowed. */
  retryAfterMs: number;
  /** One per bucket, in order. */
  answers: BucketAnswer[];
}

export interface RateLimiter {
  /** Rejects when the decision cannot be made (the store is unreachable): the route's `onStoreError` decides. */
  decide(buckets: readonly Bucket[], weight: number): LimitDecision | Promise<LimitDecision>;
}

/**
 * GCRA in this process's memory: the embedded store's limiter (in the serving process or the
 * primary), and every instance's fallback while Redis cannot be reached (`onStoreError: open`).
 * Bounded: at most `max` buckets, each dropped once it is full again (its TAT has passed).
 */
export class MemoryLimiter implements RateLimiter {
  readonly #tats: LRUCache<string, number>;
  readonly #now: () => number;

  constructor(max = 100_000, now: () => number = Date.now) {
    this.#tats = new LRUCache<string, number>({ max, ttlAutopurge: false });
    this.#now = now;
  }

  decide(buckets: readonly Bucket[], weight: number): LimitDecision {
    const now = this.#now();
    const result = gcra(
      buckets.map((b) => ({ tat: this.#tats.get(b.id), count: b.count, periodMs: b.periodMs })),
      weight,
      now,
    );
    if (result.allowed) buckets.forEach((b, i) => this.#tats.set(b.id, result.tats[i]!, { ttl: Math.max(1, Math.ceil(result.tats[i]! - now)) }));
    return { allowed: result.allowed, retryAfterMs: result.retryAfterMs, answers: result.answers };
  }

  get size(): number {
    return this.#tats.size;
  }
}

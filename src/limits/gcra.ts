/**
 * The rate limit algorithm: GCRA (the generic cell rate algorithm, a token bucket kept as one
 * number per bucket — the "theoretical arrival time", TAT). Chosen over a sliding window
 * because its state is one number that a Redis script updates in place (one key per bucket,
 * no per-request list), its answer is exact, and the remaining count and the wait follow from
 * that number directly (docs/limits.md, "Algorithm").
 *
 * A limit of `count` per `periodMs` emits one request every T = periodMs / count and lets a
 * bucket hold at most `count` (burst = count): a request of weight w is allowed when
 * max(TAT, now) + w·T − now ≤ periodMs, and then TAT becomes max(TAT, now) + w·T. So over any
 * interval of length t at most count + t/T requests are allowed, and a client that keeps
 * asking gets exactly that (to within one request).
 *
 * Several buckets (a key's 20/s and 50000/d, its tenant's, the route's) are decided together:
 * the request is allowed only if every bucket allows it, and only then is any bucket charged,
 * so a refusal by one costs the others nothing. `store/redis/limits` runs the same arithmetic
 * in Lua (RATE_LIMIT) with Redis's clock; the in-memory limiter runs this function.
 */
export interface BucketState {
  /** The bucket's TAT (epoch ms), undefined when it has none (full). */
  tat: number | undefined;
  count: number;
  periodMs: number;
}

export interface BucketAnswer {
  /** Requests of weight 1 still allowed now (after this one, if it was allowed). */
  remaining: number;
  /** Milliseconds until the bucket is full again. */
  resetMs: number;
}

export interface GcraResult {
  allowed: boolean;
  /** When refused: milliseconds until the request would be allowed. */
  retryAfterMs: number;
  /** When allowed: each bucket's new TAT (to store, with a time to live of TAT − now). */
  tats: number[];
  answers: BucketAnswer[];
}

export function gcra(buckets: readonly BucketState[], weight: number, now: number): GcraResult {
  const tats: number[] = [];
  let retryAfterMs = 0;
  for (const b of buckets) {
    const interval = b.periodMs / b.count;
    const next = Math.max(b.tat ?? now, now) + weight * interval;
    tats.push(next);
    const over = next - now - b.periodMs;
    if (over > 0) retryAfterMs = Math.max(retryAfterMs, over);
  }
  const allowed = retryAfterMs === 0;
  const answers = buckets.map((b, i) => {
    const interval = b.periodMs / b.count;
    const tat = allowed ? tats[i]! : Math.max(b.tat ?? now, now);
    const used = tat - now;
    return { remaining: Math.max(0, Math.floor((b.periodMs - used) / interval + 1e-9)), resetMs: Math.max(0, Math.ceil(used)) };
  });
  return { allowed, retryAfterMs: Math.ceil(retryAfterMs), tats, answers };
}

/** Each bucket's answer from how far its TAT is ahead of now (ms), as the Redis script returns it. */
export function gcraAnswers(buckets: readonly { count: number; periodMs: number }[], usedMs: readonly number[]): BucketAnswer[] {
  return buckets.map((b, i) => {
    const used = Math.max(0, usedMs[i] ?? 0);
    return { remaining: Math.max(0, Math.floor((b.periodMs - used) / (b.periodMs / b.count) + 1e-9)), resetMs: Math.ceil(used) };
  });
}

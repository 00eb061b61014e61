/**
 * Rate limits on Redis: one script per request decides every bucket it is counted in with
 * Redis's clock (so instances whose clocks disagree still agree), auto-pipelined with the
 * other commands of the tick. Each bucket is one string key `<prefix>rl:<bucket id>` holding
 * its TAT (limits/gcra.ts) with a time to live until it is full again: nothing outlives its
 * use. In Cluster mode the prefix's hash tag puts every bucket in one slot (docs/limits.md).
 */
import { gcraAnswers } from '../../limits/gcra.ts';
import type { Bucket, LimitDecision, RateLimiter } from '../../limits/limiter.ts';
import type { Commands } from './commands.ts';
import * as scripts from './scripts.ts';

export class RedisLimits implements RateLimiter {
  readonly #redis: Commands;

  constructor(redis: Commands) {
    this.#redis = redis;
  }

  decide(buckets: readonly Bucket[], weight: number): Promise<LimitDecision> {
    const keys: string[] = [];
    const args: (string | number)[] = [weight];
    const prefix = this.#redis.keys.prefix;
    for (const b of buckets) {
      keys.push(`${prefix}rl:${b.id}`);
      args.push(b.count, b.periodMs);
    }
    return this.#redis.script(scripts.RATE_LIMIT, keys, args).then((reply) => {
      const values = reply as unknown[];
      const retryAfterMs = Math.ceil(Number(values[0]));
      const used: number[] = [];
      for (let i = 1; i < values.length; i++) used.push(Number(values[i]));
      return { allowed: retryAfterMs <= 0, retryAfterMs: Math.max(0, retryAfterMs), answers: gcraAnswers(buckets, used) };
    });
  }
}

/**
 * `workers: N` on the embedded store: rate limits are decided in the primary's memory, which
 * every worker asks, so the workers of one machine share one count (limits/limiter.ts). One
 * message each way per counted request, between processes of one machine; bucket ids carry
 * key ids, tenants and addresses, never a key. A primary that does not answer within
 * `timeoutMs` fails the decision, and the route's `onStoreError` applies.
 */
import cluster from 'node:cluster';
import type { Bucket, LimitDecision, RateLimiter } from '../limits/limiter.ts';
import { MemoryLimiter } from '../limits/limiter.ts';

const ASK = 'keygate:limit';
const ANSWER = 'keygate:limit-answer';

interface Ask {
  type: typeof ASK;
  n: number;
  buckets: Bucket[];
  weight: number;
}

interface Answer {
  type: typeof ANSWER;
  n: number;
  decision: LimitDecision;
}

/** In a worker: asks the primary. */
export class IpcLimiter implements RateLimiter {
  readonly #pending = new Map<number, { resolve(d: LimitDecision): void; reject(e: Error): void; timer: NodeJS.Timeout }>();
  readonly #timeoutMs: number;
  #n = 0;

  constructor(timeoutMs = 1000) {
    this.#timeoutMs = timeoutMs;
    process.on('message', (message: unknown) => {
      const answer = message as Answer | null;
      if (answer?.type !== ANSWER) return;
      const waiting = this.#pending.get(answer.n);
      if (waiting === undefined) return;
      this.#pending.delete(answer.n);
      clearTimeout(waiting.timer);
      waiting.resolve(answer.decision);
    });
  }

  decide(buckets: readonly Bucket[], weight: number): Promise<LimitDecision> {
    const n = ++this.#n;
    return new Promise<LimitDecision>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(n);
        reject(new Error('the primary process did not answer the rate-limit decision in time'));
      }, this.#timeoutMs);
      timer.unref();
      this.#pending.set(n, { resolve, reject, timer });
      const ask: Ask = { type: ASK, n, buckets: buckets.map((b) => ({ id: b.id, count: b.count, periodMs: b.periodMs })), weight };
      if (!process.send?.(ask)) {
        // The channel is closed or backed up: the decision cannot be made here.
        clearTimeout(timer);
        this.#pending.delete(n);
        reject(new Error('the primary process cannot be asked for the rate-limit decision'));
      }
    });
  }
}

/** In the primary: decides for every worker, in one memory. */
export function serveClusterLimits(limiter: MemoryLimiter = new MemoryLimiter()): void {
  cluster.on('message', (worker, message: unknown) => {
    const ask = message as Ask | null;
    if (ask?.type !== ASK || !Array.isArray(ask.buckets) || typeof ask.weight !== 'number') return;
    const decision = limiter.decide(ask.buckets, ask.weight);
    if (worker.isConnected()) worker.send({ type: ANSWER, n: ask.n, decision } satisfies Answer);
  });
}

/** The embedded store's limiter in this process: the primary's when this is a worker, else its own memory. */
export function embeddedLimiter(): RateLimiter {
  return cluster.isWorker ? new IpcLimiter() : new MemoryLimiter();
}

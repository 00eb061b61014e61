/**
 * The store's role for quotas (limits/quota.ts): charge a request to every budget it counts
 * against, all or none, and read or top up one. Redis charges in one script shared by every
 * instance (redis/quotas.ts); the embedded store in one SQLite transaction, shared by every
 * process that opens the file (embedded/quotas.ts) — a write per counted request, so quotas
 * at high rates belong on Redis.
 */
import type { QuotaAnswer, QuotaCounter } from '../limits/quota.ts';

export interface QuotaDecision {
  /** Index of the first budget that is spent (nothing was charged), or -1. */
  exhausted: number;
  answers: QuotaAnswer[];
}

export interface QuotaStore {
  chargeQuotas(counters: readonly QuotaCounter[], weight: number): Promise<QuotaDecision>;
  /** How much of one budget is used now (nothing charged). */
  quotaStatus(counter: QuotaCounter): Promise<QuotaAnswer>;
  /** Adds `amount` to what may still be used in the current period (or to the credits). */
  topUpQuota(counter: QuotaCounter, amount: number): Promise<QuotaAnswer>;
}

/** The store key of a budget: a period quota has one per period. */
export function quotaKey(counter: QuotaCounter): string {
  return counter.quota.kind === 'period' ? `${counter.id}:${counter.period!.id}` : counter.id;
}

/** The answer for a budget from what is used (period) or remaining (credits) after the charge. */
export function quotaAnswer(counter: QuotaCounter, remainingAfter: number, weight: number, charged: boolean): QuotaAnswer {
  const amount = counter.quota.amount;
  const usedAfter = amount - remainingAfter;
  const threshold = amount * 0.8;
  return { used: usedAfter, remaining: Math.max(0, remainingAfter), crossed80: charged && usedAfter >= threshold && usedAfter - weight < threshold };
}

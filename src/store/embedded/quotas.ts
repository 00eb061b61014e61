/**
 * Quotas on the embedded store: one row per budget (`quota_counters`: a period's used count,
 * or remaining credits and the period they were last refilled in), charged in one write
 * transaction, so every process that opens the file — workers, the CLI — shares them, and
 * they survive a restart. Rows of periods more than a day past their end are purged as
 * they are passed.
 */
import type { StatementSync } from 'node:sqlite';
import type { QuotaAnswer, QuotaCounter } from '../../limits/quota.ts';
import { quotaAnswer, quotaKey, type QuotaDecision, type QuotaStore } from '../quota-store.ts';
import type { Database } from './database.ts';

type Row = { used: number; remaining: number | null; period: string | null };

export class EmbeddedQuotas implements QuotaStore {
  readonly #db: Database;
  readonly #q: Record<'get' | 'put' | 'purge', StatementSync>;
  #purgedAt = 0;

  constructor(db: Database) {
    this.#db = db;
    this.#q = {
      get: db.db.prepare('SELECT used, remaining, period FROM quota_counters WHERE id = ?'),
      put: db.db.prepare('INSERT INTO quota_counters (id, used, remaining, period, expires_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET used = excluded.used, remaining = excluded.remaining, period = excluded.period, expires_at = excluded.expires_at'),
      purge: db.db.prepare('DELETE FROM quota_counters WHERE expires_at IS NOT NULL AND expires_at < ?'),
    };
  }

  /** What may still be used now, before any charge. */
  #remaining(counter: QuotaCounter): number {
    const row = this.#q.get.get(quotaKey(counter)) as Row | undefined;
    const { quota, period } = counter;
    if (quota.kind === 'period') return quota.amount - (row?.used ?? 0);
    if (row?.remaining === null || row === undefined || (quota.unit !== null && row.period !== period?.id)) return quota.amount;
    return row.remaining;
  }

  #store(counter: QuotaCounter, remaining: number): void {
    const { quota, period } = counter;
    if (quota.kind === 'period') this.#q.put.run(quotaKey(counter), quota.amount - remaining, null, period!.id, period!.endsAt + 86_400_000);
    else this.#q.put.run(quotaKey(counter), 0, remaining, period?.id ?? null, null);
  }

  async chargeQuotas(counters: readonly QuotaCounter[], weight: number): Promise<QuotaDecision> {
    const now = Date.now();
    const decision = this.#db.transaction(() => {
      const remaining = counters.map((c) => this.#remaining(c));
      const exhausted = remaining.findIndex((r) => r - weight < 0);
      if (exhausted < 0) counters.forEach((c, i) => this.#store(c, remaining[i]! - weight));
      return { exhausted, answers: counters.map((c, i) => quotaAnswer(c, exhausted < 0 ? remaining[i]! - weight : remaining[i]!, weight, exhausted < 0)) };
    });
    if (now - this.#purgedAt > 3_600_000) {
      this.#purgedAt = now;
      this.#q.purge.run(now);
    }
    return decision;
  }

  async quotaStatus(counter: QuotaCounter): Promise<QuotaAnswer> {
    return quotaAnswer(counter, this.#remaining(counter), 0, false);
  }

  async topUpQuota(counter: QuotaCounter, amount: number): Promise<QuotaAnswer> {
    const remaining = this.#db.transaction(() => {
      const left = this.#remaining(counter) + amount;
      this.#store(counter, left);
      return left;
    });
    return quotaAnswer(counter, remaining, 0, false);
  }
}

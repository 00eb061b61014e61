/**
 * Usage counters on the embedded store: one row per (scope, id, UTC day, `<route>|<class>`)
 * in `usage_counters`, added to with an upsert, a whole flush in one write transaction (so
 * every process that opens the file — workers, the CLI — adds to the same rows). Once per
 * UTC day (the first flush of the day in each process) the rows of days older than
 * USAGE_RETENTION_DAYS are deleted, and counts for such days are not written.
 */
import type { StatementSync } from 'node:sqlite';
import { DAY_MS, USAGE_RETENTION_DAYS, dayOf, type UsageCounts, type UsageScope, type UsageStore } from '../usage-store.ts';
import type { Database } from './database.ts';

export class EmbeddedUsage implements UsageStore {
  readonly #db: Database;
  readonly #q: Record<'add' | 'read' | 'purge', StatementSync>;
  /** The UTC day this process last purged on. */
  #purgedOn = '';

  constructor(db: Database) {
    this.#db = db;
    this.#q = {
      add: db.db.prepare('INSERT INTO usage_counters (scope, id, day, field, n) VALUES (?, ?, ?, ?, ?) ON CONFLICT (scope, id, day, field) DO UPDATE SET n = n + excluded.n'),
      read: db.db.prepare('SELECT field, n FROM usage_counters WHERE scope = ? AND id = ? AND day = ?'),
      purge: db.db.prepare('DELETE FROM usage_counters WHERE day < ?'),
    };
  }

  /** The first day that is kept at `now`: older days are past retention. */
  static #oldestKept(now: number): string {
    return dayOf(now - (USAGE_RETENTION_DAYS - 1) * DAY_MS);
  }

  async addUsage(batch: readonly UsageCounts[], now: number): Promise<void> {
    const oldest = EmbeddedUsage.#oldestKept(now);
    this.#db.transaction(() => {
      for (const counts of batch) {
        if (counts.day < oldest) continue;
        for (const [field, n] of counts.fields) this.#q.add.run(counts.scope, counts.id, counts.day, field, n);
      }
    });
    const today = dayOf(now);
    if (this.#purgedOn !== today) {
      this.#purgedOn = today;
      this.#q.purge.run(oldest);
    }
  }

  /** Reports ask for the last USAGE_RETENTION_DAYS at most (events/usage-report.ts): nothing older is read. */
  async readUsage(scope: UsageScope, id: string, days: readonly string[]): Promise<Record<string, number>[]> {
    return days.map((day) => {
      const out: Record<string, number> = Object.create(null);
      for (const row of this.#q.read.all(scope, id, day) as { field: string; n: number }[]) out[row.field] = row.n;
      return out;
    });
  }
}

/**
 * The store's role for per-key usage (events/usage.ts counts, docs/usage.md describes): one
 * set of counters per key and per tenant per UTC day, each counter named `<route>|<class>`
 * (`api|2xx`, or keygate's own refusal by its status, `api|401`). Written in batches, never
 * on the request path; nothing is kept longer than USAGE_RETENTION_DAYS. Redis keeps a hash
 * per key (or tenant) and day that expires on its own (redis/usage.ts); the embedded store a
 * table with an upsert and a daily purge (embedded/usage.ts).
 */

/** `k`: a key's counters (its id), `t`: a tenant's (its name). */
export type UsageScope = 'k' | 't';

/** How many UTC days of counters are kept (today included); older ones are gone. */
export const USAGE_RETENTION_DAYS = 35;

export const DAY_MS = 86_400_000;

/** What one flush adds to one key's or tenant's counters of one day. */
export interface UsageCounts {
  readonly scope: UsageScope;
  readonly id: string;
  /** `yyyymmdd`, UTC. */
  readonly day: string;
  /** `<route>|<class>` → how many requests. */
  readonly fields: ReadonlyMap<string, number>;
}

export interface UsageStore {
  /** Adds every count (one script or one transaction per batch); `now` decides what is past retention. */
  addUsage(batch: readonly UsageCounts[], now: number): Promise<void>;
  /** The counters of each day asked for, in the same order ({} for a day without any). */
  readUsage(scope: UsageScope, id: string, days: readonly string[]): Promise<Record<string, number>[]>;
}

/** `yyyymmdd` of the UTC day `ms` falls in. */
export function dayOf(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10).replaceAll('-', '');
}

/** When the UTC day `yyyymmdd` begins (epoch ms). */
export function dayStart(day: string): number {
  return Date.UTC(Number(day.slice(0, 4)), Number(day.slice(4, 6)) - 1, Number(day.slice(6, 8)));
}

/** When a day's counters are gone: USAGE_RETENTION_DAYS after the day began (epoch ms). */
export function usageExpiresAt(day: string): number {
  return dayStart(day) + USAGE_RETENTION_DAYS * DAY_MS;
}

/** The `count` days up to and including today (UTC), oldest first. */
export function lastDays(count: number, now: number): string[] {
  const today = dayStart(dayOf(now));
  return Array.from({ length: count }, (_, i) => dayOf(today - (count - 1 - i) * DAY_MS));
}

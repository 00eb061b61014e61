/**
 * Usage as the admin API, the CLI and the console show it: the last N UTC days of a key or a
 * tenant, oldest first, every day present (0 for a day without traffic), each with its total
 * and its counts by route and class (docs/usage.md).
 *
 *   const days = await usageReport(store, 'k', record.id, 30);
 *   // [{ date: '2025-05-01', total: 12, byRoute: { api: { '2xx': 11, '401': 1 } } }, …]
 */
import { lastDays, USAGE_RETENTION_DAYS, type UsageScope, type UsageStore } from '../store/usage-store.ts';
import { invalidField } from '../http/problem.ts';

export interface UsageDay {
  /** YYYY-MM-DD (UTC). */
  date: string;
  total: number;
  /** route → class (`2xx` …) or keygate's own status (`401` …) → count. */
  byRoute: Record<string, Record<string, number>>;
}

export const DEFAULT_USAGE_DAYS = 30;

/** How many days to show: 1 to USAGE_RETENTION_DAYS (422 naming `field` otherwise); default 30. */
export function usageDays(value: string | number | undefined, field = 'days'): number {
  if (value === undefined) return DEFAULT_USAGE_DAYS;
  const text = String(value);
  const n = Number(text);
  if (!/^\d{1,3}$/.test(text) || n < 1 || n > USAGE_RETENTION_DAYS) throw invalidField(field, `must be a whole number from 1 to ${USAGE_RETENTION_DAYS} (usage is kept for ${USAGE_RETENTION_DAYS} days)`);
  return n;
}

export async function usageReport(store: Pick<UsageStore, 'readUsage'>, scope: UsageScope, id: string, days: number, now = Date.now()): Promise<UsageDay[]> {
  const names = lastDays(days, now);
  const counters = await store.readUsage(scope, id, names);
  return names.map((day, i) => {
    const byRoute: Record<string, Record<string, number>> = {};
    let total = 0;
    for (const [field, n] of Object.entries(counters[i] ?? {})) {
      const bar = field.lastIndexOf('|');
      if (bar < 0 || !(n > 0)) continue;
      const route = field.slice(0, bar);
      // Route names come from the configuration; defineProperty keeps "__proto__" an ordinary name.
      if (!Object.hasOwn(byRoute, route)) Object.defineProperty(byRoute, route, { value: {}, enumerable: true, writable: true, configurable: true });
      byRoute[route]![field.slice(bar + 1)] = n;
      total += n;
    }
    return { date: `${day.slice(0, 4)}-${day.slice(4, 6)}-${day.slice(6, 8)}`, total, byRoute };
  });
}

/**
 * Which expiry reminder is due for a key: 30 days before, 7 days before, on the (UTC) day
 * of expiry, and once it has expired. Only the latest due stage is sent, so a key created
 * with a 5-day expiry gets the 7-day reminder, not the 30-day one as well.
 */
import type { ReminderStage } from '../store/lifecycle-store.ts';

const DAY = 86_400_000;

export function dueStage(expiresAt: number, now: number): ReminderStage | null {
  if (expiresAt <= now) return 'expired';
  // The day of expiry is the last day the key works: for one expiring at 00:00 UTC (a date
  // typed without a time) that is the day before.
  if (now >= Math.floor((expiresAt - 1) / DAY) * DAY) return 'today';
  if (expiresAt - now <= 7 * DAY) return '7d';
  if (expiresAt - now <= 30 * DAY) return '30d';
  return null;
}

/** Keys that may need a reminder now: expiring within 30 days, or expired within 2 days. */
export function reminderWindow(now: number): [from: number, until: number] {
  return [now - 2 * DAY, now + 30 * DAY];
}

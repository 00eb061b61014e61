/**
 * Which expiry reminder is due (src/events/reminders.ts): 30 days before, 7 days before,
 * on the UTC day of expiry, and once expired — only the latest due stage.
 */
import { describe, expect, it } from 'vitest';
import { dueStage, reminderWindow } from '../../../src/events/reminders.ts';
import type { ReminderStage } from '../../../src/store/lifecycle-store.ts';

const DAY = 86_400_000;
const HOUR = 3_600_000;
const NOW = Date.parse('2026-03-10T12:00:00.000Z');
const at = (iso: string) => Date.parse(iso);

/** The stages a sweep every 15 minutes from `from` to `to` claims, each once, in order. */
function claimedStages(expiresAt: number, from: number, to: number): ReminderStage[] {
  const claimed: ReminderStage[] = [];
  for (let t = from; t <= to; t += 15 * 60_000) {
    const stage = dueStage(expiresAt, t);
    if (stage !== null && !claimed.includes(stage)) claimed.push(stage);
  }
  return claimed;
}

describe('dueStage', () => {
  it('is null more than 30 days ahead', () => {
    expect(dueStage(NOW + 30 * DAY + 1, NOW)).toBeNull();
    expect(dueStage(NOW + 31 * DAY, NOW)).toBeNull();
    expect(dueStage(NOW + 365 * DAY, NOW)).toBeNull();
  });

  it('is 30d from 30 days before expiry down to just over 7 days', () => {
    expect(dueStage(NOW + 30 * DAY, NOW)).toBe('30d');
    expect(dueStage(NOW + 20 * DAY, NOW)).toBe('30d');
    expect(dueStage(NOW + 7 * DAY + 1, NOW)).toBe('30d');
  });

  it('is 7d from 7 days before expiry until the UTC day of expiry begins', () => {
    expect(dueStage(NOW + 7 * DAY, NOW)).toBe('7d');
    expect(dueStage(NOW + 5 * DAY, NOW)).toBe('7d');
    expect(dueStage(at('2026-03-11T00:00:00.001Z'), NOW)).toBe('7d');
    expect(dueStage(at('2026-03-11T11:59:59.000Z'), NOW)).toBe('7d');
    // Less than a day left but the expiry falls on the next UTC day: still 7d.
    expect(dueStage(at('2026-03-11T06:00:00.000Z'), at('2026-03-10T20:00:00.000Z'))).toBe('7d');
  });

  it('is today on the UTC day of expiry, until the moment it expires', () => {
    expect(dueStage(at('2026-03-10T23:59:59.999Z'), NOW)).toBe('today');
    expect(dueStage(NOW + 1, NOW)).toBe('today');
    expect(dueStage(NOW + 3 * HOUR, NOW)).toBe('today');
    // From the first instant of that day.
    expect(dueStage(at('2026-03-10T08:00:00.000Z'), at('2026-03-10T00:00:00.000Z'))).toBe('today');
    expect(dueStage(at('2026-03-10T08:00:00.000Z'), at('2026-03-09T23:59:59.999Z'))).toBe('7d');
  });

  it('is expired from the moment of expiry on', () => {
    expect(dueStage(NOW, NOW)).toBe('expired');
    expect(dueStage(NOW - 1, NOW)).toBe('expired');
    expect(dueStage(NOW - 5 * DAY, NOW)).toBe('expired');
  });

  it('gives only the latest due stage: a key made 5 days before expiry gets 7d, never 30d', () => {
    const expiresAt = NOW + 5 * DAY;
    const seen = new Set<ReminderStage>();
    for (let t = NOW; t <= expiresAt + HOUR; t += HOUR) {
      const stage = dueStage(expiresAt, t);
      if (stage) seen.add(stage);
    }
    expect([...seen]).toEqual(['7d', 'today', 'expired']);
  });

  it('walks a key through 30d, 7d, today and expired in that order, each stage once when claimed', () => {
    const expiresAt = at('2026-04-20T15:30:00.000Z');
    // A sweep every 15 minutes from 40 days before to a day after.
    expect(claimedStages(expiresAt, expiresAt - 40 * DAY, expiresAt + DAY)).toEqual(['30d', '7d', 'today', 'expired']);
  });

  it('sends the day-of-expiry reminder for a key that expires at 00:00 UTC (a date-only expiry)', () => {
    // `expires: 2026-03-11` means midnight UTC: the key works all of 10 March and stops at the
    // first instant of the 11th. Its last day is the 10th; a sweep on the 10th should say "today"
    // (or the 'today' stage is never sent for such keys: 7d is followed directly by expired).
    const expiresAt = at('2026-03-11');
    expect(claimedStages(expiresAt, expiresAt - 7 * DAY, expiresAt + HOUR)).toEqual(['7d', 'today', 'expired']);
  });
});

describe('reminderWindow', () => {
  it('spans from 2 days ago to 30 days ahead', () => {
    expect(reminderWindow(NOW)).toEqual([NOW - 2 * DAY, NOW + 30 * DAY]);
  });

  it('includes every expiry for which a reminder is due, up to 2 days after expiry', () => {
    const [from, until] = reminderWindow(NOW);
    for (let expiresAt = NOW - 2 * DAY; expiresAt <= NOW + 31 * DAY; expiresAt += HOUR) {
      const due = dueStage(expiresAt, NOW);
      if (due !== null && due !== 'expired') expect(expiresAt >= from && expiresAt <= until, new Date(expiresAt).toISOString()).toBe(true);
    }
    expect(dueStage(until, NOW)).toBe('30d');
    expect(dueStage(from, NOW)).toBe('expired');
  });
});

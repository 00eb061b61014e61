/**
 * How a rate limit is written, everywhere (config, admin API, CLI, console): `<count>/<period>`,
 * the period a number and a unit or a unit alone — `20/s`, `100/15m`, `50000/1d`. One text
 * form so a limit reads the same in a key record, a group, a tenant and a route.
 *
 * @example
 *   parseRate('20/s')     // { count: 20, periodMs: 1000, text: '20/s' }
 *   parseRate('0/s')      // 'the count must be a whole number from 1 to 1000000000'
 */
const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const SHAPE = /^([0-9]+)\/([0-9]*)(ms|s|m|h|d)$/;
export const MAX_COUNT = 1_000_000_000;
/** Longer windows are quotas (calendar periods), not rates. */
export const MAX_PERIOD_MS = 31 * 86_400_000;
export const RATE_RULE = 'must be <count>/<period>, e.g. 20/s, 100/15m or 50000/1d (units ms, s, m, h, d)';

export interface Rate {
  readonly count: number;
  readonly periodMs: number;
  /** As written (the canonical form is what `parseRate` was given). */
  readonly text: string;
}

/** A rate, or what is wrong with the text (a message that completes "routes[0].limits.rates[1] …"). */
export function parseRate(text: unknown): Rate | string {
  if (typeof text !== 'string') return RATE_RULE;
  const match = SHAPE.exec(text.trim());
  if (match === null) return RATE_RULE;
  const count = Number(match[1]);
  const amount = match[2] === '' ? 1 : Number(match[2]);
  if (!Number.isSafeInteger(count) || count < 1 || count > MAX_COUNT) return `the count must be a whole number from 1 to ${MAX_COUNT}`;
  if (!Number.isSafeInteger(amount) || amount < 1) return 'the period must be at least 1 of its unit';
  const periodMs = amount * UNITS[match[3]!]!;
  if (periodMs > MAX_PERIOD_MS) return 'the period must be at most 31d (use a quota for months)';
  if (periodMs < 10) return 'the period must be at least 10ms';
  return { count, periodMs, text: text.trim() };
}

export function isRate(value: Rate | string): value is Rate {
  return typeof value !== 'string';
}

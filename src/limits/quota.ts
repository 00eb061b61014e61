/**
 * Quotas: a budget per key or tenant, decremented atomically with each request it lets
 * through (in the same decision as the rate limits, limits/limiter.ts), written as
 *
 *   `10000/day`, `300000/month`    a budget per calendar period (in `limits.quotaTimeZone`),
 *                                  starting afresh at each period's start;
 *   `5000 credits`                 lifetime credits, spent until topped up;
 *   `5000 credits/month`           credits refilled to 5000 at each period's start (Unkey's
 *                                  `remaining` + `refill`).
 *
 * A spent budget answers 429 `quota_exhausted` with the reset time; admins may top up
 * (audited). The request that takes a budget past 80 % is told so, once per period, for the
 * optional notification.
 */
export type QuotaUnit = 'day' | 'month';

export interface Quota {
  readonly kind: 'period' | 'credits';
  readonly amount: number;
  /** Period quotas: their period; credits: the refill period, or null for none. */
  readonly unit: QuotaUnit | null;
  readonly text: string;
}

const SHAPE = /^([0-9]+)(?:\/(day|month)| credits(?:\/(day|month))?)$/;
export const QUOTA_RULE = 'must be <count>/day, <count>/month, <count> credits or <count> credits/<day|month>';
const MAX_AMOUNT = 1_000_000_000_000;

export function parseQuota(text: unknown): Quota | string {
  if (typeof text !== 'string') return QUOTA_RULE;
  const trimmed = text.trim();
  const match = SHAPE.exec(trimmed);
  if (match === null) return QUOTA_RULE;
  const amount = Number(match[1]);
  if (!Number.isSafeInteger(amount) || amount < 1 || amount > MAX_AMOUNT) return `the count must be a whole number from 1 to ${MAX_AMOUNT}`;
  if (match[2] !== undefined) return { kind: 'period', amount, unit: match[2] as QuotaUnit, text: trimmed };
  return { kind: 'credits', amount, unit: (match[3] as QuotaUnit | undefined) ?? null, text: trimmed };
}

export function isQuota(value: Quota | string): value is Quota {
  return typeof value !== 'string';
}

export interface Period {
  /** `2026-12-04` or `2026-12`, in the time zone. */
  readonly id: string;
  /** When the next period starts (epoch ms). */
  readonly endsAt: number;
}

/**
 * The calendar period `now` falls in, in `timeZone`. Remembered until it ends, so a request
 * pays for the date arithmetic once a day, not once per request.
 */
export class Calendar {
  readonly #format: Intl.DateTimeFormat;
  readonly #current = new Map<QuotaUnit, Period & { startsAt: number }>();

  constructor(timeZone: string) {
    this.#format = new Intl.DateTimeFormat('en-CA', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' });
  }

  static valid(timeZone: string): boolean {
    try {
      new Intl.DateTimeFormat('en-US', { timeZone });
      return true;
    } catch {
      return false;
    }
  }

  period(unit: QuotaUnit, now: number): Period {
    const known = this.#current.get(unit);
    if (known !== undefined && now < known.endsAt && now >= known.startsAt) return { id: known.id, endsAt: known.endsAt };
    const { year, month, day } = this.#parts(now);
    const id = unit === 'day' ? `${year}-${pad(month)}-${pad(day)}` : `${year}-${pad(month)}`;
    const next = unit === 'day' ? [year, month, day + 1] : [year, month + 1, 1];
    const endsAt = this.#startOf(next[0]!, next[1]!, next[2]!);
    this.#current.set(unit, { id, endsAt, startsAt: unit === 'day' ? this.#startOf(year, month, day) : this.#startOf(year, month, 1) });
    return { id, endsAt };
  }

  #parts(at: number): { year: number; month: number; day: number; hour: number; minute: number; second: number } {
    const out: Record<string, number> = {};
    for (const p of this.#format.formatToParts(at)) if (p.type !== 'literal') out[p.type] = Number(p.value);
    return { year: out.year!, month: out.month!, day: out.day!, hour: out.hour!, minute: out.minute!, second: out.second! };
  }

  /** The instant local midnight of y-m-d (month and day may overflow, as Date.UTC allows) happens in the time zone. */
  #startOf(year: number, month: number, day: number): number {
    const wall = Date.UTC(year, month - 1, day);
    let guess = wall;
    // The offset at the guess, applied twice: right across a DST change too.
    for (let i = 0; i < 2; i++) {
      const p = this.#parts(guess);
      const shown = Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second);
      guess = wall - (shown - guess);
    }
    return guess;
  }
}

const pad = (n: number) => String(n).padStart(2, '0');

/** One budget a request is charged against. */
export interface QuotaCounter {
  /** `q:k:<key id>` or `q:t:<tenant>`; the period id is added for period quotas. */
  readonly id: string;
  readonly quota: Quota;
  /** Set for period quotas and refilled credits: the period in force. */
  readonly period: Period | null;
  readonly scope: 'key' | 'tenant';
}

export interface QuotaAnswer {
  used: number;
  remaining: number;
  /** This request took the budget past 80 % (once per period, whoever asks). */
  crossed80: boolean;
}

import { describe, expect, it } from 'vitest';
import { gcra } from '../../../src/limits/gcra.ts';
import { MemoryLimiter } from '../../../src/limits/limiter.ts';
import { Calendar, parseQuota } from '../../../src/limits/quota.ts';
import { parseRate } from '../../../src/limits/rate.ts';
import { identityBuckets, requestBuckets, compileRouteLimits } from '../../../src/limits/buckets.ts';

describe('parseRate', () => {
  it('reads <count>/<period> with or without an amount', () => {
    expect(parseRate('20/s')).toEqual({ count: 20, periodMs: 1000, text: '20/s' });
    expect(parseRate('100/15m')).toEqual({ count: 100, periodMs: 900_000, text: '100/15m' });
    expect(parseRate(' 50000/1d ')).toEqual({ count: 50000, periodMs: 86_400_000, text: '50000/1d' });
  });
  it('refuses what makes no sense, saying why', () => {
    expect(parseRate('0/s')).toMatch(/count/);
    expect(parseRate('5/0s')).toMatch(/period/);
    expect(parseRate('5/40d')).toMatch(/31d/);
    expect(parseRate('5/5ms')).toMatch(/10ms/);
    for (const bad of ['5/week', '-1/s', 'five/s', '5', '', 5, null]) expect(typeof parseRate(bad)).toBe('string');
  });
});

describe('gcra', () => {
  const bucket = (tat?: number) => ({ tat, count: 10, periodMs: 1000 });
  it('allows a full bucket as a burst, then one per interval', () => {
    let tat: number | undefined;
    let allowed = 0;
    for (let i = 0; i < 15; i++) {
      const r = gcra([bucket(tat)], 1, 0);
      if (r.allowed) {
        allowed++;
        tat = r.tats[0];
      }
    }
    expect(allowed).toBe(10);
    const later = gcra([bucket(tat)], 1, 100);
    expect(later.allowed).toBe(true);
    expect(later.answers[0]!.remaining).toBe(0);
    const refused = gcra([bucket(later.tats[0])], 1, 100);
    expect(refused.allowed).toBe(false);
    expect(refused.retryAfterMs).toBe(100);
  });
  it('charges every bucket or none', () => {
    const full = { tat: 1000, count: 10, periodMs: 1000 };
    const r = gcra([bucket(), full], 1, 0);
    expect(r.allowed).toBe(false);
    expect(r.answers[0]!.remaining).toBe(10);
  });
  it('weighs a request', () => {
    expect(gcra([bucket()], 10, 0).allowed).toBe(true);
    expect(gcra([bucket()], 11, 0).allowed).toBe(false);
  });
});

describe('MemoryLimiter', () => {
  it('keeps at most max buckets and forgets full ones', () => {
    let now = 0;
    const limiter = new MemoryLimiter(2, () => now);
    for (const id of ['a', 'b', 'c']) limiter.decide([{ id, count: 1, periodMs: 1000 }], 1);
    expect(limiter.size).toBe(2);
    now = 10;
    expect(limiter.decide([{ id: 'c', count: 1, periodMs: 1000 }], 1).allowed).toBe(false);
  });
});

describe('quotas', () => {
  it('parses budgets per day, per month, credits and refilled credits', () => {
    expect(parseQuota('10000/day')).toMatchObject({ kind: 'period', amount: 10000, unit: 'day' });
    expect(parseQuota('300000/month')).toMatchObject({ kind: 'period', unit: 'month' });
    expect(parseQuota('5000 credits')).toMatchObject({ kind: 'credits', amount: 5000, unit: null });
    expect(parseQuota('5000 credits/month')).toMatchObject({ kind: 'credits', unit: 'month' });
    for (const bad of ['0/day', '10/week', '10 credit', '10/year', 'x']) expect(typeof parseQuota(bad)).toBe('string');
  });

  it('finds calendar periods in a time zone, across a DST change and a month end', () => {
    const paris = new Calendar('Europe/Paris');
    // 2026-03-29 is the spring-forward day in Paris (a 23-hour day).
    const day = paris.period('day', Date.UTC(2026, 2, 29, 10));
    expect(day.id).toBe('2026-03-29');
    expect(new Date(day.endsAt).toISOString()).toBe('2026-03-29T22:00:00.000Z');
    const before = paris.period('day', Date.UTC(2026, 2, 28, 22, 59));
    expect(before.id).toBe('2026-03-28');
    expect(new Date(before.endsAt).toISOString()).toBe('2026-03-28T23:00:00.000Z');
    const month = new Calendar('UTC').period('month', Date.UTC(2026, 11, 31, 23, 59));
    expect(month).toEqual({ id: '2026-12', endsAt: Date.UTC(2027, 0, 1) });
    const tokyo = new Calendar('Asia/Tokyo').period('day', Date.UTC(2026, 11, 4, 15, 30));
    expect(tokyo.id).toBe('2026-12-05');
    expect(Calendar.valid('Mars/Olympus')).toBe(false);
  });
});

describe('buckets', () => {
  it("names a key's, its tenant's and a route's buckets; a token has no key buckets", () => {
    const own = identityBuckets({ id: 'key_1', tenant: 'acme' }, { key: ['20/s', '20/s', 'bad'], tenant: ['100/m'] })!;
    expect(own.map((b) => b.id)).toEqual(['k:key_1:20/s', 't:acme:100/m']);
    expect(own[0]!.policy).toBe('"key:20/s";q=20;w=1');
    expect(identityBuckets({ id: '', tenant: 'acme' }, { key: ['20/s'], tenant: [] })).toBeNull();
    const route = compileRouteLimits('api', { rates: [{ by: 'address', rate: '5/s' }, { by: 'key', rate: '3/s' }], weight: 1, onStoreError: 'open' });
    expect(requestBuckets(route, null, null, () => '10.0.0.1').map((b) => b.id)).toEqual(['r:api:address:10.0.0.1:5/s']);
    expect(requestBuckets(route, own, { id: 'key_1', tenant: 'acme' }, () => '::1').map((b) => b.id)).toEqual(['k:key_1:20/s', 't:acme:100/m', 'r:api:address:::1:5/s', 'r:api:key:key_1:3/s']);
  });
});

import { describe, expect, it } from 'vitest';
import { FailureLimiter } from '../../../src/auth/failure-limiter.ts';

function limiter(max: number, windowMs: number, addresses = 1000) {
  let now = 1_000_000;
  const l = new FailureLimiter({ max, windowMs, addresses, now: () => now });
  return { l, advance: (ms: number) => (now += ms) };
}

describe('FailureLimiter (GCRA)', () => {
  it('allows max failures in a burst, then blocks with the exact time to the next allowed one', () => {
    const { l } = limiter(10, 60_000);
    for (let i = 0; i < 10; i++) {
      expect(l.retryAfterFor('a')).toBe(0);
      l.failedFor('a');
    }
    // One failure is forgiven every 6 s.
    expect(l.retryAfterFor('a')).toBe(6);
    expect(l.retryAfterFor('b')).toBe(0);
  });

  it('forgives failures continuously, at max per window', () => {
    const { l, advance } = limiter(10, 60_000);
    for (let i = 0; i < 10; i++) l.failedFor('a');
    advance(5999);
    expect(l.retryAfterFor('a')).toBe(1);
    advance(1);
    expect(l.retryAfterFor('a')).toBe(0);
    l.failedFor('a');
    expect(l.retryAfterFor('a')).toBe(6);
    // A whole window later, a whole burst again.
    advance(60_000);
    for (let i = 0; i < 10; i++) {
      expect(l.retryAfterFor('a')).toBe(0);
      l.failedFor('a');
    }
    expect(l.retryAfterFor('a')).toBeGreaterThan(0);
  });

  it('a steady rate at the limit is never blocked; just above it is', () => {
    const { l, advance } = limiter(60, 60_000);
    for (let i = 0; i < 1000; i++) {
      expect(l.retryAfterFor('steady')).toBe(0);
      l.failedFor('steady');
      advance(1000);
    }
    for (let i = 0; i < 1000 && l.retryAfterFor('fast') === 0; i++) {
      l.failedFor('fast');
      advance(900);
    }
    expect(l.retryAfterFor('fast')).toBe(1);
  });

  it('rounds Retry-After up to whole seconds', () => {
    const { l } = limiter(3, 1000);
    for (let i = 0; i < 3; i++) l.failedFor('a');
    expect(l.retryAfterFor('a')).toBe(1);
  });

  it('remembers at most `addresses` addresses', () => {
    const { l } = limiter(1, 60_000, 100);
    for (let i = 0; i < 10_000; i++) l.failedFor(`10.0.${i >> 8}.${i & 255}`);
    expect(l.size).toBe(100);
    // The most recent are the ones kept.
    expect(l.retryAfterFor('10.0.39.15')).toBeGreaterThan(0);
    expect(l.retryAfterFor('10.0.0.0')).toBe(0);
  });

  it('is off when max is 0', () => {
    expect(FailureLimiter.create({ max: 0, windowMs: 1000, addresses: 10, total: 0 })).toBeNull();
    expect(FailureLimiter.create({ max: 1, windowMs: 1000, addresses: 10, total: 0 })).toBeInstanceOf(FailureLimiter);
  });
});

describe('FailureLimiter over all addresses (total)', () => {
  it('a flood spread over many addresses is bounded in total: past `total`, every address waits', () => {
    let now = 1_000_000;
    const l = new FailureLimiter({ max: 5, windowMs: 60_000, addresses: 10_000, total: 100, now: () => now });
    for (let i = 0; i < 100; i++) {
      expect(l.retryAfterFor(`10.0.0.${i}`)).toBe(0);
      l.failedFor(`10.0.0.${i}`);
    }
    // No single address is over its own limit, yet a new one must wait for the total to refill.
    expect(l.retryAfterFor('192.0.2.1')).toBe(1);
    now += 600;
    expect(l.retryAfterFor('192.0.2.1')).toBe(0);
  });

  it('total 0 bounds nothing beyond each address', () => {
    const l = new FailureLimiter({ max: 5, windowMs: 60_000, addresses: 10_000, total: 0 });
    for (let i = 0; i < 1000; i++) l.failedFor(`10.0.${i >> 8}.${i & 255}`);
    expect(l.retryAfterFor('192.0.2.1')).toBe(0);
  });
});

import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { retryDelay } from '../../../../src/events/notifications/notifier.ts';
import { isRetryableStatus, parseRetryAfter, parseWebhookSecret, signWebhook } from '../../../../src/events/notifications/webhook.ts';

const SECRET = `whsec_${randomBytes(32).toString('base64')}`;

describe('signWebhook', () => {
  it('produces signatures the reference Standard Webhooks library accepts', () => {
    const parsed = parseWebhookSecret(SECRET);
    if (!('key' in parsed)) throw new Error(parsed.problem);
    const body = JSON.stringify({ type: 'key.created', timestamp: new Date().toISOString(), data: { tenant: 'acme', note: 'ünïcødé …' } });
    const ts = Math.floor(Date.now() / 1000);
    const signature = signWebhook(parsed.key, 'evt_1', ts, body);
    expect(signature).toBe(new Webhook(SECRET).sign('evt_1', new Date(ts * 1000), body));
    const headers = { 'webhook-id': 'evt_1', 'webhook-timestamp': String(ts), 'webhook-signature': signature };
    expect(new Webhook(SECRET).verify(body, headers)).toEqual(JSON.parse(body));
    expect(() => new Webhook(SECRET).verify(body.replace('acme', 'evil'), headers)).toThrow();
    expect(() => new Webhook(SECRET).verify(body, { ...headers, 'webhook-id': 'evt_2' })).toThrow();
  });
});

describe('parseWebhookSecret', () => {
  it('decodes whsec_<base64> of 24-64 bytes, trimming a trailing newline', () => {
    const raw = randomBytes(32);
    expect(parseWebhookSecret(`whsec_${raw.toString('base64')}\n`)).toEqual({ key: raw });
    expect('key' in parseWebhookSecret(`whsec_${randomBytes(24).toString('base64')}`)).toBe(true);
    expect('key' in parseWebhookSecret(`whsec_${randomBytes(64).toString('base64')}`)).toBe(true);
  });

  it('says what is wrong without quoting the secret', () => {
    const cases: [string, RegExp][] = [
      ['s3cr3t-s3cr3t-s3cr3t-s3cr3t', /does not start with "whsec_"/],
      ['whsec_', /not standard base64/],
      ['whsec_abc$def', /not standard base64/],
      [`whsec_${randomBytes(32).toString('base64url')}_`, /not standard base64/],
      [`whsec_${randomBytes(16).toString('base64')}`, /decodes to 16 bytes/],
      [`whsec_${randomBytes(65).toString('base64')}`, /decodes to 65 bytes/],
    ];
    for (const [secret, problem] of cases) {
      const result = parseWebhookSecret(secret);
      expect('problem' in result ? result.problem : 'accepted').toMatch(problem);
      if ('problem' in result && secret.length > 6) expect(result.problem).not.toContain(secret.slice(6));
    }
  });
});

describe('retry rules', () => {
  it('retries 408, 429 and 5xx only', () => {
    expect([408, 429, 500, 502, 503, 504].every(isRetryableStatus)).toBe(true);
    expect([300, 301, 400, 401, 403, 404, 410, 413, 422].some(isRetryableStatus)).toBe(false);
  });

  it('reads Retry-After in seconds or as a date', () => {
    const now = Date.UTC(2030, 0, 1);
    expect(parseRetryAfter(null, now)).toBeUndefined();
    expect(parseRetryAfter('7', now)).toBe(7000);
    expect(parseRetryAfter(new Date(now + 5000).toUTCString(), now)).toBe(5000);
    expect(parseRetryAfter('soon', now)).toBeUndefined();
  });

  it('doubles the delay from the base, with ±25% jitter, capped', () => {
    const policy = { attempts: 5, baseDelayMs: 1000, maxDelayMs: 60_000 };
    expect([1, 2, 3, 4].map((n) => retryDelay(policy, n, () => 0.5))).toEqual([1000, 2000, 4000, 8000]);
    expect(retryDelay(policy, 1, () => 0)).toBe(750);
    expect(retryDelay(policy, 1, () => 0.999999)).toBe(1250);
    expect(retryDelay(policy, 10, () => 0.999999)).toBe(60_000);
    expect(retryDelay({ ...policy, maxDelayMs: 3000 }, 3, () => 0.5)).toBe(3000);
  });

  it('waits at least what Retry-After asks, within the cap', () => {
    const policy = { attempts: 5, baseDelayMs: 1000, maxDelayMs: 60_000 };
    expect(retryDelay(policy, 1, () => 0.5, 30_000)).toBe(30_000);
    expect(retryDelay(policy, 1, () => 0.5, 500)).toBe(1000);
    expect(retryDelay(policy, 1, () => 0.5, 3_600_000)).toBe(60_000);
  });
});

import { describe, expect, it } from 'vitest';
import { EXPIRY_PRESETS, parseExpiry } from '../../../src/keys/expiry.ts';
import { keyState } from '../../../src/keys/key-state.ts';
import { toPublic, type KeyRecord } from '../../../src/keys/record.ts';

const NOW = Date.parse('2026-03-01T12:00:00.000Z');
const DAY = 86_400_000;

describe('parseExpiry', () => {
  it('never → null', () => {
    expect(parseExpiry('never', NOW)).toBeNull();
  });

  it('every documented preset is N days from now', () => {
    expect(EXPIRY_PRESETS).toEqual(expect.arrayContaining(['30d', '90d', '365d', 'never']));
    expect(parseExpiry('30d', NOW)).toBe(NOW + 30 * DAY);
    expect(parseExpiry('90d', NOW)).toBe(NOW + 90 * DAY);
    expect(parseExpiry('365d', NOW)).toBe(NOW + 365 * DAY);
    expect(parseExpiry('1d', NOW)).toBe(NOW + DAY);
  });

  it('refuses 0d and malformed presets', () => {
    expect(() => parseExpiry('0d', NOW)).toThrow('"0d" must be at least 1d');
    for (const bad of ['30', '30D', 'd', '-5d', '12345d', '30 d', ' 30d', '1w', '', 'forever']) {
      expect(() => parseExpiry(bad, NOW), bad).toThrow(`"${bad}" is not one of`);
    }
  });

  it('takes ISO dates and date-times in the future', () => {
    expect(parseExpiry('2027-01-01', NOW)).toBe(Date.parse('2027-01-01T00:00:00Z'));
    expect(parseExpiry('2026-03-02T08:30:00Z', NOW)).toBe(Date.parse('2026-03-02T08:30:00Z'));
    expect(parseExpiry('2026-03-02T10:00:00+02:00', NOW)).toBe(Date.parse('2026-03-02T08:00:00Z'));
  });

  it('refuses dates in the past or now', () => {
    expect(() => parseExpiry('2020-01-01', NOW)).toThrow('"2020-01-01" is in the past');
    expect(() => parseExpiry(new Date(NOW).toISOString(), NOW)).toThrow('is in the past');
  });

  it('refuses dates that do not exist', () => {
    expect(() => parseExpiry('2027-13-01', NOW)).toThrow('"2027-13-01" is not a valid date');
    expect(() => parseExpiry('2027-01-01T25:00', NOW)).toThrow('is not a valid date');
    expect(() => parseExpiry('2027-01-01garbage', NOW)).toThrow('is not a valid date');
  });

  it('refuses a day past the end of its month instead of rolling over', () => {
    // V8's Date.parse turns 2027-02-30 into 2027-03-02; a typo must not become a different date.
    expect(() => parseExpiry('2027-02-30', NOW)).toThrow('is not a valid date');
    expect(() => parseExpiry('2027-04-31', NOW)).toThrow('is not a valid date');
  });
});

describe('key record helpers', () => {
  const record: KeyRecord = {
    id: 'key_1', tenant: 'acme', name: 'k', role: 'api-user', permissions: ['read'], group: null, user: null, client: null,
    status: 'active', prefix: 'kg_acme_0000…', createdAt: NOW, expiresAt: NOW + DAY, revokedAt: null, revokesAt: null, lastUsedAt: null, permissionsFrom: 'key', environment: 'live', rateLimits: [], quota: null,
  };

  it('keyState: expired at or after expiresAt; never for null', () => {
    expect(keyState(record, NOW)).toBe('active');
    expect(keyState(record, NOW + DAY - 1)).toBe('active');
    expect(keyState(record, NOW + DAY)).toBe('expired');
    expect(keyState({ ...record, expiresAt: null }, Number.MAX_SAFE_INTEGER)).toBe('active');
  });

  it('toPublic: ISO dates, nothing that is not in the record', () => {
    const pub = toPublic(record);
    expect(pub.createdAt).toBe('2026-03-01T12:00:00.000Z');
    expect(pub.expiresAt).toBe('2026-03-02T12:00:00.000Z');
    expect(pub.revokedAt).toBeNull();
    expect(Object.keys(pub)).not.toContain('key');
    expect(Object.keys(pub)).not.toContain('hash');
  });
});

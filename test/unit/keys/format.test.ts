import { describe, expect, it } from 'vitest';
import { crc32 } from 'node:zlib';
import { displayPrefix, generateKey, parseKey } from '../../../src/keys/format.ts';

describe('key format', () => {
  it('generates <prefix>_<tenant>_<56 hex><8 hex crc32 of everything before>', () => {
    const key = generateKey('kg', 'acme');
    expect(key).toMatch(/^kg_acme_[0-9a-f]{64}$/);
    const head = key.slice(0, -8);
    expect(key.slice(-8)).toBe(crc32(head).toString(16).padStart(8, '0'));
    expect(parseKey(key, 'kg')).toEqual({ prefix: 'kg', tenant: 'acme' });
  });

  it('generates distinct keys', () => {
    const keys = new Set(Array.from({ length: 1000 }, () => generateKey('kg', 'acme')));
    expect(keys.size).toBe(1000);
  });

  it('rejects every single-character typo through the checksum', () => {
    const key = generateKey('kg', 'acme');
    const body = key.length - 64;
    for (let i = body; i < key.length; i++) {
      const c = key[i] === 'a' ? 'b' : 'a';
      expect(parseKey(key.slice(0, i) + c + key.slice(i + 1), 'kg'), `typo at ${i}`).toBeNull();
    }
  });

  it('rejects a swapped tenant, a wrong prefix, truncation, upper case and junk', () => {
    const key = generateKey('kg', 'acme');
    expect(parseKey(key.replace('_acme_', '_acmf_'), 'kg')).toBeNull();
    expect(parseKey(key, 'sk')).toBeNull();
    expect(parseKey(key.slice(0, -1), 'kg')).toBeNull();
    expect(parseKey(key.toUpperCase(), 'kg')).toBeNull();
    expect(parseKey(`${key}0`, 'kg')).toBeNull();
    expect(parseKey('', 'kg')).toBeNull();
    expect(parseKey('kg__' + 'a'.repeat(64), 'kg')).toBeNull();
    expect(parseKey('x'.repeat(10_000), 'kg')).toBeNull();
  });

  it('accepts tenants with dashes and digits, refuses invalid tenants', () => {
    const key = generateKey('kg', 'team-42');
    expect(parseKey(key, 'kg')?.tenant).toBe('team-42');
    expect(() => generateKey('kg', 'Acme')).toThrow(/tenant/);
    expect(() => generateKey('kg', '-acme')).toThrow(/tenant/);
    expect(() => generateKey('kg', 'a_b')).toThrow(/tenant/);
  });

  it('shows a display prefix that does not reveal the key', () => {
    const key = generateKey('kg', 'acme');
    expect(displayPrefix(key)).toBe(`${key.slice(0, 12)}…`);
  });
});

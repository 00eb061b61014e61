import { describe, expect, it } from 'vitest';
import { crc32 } from 'node:zlib';
import { displayPrefix, generateKey, parseKey } from '../../../src/keys/format.ts';

describe('key format', () => {
  it('generates <prefix>_<tenant>_<56 hex><8 hex crc32 of everything before>', () => {
    const key = generateKey('kg', 'acme');
    expect(key).toMatch(/^kg_acme_[0-9a-f]{64}$/);
    const head = key.slice(0, -8);
    expect(key.slice(-8)).toBe(crc32(head).toString(16).padStart(8, '0'));
    expect(parseKey(key, 'kg')).toEqual({ prefix: 'kg', tenant: 'acme', environment: 'live' });
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

  it('sandbox keys: <prefix>_sandbox_<tenant>_…, round trip, the checksum covering the segment', () => {
    const key = generateKey('kg', 'acme', 'sandbox');
    expect(key).toMatch(/^kg_sandbox_acme_[0-9a-f]{64}$/);
    expect(key.slice(-8)).toBe(crc32(key.slice(0, -8)).toString(16).padStart(8, '0'));
    expect(parseKey(key, 'kg')).toEqual({ prefix: 'kg', tenant: 'acme', environment: 'sandbox' });
    expect(displayPrefix(key)).toBe(`${key.slice(0, 20)}…`);
    // The environment is under the checksum: removed, altered or added, the key is refused.
    const live = generateKey('kg', 'acme');
    expect(parseKey(key.replace('kg_sandbox_', 'kg_'), 'kg')).toBeNull();
    expect(parseKey(key.replace('_sandbox_', '_sandbax_'), 'kg')).toBeNull();
    expect(parseKey(key.replace('_sandbox_', '_Sandbox_'), 'kg')).toBeNull();
    expect(parseKey(key.replace('_sandbox_', '_sandbox-'), 'kg')).toBeNull();
    expect(parseKey(live.replace('kg_', 'kg_sandbox_'), 'kg')).toBeNull();
    for (let i = 0; i < key.length - 64; i++) {
      if (key[i] === '_') continue;
      const c = key[i] === 'a' ? 'b' : 'a';
      expect(parseKey(key.slice(0, i) + c + key.slice(i + 1), 'kg'), `typo at ${i}`).toBeNull();
    }
    // Another prefix's sandbox key is not ours.
    expect(parseKey(generateKey('sk', 'acme', 'sandbox'), 'kg')).toBeNull();
    expect(parseKey(generateKey('sk', 'acme', 'sandbox'), 'sk')).toEqual({ prefix: 'sk', tenant: 'acme', environment: 'sandbox' });
  });

  it('a tenant named "sandbox" is a live key of that tenant; its sandbox key names it twice', () => {
    const live = generateKey('kg', 'sandbox');
    expect(live).toMatch(/^kg_sandbox_[0-9a-f]{64}$/);
    expect(parseKey(live, 'kg')).toEqual({ prefix: 'kg', tenant: 'sandbox', environment: 'live' });
    const sandbox = generateKey('kg', 'sandbox', 'sandbox');
    expect(sandbox).toMatch(/^kg_sandbox_sandbox_[0-9a-f]{64}$/);
    expect(parseKey(sandbox, 'kg')).toEqual({ prefix: 'kg', tenant: 'sandbox', environment: 'sandbox' });
    // Tenants that merely start with "sandbox" are live keys of those tenants.
    expect(parseKey(generateKey('kg', 'sandbox-1'), 'kg')).toEqual({ prefix: 'kg', tenant: 'sandbox-1', environment: 'live' });
    expect(parseKey(generateKey('kg', 'sandboxes', 'sandbox'), 'kg')).toEqual({ prefix: 'kg', tenant: 'sandboxes', environment: 'sandbox' });
  });

  it('the longest tenant fits in a sandbox key', () => {
    const tenant = `a${'b'.repeat(62)}`;
    const key = generateKey('abcdefghijklmnop', tenant, 'sandbox');
    expect(parseKey(key, 'abcdefghijklmnop')).toEqual({ prefix: 'abcdefghijklmnop', tenant, environment: 'sandbox' });
    expect(parseKey(`${key}0`, 'abcdefghijklmnop')).toBeNull();
  });
});

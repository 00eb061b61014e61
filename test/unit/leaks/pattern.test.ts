/**
 * The regular expression secret scanners use for keygate keys (README "Leaked keys"): it
 * finds every key keygate generates, and nothing shorter, longer or glued to other text.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { generateKey, parseKey } from '../../../src/keys/format.ts';
import { scannerPattern, scannerRegExp } from '../../../src/leaks/pattern.ts';

const DOCUMENTED = String.raw`\bkg_(?:sandbox_)?[a-z0-9][a-z0-9-]{0,62}_[0-9a-f]{64}\b`;
const TENANTS = ['acme', 'a', '0', 'a-b-c', 'x-', '9lives', `a${'b'.repeat(62)}`, `z${'-'.repeat(62)}`];

/** Whether the pattern finds exactly `key` in `text`. */
function finds(text: string, prefix = 'kg'): string[] {
  return [...text.matchAll(scannerRegExp(prefix))].map((m) => m[0]);
}

describe('scannerPattern', () => {
  it('is the documented expression, with the configured prefix', () => {
    expect(scannerPattern('kg')).toBe(DOCUMENTED);
    expect(scannerPattern('acme2')).toBe(DOCUMENTED.replace('kg_', 'acme2_'));
    expect(() => scannerPattern('Bad_')).toThrow();
    const readme = readFileSync('README.md', 'utf8');
    expect(readme).toContain(DOCUMENTED);
  });

  it('matches every generated key, whole, wherever it stands', () => {
    for (const tenant of TENANTS) {
      for (let i = 0; i < 20; i++) {
        const key = generateKey('kg', tenant);
        expect(finds(key), key).toEqual([key]);
        for (const text of [`X-Api-Key: ${key}`, `KEYGATE_KEY="${key}"`, `url?key=${key}&x=1`, `(${key})`, `${key}\n`, `'${key}',`, `-${key}-`]) {
          expect(finds(text), text).toEqual([key]);
        }
      }
    }
    const custom = generateKey('acme2', 'tenant-1');
    expect(finds(`token=${custom}`, 'acme2')).toEqual([custom]);
    expect(finds(`token=${custom}`)).toEqual([]);
  });

  it('matches nothing shorter, longer, or glued to other word characters', () => {
    const key = generateKey('kg', 'acme');
    const body = key.slice(-64);
    const misses = [
      key.slice(0, -1), // 63 hex
      `${key}0`, // 65 hex
      `${key}a`,
      `${key}g`,
      `${key}_x`,
      `x${key}`,
      `_${key}`,
      `0${key}`,
      `kg_acme_${body.toUpperCase()}`,
      `kg__${body}`, // no tenant
      `kg_-acme_${body}`, // a tenant cannot start with "-"
      `kg_Acme_${body}`,
      `kg_${'a'.repeat(64)}_${body}`, // a tenant is at most 63 characters
      `kg_acme_${body.slice(0, 32)}`,
      `kg-acme-${body}`,
      `kgx_acme_${body}`,
      `kg_acme.corp_${body}`,
    ];
    for (const text of misses) expect(finds(text), text).toEqual([]);
  });

  it('what it finds is the shape parseKey checks (which then also checks the CRC32)', () => {
    const key = generateKey('kg', 'acme');
    const wrongChecksum = `${key.slice(0, -1)}${key.endsWith('0') ? '1' : '0'}`;
    expect(finds(wrongChecksum)).toEqual([wrongChecksum]);
    expect(parseKey(wrongChecksum, 'kg')).toBeNull();
    expect(parseKey(key, 'kg')).toEqual({ prefix: 'kg', tenant: 'acme', environment: 'live' });
  });

  it('matches sandbox keys too, whole, for every tenant (one named "sandbox" included)', () => {
    for (const tenant of [...TENANTS, 'sandbox', 'sandbox-2']) {
      for (const environment of ['live', 'sandbox'] as const) {
        const key = generateKey('kg', tenant, environment);
        expect(finds(key), key).toEqual([key]);
        for (const text of [`X-Api-Key: ${key}`, `KEYGATE_KEY="${key}"`, `(${key})`, `-${key}-`]) expect(finds(text), text).toEqual([key]);
        expect(parseKey(finds(key)[0]!, 'kg')).toEqual({ prefix: 'kg', tenant, environment });
      }
    }
    const key = generateKey('kg', 'acme', 'sandbox');
    const body = key.slice(-64);
    for (const text of [`x${key}`, `${key}0`, `kg_sandbox__${body}`, `kg_SANDBOX_acme_${body}`.replace('SANDBOX_acme', 'SANDBOX_Acme'), `kg_sandbox_sandbox_${'a'.repeat(64)}_${body}`]) {
      expect(finds(text), text).toEqual([]);
    }
    expect(finds(`token=${generateKey('acme2', 'acme', 'sandbox')}`)).toEqual([]);
  });
});

import { describe, expect, it } from 'vitest';
import { bearerToken, CONFLICT, extractCredential } from '../../src/auth/extract.ts';
import { generateKey } from '../../src/keys/format.ts';

const K = generateKey('kg', 'acme');
const K2 = generateKey('kg', 'acme');

describe('bearerToken', () => {
  it('reads the token of a Bearer header, scheme case-insensitive, spaces trimmed', () => {
    expect(bearerToken(`Bearer ${K}`)).toBe(K);
    expect(bearerToken(`bearer ${K}`)).toBe(K);
    expect(bearerToken(`BEARER ${K}`)).toBe(K);
    expect(bearerToken(`Bearer   ${K}  `)).toBe(K);
  });

  it('ignores other schemes and empty tokens', () => {
    expect(bearerToken(undefined)).toBeUndefined();
    expect(bearerToken('Basic dXNlcjpwYXNz')).toBeUndefined();
    expect(bearerToken('Bearer ')).toBeUndefined();
    expect(bearerToken('Bearer      ')).toBeUndefined();
    expect(bearerToken(`Bearer${K}`)).toBeUndefined();
    expect(bearerToken(`Bearerx ${K}`)).toBeUndefined();
    expect(bearerToken(`Token ${K}`)).toBeUndefined();
  });
});

describe('extractCredential', () => {
  it('finds nothing without a credential header', () => {
    expect(extractCredential({})).toBeNull();
    expect(extractCredential({ authorization: 'Basic dXNlcjpwYXNz' })).toBeNull();
    expect(extractCredential({ 'x-api-key': '' })).toBeNull();
    expect(extractCredential({ 'x-api-key': '   ' })).toBeNull();
  });

  it('takes X-Api-Key (trimmed)', () => {
    expect(extractCredential({ 'x-api-key': ` ${K} ` })).toEqual({ key: K, inApiKey: true, inAuthorization: false });
  });

  it('takes Authorization: Bearer', () => {
    expect(extractCredential({ authorization: `Bearer ${K}` })).toEqual({ key: K, inApiKey: false, inAuthorization: true });
  });

  it('accepts both when they carry the same key, and marks both for removal', () => {
    expect(extractCredential({ 'x-api-key': K, authorization: `Bearer ${K}` })).toEqual({ key: K, inApiKey: true, inAuthorization: true });
  });

  it('reports a conflict when they differ', () => {
    expect(extractCredential({ 'x-api-key': K, authorization: `Bearer ${K2}` })).toBe(CONFLICT);
    expect(extractCredential({ 'x-api-key': K, authorization: 'Bearer some-upstream-token' })).toBe(CONFLICT);
  });

  it('leaves a non-Bearer Authorization alone when the key is in X-Api-Key', () => {
    expect(extractCredential({ 'x-api-key': K, authorization: 'Basic dXNlcjpwYXNz' })).toEqual({ key: K, inApiKey: true, inAuthorization: false });
  });

  it('never reads a key from anywhere else', () => {
    expect(extractCredential({ cookie: `api_key=${K}`, 'x-auth-token': K, 'api-key': K })).toBeNull();
  });
});

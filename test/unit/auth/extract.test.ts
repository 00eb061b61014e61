import type { IncomingMessage } from 'node:http';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bearerToken, carriesKey, CONFLICT, extractCredential } from '../../../src/auth/extract.ts';
import { parseConfig } from '../../../src/config/load.ts';
import { generateKey } from '../../../src/keys/format.ts';
import { createHeaderPolicy, upstreamHeaders } from '../../../src/pipeline/rewrite.ts';

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

describe('bearerToken: one reading of Authorization, whatever the whitespace', () => {
  it('takes any run of SP and HTAB (and NBSP) between scheme and token, and around the value', () => {
    expect(bearerToken(`Bearer  ${K}`)).toBe(K);
    expect(bearerToken(`Bearer\t${K}`)).toBe(K);
    expect(bearerToken(`bEaReR \t \t${K}\t `)).toBe(K);
    expect(bearerToken(`\t Bearer ${K}`)).toBe(K);
    expect(bearerToken(`Bearer\u00a0${K}`)).toBe(K);
  });

  it('reads a comma-joined list (duplicates joined by a proxy) element by element', () => {
    expect(bearerToken(`Bearer ${K}, Bearer ${K}`)).toBe(K);
    expect(bearerToken(`Basic dXNlcjpwYXNz, Bearer ${K}`)).toBe(K);
    expect(bearerToken(`Bearer ${K},Basic dXNlcjpwYXNz`)).toBe(K);
    expect(bearerToken(`Bearer ${K}, Bearer ${K2}`)).toBe(CONFLICT);
    expect(bearerToken([`Bearer ${K}`, `bearer\t${K2}`])).toBe(CONFLICT);
    expect(bearerToken([`Basic x`, `bearer\t${K}`])).toBe(K);
  });
});

describe('extractCredential: duplicated and padded headers', () => {
  it('X-Api-Key padded with tabs is the key; repeated (node joins copies with ", "), it is one value that is not a key', () => {
    expect(extractCredential({ 'x-api-key': `\t${K}\t` })).toEqual({ key: K, inApiKey: true, inAuthorization: false });
    expect(extractCredential({ 'x-api-key': `${K}, ${K}` })).toEqual({ key: `${K}, ${K}`, inApiKey: true, inAuthorization: false });
    expect(extractCredential({ 'x-api-key': [K, K2] } as never)).toEqual({ key: `${K}, ${K2}`, inApiKey: true, inAuthorization: false });
  });

  it('a Bearer key after a tab, or two spaces, is the credential', () => {
    expect(extractCredential({ authorization: `Bearer\t${K}` })).toEqual({ key: K, inApiKey: false, inAuthorization: true });
    expect(extractCredential({ authorization: `Bearer  ${K}` })).toEqual({ key: K, inApiKey: false, inAuthorization: true });
  });

  it('two different Bearer tokens in one comma-joined Authorization are a conflict', () => {
    expect(extractCredential({ authorization: `Bearer ${K}, Bearer ${K2}` })).toBe(CONFLICT);
  });
});

describe('carriesKey', () => {
  it('finds a key-shaped Bearer token under any spelling, and a key-shaped word under any scheme', () => {
    for (const value of [`Bearer ${K}`, `Bearer\t${K}`, `BEARER   ${K}`, `Basic x, Bearer ${K}`, `Bearer abc,${K}`, `Token ${K}`, K, `Bearer other ${K}`]) {
      expect(carriesKey(value, 'kg'), JSON.stringify(value)).toBe(true);
    }
  });

  it('leaves other credentials alone', () => {
    for (const value of ['Basic dXNlcjpwYXNz', 'Bearer eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln', 'Bearer upstream-token', 'Bearer xkg_acme_00']) {
      expect(carriesKey(value, 'kg'), value).toBe(false);
    }
  });
});

/** A request as node:http builds it: the first Authorization kept in `headers`, other repeated headers joined with ", ". */
function nodeRequest(raw: string[]): IncomingMessage {
  const headers: Record<string, string> = {};
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    // node trims the value's surrounding SP and HTAB.
    const value = raw[i + 1]!.replace(/^[ \t]+|[ \t]+$/g, '');
    const prev = headers[name];
    if (prev === undefined) headers[name] = value;
    else if (name !== 'authorization' && name !== 'host') headers[name] = `${prev}, ${value}`;
  }
  return { rawHeaders: raw, headers, socket: { remoteAddress: '203.0.113.7' } } as unknown as IncomingMessage;
}

describe('extraction and stripping agree (property)', () => {
  const policy = createHeaderPolicy(parseConfig({}, 'test'));
  const ws = fc.array(fc.constantFrom(' ', '\t', '\u00a0'), { minLength: 1, maxLength: 4 }).map((a) => a.join(''));
  const ows = fc.array(fc.constantFrom(' ', '\t'), { maxLength: 3 }).map((a) => a.join(''));
  const scheme = fc.array(fc.boolean(), { minLength: 6, maxLength: 6 }).map((upper) => [...'bearer'].map((c, i) => (upper[i] ? c.toUpperCase() : c)).join(''));
  const tenant = fc.stringMatching(/^[a-z0-9][a-z0-9-]{0,10}$/);
  const other = fc.constantFrom('Basic dXNlcjpwYXNz', 'Bearer upstream-token', 'Bearer eyJhbGciOiJFUzI1NiJ9.e30.c2ln', 'Digest username="u", realm="r"');
  /** One Authorization field carrying the key: the credential alone, or comma-joined with another. */
  const field = fc
    .record({ scheme, ws, before: ows, after: ows, separator: ows, other, position: fc.constantFrom('alone', 'first', 'last') })
    .map(({ scheme: s, ws: w, before, after, separator, other: o, position }) => (key: string) => {
      const credential = `${before}${s}${w}${key}${after}`;
      return position === 'alone' ? credential : position === 'first' ? `${credential},${separator}${o}` : `${o},${separator}${credential}`;
    });

  it('whatever extractCredential reads as a key is never in the headers forwarded, on public or authenticated routes', () => {
    fc.assert(
      fc.property(
        tenant,
        fc.array(fc.oneof(field.map((f) => ({ kind: 'authorization' as const, f })), fc.record({ kind: fc.constant('x-api-key' as const), before: ows, after: ows }), fc.record({ kind: fc.constant('other' as const), value: other })), { minLength: 1, maxLength: 4 }),
        fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }),
        (t, parts, upper) => {
          const key = generateKey('kg', t);
          const raw: string[] = ['Host', 'gw.example'];
          parts.forEach((part, i) => {
            if (part.kind === 'authorization') raw.push(upper[i] ? 'AUTHORIZATION' : 'Authorization', part.f(key));
            else if (part.kind === 'x-api-key') raw.push(upper[i] ? 'X-API-KEY' : 'x-api-key', `${part.before}${key}${part.after}`);
            else raw.push('Authorization', part.value);
          });
          const req = nodeRequest(raw);
          const credential = extractCredential(req.headers);
          const readKey = credential !== null && credential !== CONFLICT && credential.key === key;
          // Public route: no identity, the Authorization is not marked as the credential.
          const publicOut = upstreamHeaders(req, policy, null, false);
          // Authenticated route: the credential's headers go (only when it was read at all).
          const authOut = readKey ? upstreamHeaders(req, policy, null, credential.inAuthorization) : publicOut;
          for (const out of [publicOut, authOut]) {
            for (let i = 1; i < out.length; i += 2) expect(out[i], `${JSON.stringify(raw)} → ${out[i - 1]}`).not.toContain(key);
          }
        },
      ),
      { numRuns: 2000 },
    );
  });
});

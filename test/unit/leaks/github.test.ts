/**
 * The protocol pieces of GitHub's secret scanning reports (src/leaks/github.ts): signature
 * verification against GitHub's own published example, the feedback hash, body parsing.
 */
import { describe, expect, it } from 'vitest';
import { createPublicKey, generateKeyPairSync, sign } from 'node:crypto';
import { parseGitHubReports, tokenHash, verifyGitHubSignature } from '../../../src/leaks/github.ts';
import { parsePublicKeys } from '../../../src/leaks/public-keys.ts';

// GitHub's documented example (docs "Secret scanning partner program", validation sample):
// key 90a421169f0a406205f1563a953312f0be898d3c7b6c06b681aa86a874555f4a, this payload, this signature.
const GITHUB_EXAMPLE = {
  keyIdentifier: '90a421169f0a406205f1563a953312f0be898d3c7b6c06b681aa86a874555f4a',
  pem: [
    '-----BEGIN PUBLIC KEY-----',
    'MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE9MJJHnMfn2+H4xL4YaPDA4RpJqUq',
    'kCmRCBnYERxZanmcpzQSXs1X/AljlKkbJ8qpVIW4clayyef9gWhFbNHWAA==',
    '-----END PUBLIC KEY-----',
  ].join('\n'),
  payload: '[{"token":"some_token","type":"some_type","url":"some_url"}]',
  signature: 'MEUCIQDKZokqnCjrRtw0tni+2Ltvl/uiMJ1EGumEsp1BsNr32AIgQY1YXD2nlj+XNfGK4rBfkMJ1JDOQcYXxa2sY8FNkrKc=',
};

describe('verifyGitHubSignature', () => {
  const key = createPublicKey(GITHUB_EXAMPLE.pem);

  it("accepts GitHub's own example, as published", () => {
    expect(verifyGitHubSignature(Buffer.from(GITHUB_EXAMPLE.payload), GITHUB_EXAMPLE.signature, key)).toBe(true);
  });

  it('refuses any change to the body, the signature, or another key', () => {
    expect(verifyGitHubSignature(Buffer.from(`${GITHUB_EXAMPLE.payload}\n`), GITHUB_EXAMPLE.signature, key)).toBe(false);
    expect(verifyGitHubSignature(Buffer.from(GITHUB_EXAMPLE.payload.replace('some_token', 'some_tokem')), GITHUB_EXAMPLE.signature, key)).toBe(false);
    const flipped = Buffer.from(GITHUB_EXAMPLE.signature, 'base64');
    flipped[flipped.length - 1]! ^= 1;
    expect(verifyGitHubSignature(Buffer.from(GITHUB_EXAMPLE.payload), flipped.toString('base64'), key)).toBe(false);
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const forged = sign('sha256', Buffer.from(GITHUB_EXAMPLE.payload), { key: other.privateKey, dsaEncoding: 'der' }).toString('base64');
    expect(verifyGitHubSignature(Buffer.from(GITHUB_EXAMPLE.payload), forged, key)).toBe(false);
    expect(verifyGitHubSignature(Buffer.from(GITHUB_EXAMPLE.payload), forged, other.publicKey)).toBe(true);
  });

  it('refuses what is not base64 DER without throwing', () => {
    for (const bad of ['', 'not base64!', '%%%%', 'A'.repeat(300), Buffer.alloc(64, 1).toString('base64')]) {
      expect(verifyGitHubSignature(Buffer.from(GITHUB_EXAMPLE.payload), bad, key)).toBe(false);
    }
  });

  it('the public keys document of the example parses to that key', () => {
    const keys = parsePublicKeys({ public_keys: [{ key_identifier: GITHUB_EXAMPLE.keyIdentifier, key: GITHUB_EXAMPLE.pem, is_current: true }] });
    expect([...keys.keys()]).toEqual([GITHUB_EXAMPLE.keyIdentifier]);
    expect(verifyGitHubSignature(Buffer.from(GITHUB_EXAMPLE.payload), GITHUB_EXAMPLE.signature, keys.get(GITHUB_EXAMPLE.keyIdentifier)!)).toBe(true);
  });
});

describe('tokenHash', () => {
  it('is the lowercase hex SHA-256 of the token', () => {
    expect(tokenHash('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(tokenHash('some_token')).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe('parseGitHubReports', () => {
  it('reads every report, in order; url and source are optional', () => {
    const body = Buffer.from(
      JSON.stringify([
        { token: 't1', type: 'keygate_api_key', url: 'https://github.com/o/r/blob/x/f', source: 'content' },
        { token: 't2', type: 'keygate_api_key' },
        { token: 't3', type: 'keygate_api_key', url: 42, source: null, extra: true },
      ]),
    );
    expect(parseGitHubReports(body)).toEqual([
      { token: 't1', type: 'keygate_api_key', url: 'https://github.com/o/r/blob/x/f', source: 'content' },
      { token: 't2', type: 'keygate_api_key', url: null, source: null },
      { token: 't3', type: 'keygate_api_key', url: null, source: null },
    ]);
    expect(parseGitHubReports(Buffer.from('[]'))).toEqual([]);
  });

  it('says what is wrong with anything else', () => {
    expect(parseGitHubReports(Buffer.from('nope'))).toBe('the body is not JSON');
    expect(parseGitHubReports(Buffer.from('{"token":"t"}'))).toBe('the body must be a JSON array of reports');
    expect(parseGitHubReports(Buffer.from('[{"token":"t"},null]'))).toBe('report [1] is not an object');
    expect(parseGitHubReports(Buffer.from('[{"token":""}]'))).toBe('report [0] has no token string');
    expect(parseGitHubReports(Buffer.from('[{"token":5}]'))).toBe('report [0] has no token string');
  });
});

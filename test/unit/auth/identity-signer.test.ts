import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { testDirectory } from '../../helpers/directory.ts';
import { describe, expect, it } from 'vitest';
import { IdentitySigner } from '../../../src/auth/identity-signer.ts';
import { toIdentity } from '../../../src/auth/identity.ts';
import type { KeyRecord } from '../../../src/keys/record.ts';

const DAY = 86_400;
const record: KeyRecord = {
  id: 'key_1',
  tenant: 'acme',
  name: 'n',
  role: 'api-user',
  permissions: ['orders:read', 'orders:write'],
  group: null,
  user: 'alice',
  client: 'mcp',
  status: 'active',
  prefix: 'kg_acme_0000…',
  createdAt: 0,
  expiresAt: null,
  revokedAt: null,
  revokesAt: null,
  lastUsedAt: null, permissionsFrom: 'key', environment: 'live', rateLimits: [], quota: null,
};
const spec = { audience: 'http://orders:3000', lifetimeSeconds: 60 };

function signer(now: { t: number }, secret = 'pepper-one') {
  return new IdentitySigner(secret, { issuer: 'keygate', rotateSeconds: DAY, now: () => now.t });
}

describe('IdentitySigner', () => {
  it('signs an assertion any JOSE library verifies against the published JWKS, with the identity in its claims', async () => {
    const now = { t: Date.now() };
    const s = signer(now);
    const jws = s.assertion(toIdentity(record, testDirectory({})), spec);
    const { payload, protectedHeader } = await jwtVerify(jws, createLocalJWKSet(s.jwks()), { issuer: 'keygate', audience: spec.audience, algorithms: ['EdDSA'] });
    expect(protectedHeader).toMatchObject({ alg: 'EdDSA', typ: 'kg-identity+jwt' });
    expect(payload).toMatchObject({ sub: 'key_1', key_id: 'key_1', tenant: 'acme', role: 'api-user', user: 'alice', client: 'mcp', permissions: ['orders:read', 'orders:write'] });
    expect(payload.exp! - payload.iat!).toBe(60);
    expect(typeof payload.jti).toBe('string');
  });

  it('is refused by a verifier for another audience, or with a JWKS from another pepper', async () => {
    const now = { t: Date.now() };
    const jws = signer(now).assertion(toIdentity(record, testDirectory({})), spec);
    await expect(jwtVerify(jws, createLocalJWKSet(signer(now).jwks()), { audience: 'http://billing:3000' })).rejects.toThrow(/aud/);
    await expect(jwtVerify(jws, createLocalJWKSet(signer(now, 'pepper-two').jwks()))).rejects.toThrow();
  });

  it('every instance with the same pepper publishes the same keys and signs verifiably for the others', async () => {
    const now = { t: Date.now() };
    const [a, b] = [signer(now), signer(now)];
    expect(a.jwks()).toEqual(b.jwks());
    await jwtVerify(a.assertion(toIdentity(record, testDirectory({})), spec), createLocalJWKSet(b.jwks()), { audience: spec.audience });
  });

  it('reuses an assertion for the same identity until half its lifetime is gone, and never across identities', () => {
    const now = { t: 1_000_000_000_000 };
    const s = signer(now);
    const identity = toIdentity(record, testDirectory({}));
    const first = s.assertion(identity, spec);
    now.t += 29_000;
    expect(s.assertion(identity, spec)).toBe(first);
    // A changed record is a new Identity object (the verifier re-reads it): a new assertion.
    expect(s.assertion(toIdentity({ ...record, permissions: ['orders:read'] }, testDirectory({})), spec)).not.toBe(first);
    expect(s.assertion(identity, { ...spec, audience: 'http://other' })).not.toBe(first);
    now.t += 1_001;
    expect(s.assertion(identity, spec)).not.toBe(first);
  });

  it('rotates its key each period and publishes previous, current and next, so an assertion made just before the turn verifies after it', async () => {
    const now = { t: Math.ceil(Date.now() / (DAY * 1000)) * DAY * 1000 - 1000 };
    const s = signer(now);
    const before = s.assertion(toIdentity(record, testDirectory({})), spec);
    const keysBefore = s.jwks().keys.map((k) => k.kid);
    now.t += 2000;
    const after = s.assertion(toIdentity(record, testDirectory({})), spec);
    expect(decodeProtectedHeader(after).kid).not.toBe(decodeProtectedHeader(before).kid);
    const keysAfter = s.jwks().keys.map((k) => k.kid);
    expect(keysAfter.slice(0, 2)).toEqual(keysBefore.slice(1));
    // A verifier holding the JWKS fetched before the turn can check both.
    const cached = createLocalJWKSet({ keys: s.jwks().keys.filter((k) => keysBefore.includes(k.kid)) });
    await jwtVerify(before, cached, { audience: spec.audience, currentDate: new Date(now.t) });
    await jwtVerify(after, cached, { audience: spec.audience, currentDate: new Date(now.t) });
  });

  it('perRequest: binds the assertion to the request (htm, htu, jti) and signs each time', async () => {
    const now = { t: Date.now() };
    const s = signer(now);
    const identity = toIdentity(record, testDirectory({}));
    const one = s.requestAssertion(identity, spec, { id: 'req-1', method: 'POST', path: '/orders/7' });
    const two = s.requestAssertion(identity, spec, { id: 'req-2', method: 'POST', path: '/orders/7' });
    expect(one).not.toBe(two);
    const { payload } = await jwtVerify(one, createLocalJWKSet(s.jwks()), { audience: spec.audience });
    expect(payload).toMatchObject({ jti: 'req-1', htm: 'POST', htu: '/orders/7' });
  });

  it('never carries the pepper or anything of a key', () => {
    const s = signer({ t: Date.now() });
    const text = JSON.stringify(s.jwks()) + s.assertion(toIdentity(record, testDirectory({})), spec);
    expect(text).not.toContain('pepper-one');
    expect(Buffer.from(text.split('.')[1] ?? '', 'base64url').toString()).not.toMatch(/pepper|hash/);
  });
});

/**
 * Signed identity (issue 24): on routes with `signedIdentity`, the upstream receives a JWS
 * of the caller's identity that it can verify with any JOSE library against the JWKS on the
 * admin listener — for HTTP requests and WebSocket upgrades alike — and a client can never
 * supply one of its own.
 */
import { createLocalJWKSet, createRemoteJWKSet, jwtVerify, type JSONWebKeySet } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.ts';
import { rawRequest } from '../helpers/http.ts';
import { startTestKeygate, type TestKeygate } from '../helpers/keygate.ts';
import { startUpstream, type TestUpstream } from '../helpers/upstream.ts';
import { connectWs, startWsUpstream, type WsUpstream } from '../helpers/ws-upstream.ts';
import { closeAll } from '../helpers/close.ts';

let up: TestUpstream;
let wsUp: WsUpstream;
let t: TestKeygate;
let key: string, keyId: string;

beforeAll(async () => {
  up = await startUpstream();
  wsUp = await startWsUpstream();
  t = await startTestKeygate({
    routes: [
      { name: 'signed', pathPrefix: '/signed', upstream: up.url, signedIdentity: { lifetimeSeconds: 60 } },
      { name: 'bound', pathPrefix: '/bound', upstream: up.url, stripPrefix: true, signedIdentity: { header: 'x-identity', perRequest: true, audience: 'urn:orders' } },
      { name: 'plain', pathPrefix: '/plain', upstream: up.url },
      { name: 'ws', pathPrefix: '/ws', upstream: wsUp.url, websocket: true, signedIdentity: {} },
    ],
  });
  const created = await t.keys.create({ tenant: 'acme', name: 'signed', permissions: ['orders:read'], user: 'alice', client: 'agent' });
  key = created.key;
  keyId = created.record.id;
});

afterAll(() => closeAll(t, up, wsUp));

const jwks = () => createRemoteJWKSet(new URL(`${t.adminUrl}/.well-known/jwks.json`));
const last = () => up.received.at(-1)!;

describe('signed identity', () => {
  it('the upstream gets an assertion it verifies against the admin listener JWKS, naming the key, tenant, user, client and permissions, for its own origin', async () => {
    const res = await rawRequest(t.url, { path: '/signed/x', headers: { 'x-api-key': key } });
    expect(res.status).toBe(200);
    const jws = last().headers['x-keygate-identity'] as string;
    const { payload, protectedHeader } = await jwtVerify(jws, jwks(), { issuer: 'keygate', audience: new URL(up.url).origin, algorithms: ['EdDSA'] });
    expect(protectedHeader.alg).toBe('EdDSA');
    expect(payload).toMatchObject({ sub: keyId, key_id: keyId, tenant: 'acme', user: 'alice', client: 'agent', permissions: ['orders:read'], role: 'api-user' });
    expect(payload.exp! - payload.iat!).toBe(60);
    expect(last().headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('is reused for the same identity, while every request gets its own request id', async () => {
    await rawRequest(t.url, { path: '/signed/a', headers: { 'x-api-key': key } });
    const first = last();
    await rawRequest(t.url, { path: '/signed/b', headers: { 'x-api-key': key } });
    const second = last();
    expect(second.headers['x-keygate-identity']).toBe(first.headers['x-keygate-identity']);
    expect(second.headers['x-request-id']).not.toBe(first.headers['x-request-id']);
  });

  it('perRequest: bound to the method, the upstream path and a unique jti, for the configured audience', async () => {
    await rawRequest(t.url, { method: 'POST', path: '/bound/orders/7?x=1', headers: { 'x-api-key': key, 'content-length': '0' } });
    const { payload } = await jwtVerify(last().headers['x-identity'] as string, jwks(), { audience: 'urn:orders' });
    expect(payload).toMatchObject({ htm: 'POST', htu: '/orders/7', jti: last().headers['x-request-id'] });
    await rawRequest(t.url, { method: 'POST', path: '/bound/orders/7', headers: { 'x-api-key': key, 'content-length': '0' } });
    const again = await jwtVerify(last().headers['x-identity'] as string, jwks(), { audience: 'urn:orders' });
    expect(again.payload.jti).not.toBe(payload.jti);
  });

  it("a client's own assertion or request id is replaced, never forwarded — and routes without signing add none", async () => {
    const forged = 'eyJhbGciOiJub25lIn0.eyJ0ZW5hbnQiOiJnbG9iZXgifQ.';
    await rawRequest(t.url, { path: '/signed/x', headers: { 'x-api-key': key, 'x-keygate-identity': forged, 'x-request-id': 'mine' } });
    const values = (name: string) => last().rawHeaders.filter((_, i, a) => i % 2 === 0 && a[i]!.toLowerCase() === name);
    expect(values('x-keygate-identity')).toHaveLength(1);
    expect(last().headers['x-keygate-identity']).not.toBe(forged);
    expect(last().headers['x-request-id']).not.toBe('mine');
    await rawRequest(t.url, { path: '/plain/x', headers: { 'x-api-key': key } });
    expect(last().headers['x-keygate-identity']).toBeUndefined();
  });

  it('a changed identity gets a new assertion at once: revoked keys get none, a revoked key is refused before any signing', async () => {
    const other = await t.keys.create({ tenant: 'acme', name: 'other', permissions: ['orders:read', 'orders:write'] });
    await rawRequest(t.url, { path: '/signed/x', headers: { 'x-api-key': other.key } });
    const { payload } = await jwtVerify(last().headers['x-keygate-identity'] as string, jwks());
    expect(payload.permissions).toEqual(['orders:read', 'orders:write']);
    await t.keys.revoke(other.record.id);
    const before = up.received.length;
    expect((await rawRequest(t.url, { path: '/signed/x', headers: { 'x-api-key': other.key } })).status).toBe(401);
    expect(up.received.length).toBe(before);
  });

  it('WebSocket upgrades carry the assertion too', async () => {
    const result = await connectWs(`${t.url.replace('http:', 'ws:')}/ws/socket`, { 'x-api-key': key });
    expect(result.ws).not.toBeNull();
    result.ws!.close();
    const headers = wsUp.upgrades.at(-1)!.headers;
    const { payload } = await jwtVerify(headers['x-keygate-identity'] as string, createLocalJWKSet((await (await fetch(`${t.adminUrl}/.well-known/jwks.json`)).json()) as JSONWebKeySet), { audience: new URL(wsUp.url).origin });
    expect(payload.key_id).toBe(keyId);
  });

  it('config: a public route cannot sign, nor reuse an identity header, nor outlive the key rotation', () => {
    const route = { name: 'r', pathPrefix: '/r', upstream: 'http://127.0.0.1:1' };
    expect(() => parseConfig({ routes: [{ ...route, auth: { required: false }, signedIdentity: {} }] }, 't')).toThrow(/routes\[0\]\.signedIdentity: needs auth.required: true/);
    expect(() => parseConfig({ routes: [{ ...route, signedIdentity: { header: 'x-tenant-id' } }] }, 't')).toThrow(/signedIdentity\.header/);
    expect(() => parseConfig({ identitySigning: { rotateSeconds: 600 }, routes: [{ ...route, signedIdentity: { lifetimeSeconds: 900 } }] }, 't')).toThrow(/lifetimeSeconds: must be at most identitySigning.rotateSeconds/);
    expect(() => parseConfig({ routes: [{ ...route, signedIdentity: { lifetimeSeconds: 0 } }] }, 't')).toThrow(/lifetimeSeconds/);
  });

  it('the JWKS holds public keys only, and the assertion nothing secret', async () => {
    const text = await (await fetch(`${t.adminUrl}/.well-known/jwks.json`)).text();
    const { keys } = JSON.parse(text) as { keys: Record<string, unknown>[] };
    expect(keys).toHaveLength(3);
    for (const k of keys) expect(Object.keys(k).sort()).toEqual(['alg', 'crv', 'kid', 'kty', 'use', 'x']);
    expect(t.logs()).not.toContain(key);
  });
});

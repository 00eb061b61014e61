/**
 * Sandbox upstreams on the request path (docs/sandbox.md): the compiled route's two targets,
 * the choice between them, the refusal in authorize, and what the rewrite adds.
 */
import type { IncomingMessage } from 'node:http';
import type { Dispatcher } from 'undici';
import { describe, expect, it } from 'vitest';
import { authorize } from '../../../src/auth/authorize.ts';
import type { Identity } from '../../../src/auth/identity.ts';
import { forbidden } from '../../../src/auth/refusals.ts';
import { parseConfig } from '../../../src/config/load.ts';
import type { RawConfig } from '../../../src/config/schema.ts';
import type { KeyRecord } from '../../../src/keys/record.ts';
import { createHeaderPolicy, upstreamHeaders } from '../../../src/pipeline/rewrite.ts';
import { compileSignedIdentity } from '../../../src/pipeline/signed-identity.ts';
import { Router, targetOf, type DispatcherFor } from '../../../src/routing/router.ts';

function identity(environment: KeyRecord['environment'], overrides: Partial<KeyRecord> = {}): Identity {
  const record: KeyRecord = {
    id: 'key_1', tenant: 'acme', name: 'k', role: 'api-user', permissions: ['read'], group: null, user: null, permissionsFrom: 'key', environment, rateLimits: [], quota: null,
    client: null, status: 'active', prefix: 'kg_acme_0000…', createdAt: 0, expiresAt: null, revokedAt: null, revokesAt: null, lastUsedAt: null,
    ...overrides,
  };
  return { record, permissions: record.permissions, permissionSet: new Set(record.permissions), permissionsHeader: record.permissions.join(',') };
}

function build(routes: RawConfig['routes']) {
  const made: string[] = [];
  const dispatcherFor: DispatcherFor = (origin) => {
    made.push(origin);
    return { origin } as unknown as Dispatcher;
  };
  return { router: new Router(parseConfig({ routes }, 'test').routes, dispatcherFor), made };
}

const live = identity('live');
const sandbox = identity('sandbox');

describe('a route with a sandbox upstream', () => {
  const { router, made } = build([
    { name: 'both', pathPrefix: '/both', upstream: 'http://live.example:3000/v1/', sandbox: { upstream: 'http://sandbox.example:4000/sb' }, stripPrefix: true },
    { name: 'live', pathPrefix: '/live', upstream: 'http://live.example:3000' },
  ]);
  const both = router.match(undefined, '/both/x')!;
  const liveOnly = router.match(undefined, '/live/x')!;

  it('compiles both targets, their pools made with the table (never per request)', () => {
    expect(made.sort()).toEqual(['http://live.example:3000', 'http://live.example:3000', 'http://sandbox.example:4000']);
    expect(both.upstreamOrigin).toBe('http://live.example:3000');
    expect(both.sandbox).toMatchObject({ upstreamOrigin: 'http://sandbox.example:4000', upstreamBasePath: '/sb' });
    expect((both.sandbox!.dispatcher as unknown as { origin: string }).origin).toBe('http://sandbox.example:4000');
    expect(liveOnly.sandbox).toBeNull();
  });

  it('sends sandbox keys to the sandbox target and everything else to the live one, the same objects every time', () => {
    expect(targetOf(both, sandbox)).toBe(both.sandbox);
    expect(targetOf(both, sandbox)).toBe(targetOf(both, identity('sandbox', { id: 'key_2' })));
    expect(targetOf(both, live)).toBe(both);
    expect(targetOf(both, null)).toBe(both);
    expect(targetOf(liveOnly, live)).toBe(liveOnly);
    expect(Router.upstreamPath(both, '/both/x', targetOf(both, sandbox))).toBe('/sb/x');
    expect(Router.upstreamPath(both, '/both/x', targetOf(both, live))).toBe('/v1/x');
    expect(Router.upstreamPath(both, '/both/x')).toBe('/v1/x');
  });

  it('never falls back to the live upstream for a sandbox key', () => {
    expect(() => targetOf(liveOnly, sandbox)).toThrow(/no sandbox upstream/);
  });

  it('authorize refuses sandbox keys only where there is no sandbox upstream, before any other check', () => {
    expect(authorize(both, sandbox, '/both/x')).toBeNull();
    expect(authorize(both, live, '/both/x')).toBeNull();
    expect(authorize(liveOnly, live, '/live/x')).toBeNull();
    expect(authorize(liveOnly, sandbox, '/live/x')).toBe('forbidden_environment');
    // A policy without the field (absent) is a route without a sandbox upstream.
    expect(authorize({ permissions: [], clients: null, tenantFromPath: false, pathPrefix: '/' }, sandbox, '/x')).toBe('forbidden_environment');
    expect(authorize({ ...liveOnly, permissions: ['admin'] }, sandbox, '/live/x')).toBe('forbidden_environment');
    expect(authorize({ ...both, permissions: ['admin'] }, sandbox, '/both/x')).toBe('forbidden_permission');
  });

  it('the refusal says why, and carries no scope challenge', () => {
    const refusal = forbidden(liveOnly, 'forbidden_environment');
    expect(refusal).toMatchObject({ code: 'forbidden_environment', outcome: 'forbidden', headers: undefined });
    expect(refusal.detail).toMatch(/no sandbox upstream.*sandbox keys/);
  });
});

describe('the environment upstream', () => {
  function req(raw: string[]): IncomingMessage {
    const headers: Record<string, string> = {};
    for (let i = 0; i < raw.length; i += 2) headers[raw[i]!.toLowerCase()] = raw[i + 1]!;
    return { rawHeaders: raw, headers, socket: { remoteAddress: '203.0.113.7' } } as unknown as IncomingMessage;
  }
  function all(flat: string[], name: string): string[] {
    const out: string[] = [];
    for (let i = 0; i < flat.length; i += 2) if (flat[i]!.toLowerCase().replaceAll('_', '-') === name) out.push(flat[i + 1]!);
    return out;
  }

  it('is set from the record, once, and client copies (any spelling) are dropped', () => {
    const policy = createHeaderPolicy(parseConfig({}, 't'));
    const forged = ['X-Auth-Environment', 'live', 'x_auth_environment', 'live', 'X-AUTH-ENVIRONMENT', 'live'];
    expect(all(upstreamHeaders(req(forged), policy, sandbox, false), 'x-auth-environment')).toEqual(['sandbox']);
    expect(all(upstreamHeaders(req(forged.map((v) => (v === 'live' ? 'sandbox' : v))), policy, live, false), 'x-auth-environment')).toEqual(['live']);
    // Public routes: no identity, no environment, and the client's copies are still dropped.
    expect(all(upstreamHeaders(req(forged), policy, null, false), 'x-auth-environment')).toEqual([]);
  });

  it('uses the configured header name', () => {
    const policy = createHeaderPolicy(parseConfig({ headers: { environment: 'x-env' } }, 't'));
    const out = upstreamHeaders(req(['X-Env', 'live']), policy, sandbox, false);
    expect(all(out, 'x-env')).toEqual(['sandbox']);
    expect(all(out, 'x-auth-environment')).toEqual([]);
  });

  it('a signed identity is for the sandbox upstream by default, for the named audience when there is one', () => {
    const config = parseConfig(
      {
        routes: [
          { name: 'a', pathPrefix: '/a', upstream: 'http://live.example:3000', sandbox: { upstream: 'http://sandbox.example:4000' }, signedIdentity: {} },
          { name: 'b', pathPrefix: '/b', upstream: 'http://live.example:3000', sandbox: { upstream: 'http://sandbox.example:4000' }, signedIdentity: { audience: 'urn:orders' } },
        ],
      },
      't',
    );
    const a = compileSignedIdentity(config.routes[0]!)!;
    expect(a.spec.audience).toBe('http://live.example:3000');
    expect(a.sandboxSpec.audience).toBe('http://sandbox.example:4000');
    const b = compileSignedIdentity(config.routes[1]!)!;
    expect(b.sandboxSpec.audience).toBe('urn:orders');
  });
});

import { describe, expect, it } from 'vitest';
import { testDirectory } from '../../helpers/directory.ts';
import { authorize, tenantSegment, type RoutePolicy } from '../../../src/auth/authorize.ts';
import { toIdentity } from '../../../src/auth/identity.ts';
import type { KeyRecord } from '../../../src/keys/record.ts';

function record(overrides: Partial<KeyRecord> = {}): KeyRecord {
  return {
    id: 'key_1', tenant: 'acme', name: 'k', role: 'api-user', permissions: ['read', 'write'], group: null, user: null,
    client: 'mcp', status: 'active', prefix: 'kg_acme_0000…', createdAt: 0, expiresAt: null, revokedAt: null, revokesAt: null, lastUsedAt: null, permissionsFrom: 'key', environment: 'live', rateLimits: [], quota: null,
    ...overrides,
  };
}

function policy(overrides: Partial<RoutePolicy> = {}): RoutePolicy {
  return { permissions: [], clients: null, tenantFromPath: false, pathPrefix: '/api', ...overrides };
}

describe('tenantSegment', () => {
  it('is the segment right after the prefix', () => {
    expect(tenantSegment('/t/acme/x', '/t')).toBe('acme');
    expect(tenantSegment('/t/acme', '/t')).toBe('acme');
    expect(tenantSegment('/t/acme/', '/t')).toBe('acme');
    expect(tenantSegment('/acme/x', '/')).toBe('acme');
    expect(tenantSegment('/t', '/t')).toBeUndefined();
    expect(tenantSegment('/t/', '/t')).toBeUndefined();
  });
});

describe('authorize', () => {
  const id = toIdentity(record(), testDirectory({}));

  it('passes when the route asks for nothing', () => {
    expect(authorize(policy(), id, '/api/x')).toBeNull();
  });

  it('requires every listed permission', () => {
    expect(authorize(policy({ permissions: ['read'] }), id, '/api')).toBeNull();
    expect(authorize(policy({ permissions: ['read', 'write'] }), id, '/api')).toBeNull();
    expect(authorize(policy({ permissions: ['read', 'admin'] }), id, '/api')).toBe('forbidden_permission');
    expect(authorize(policy({ permissions: ['READ'] }), id, '/api')).toBe('forbidden_permission');
  });

  it('resolves a group to its permissions', () => {
    const grouped = toIdentity(record({ permissions: [], group: 'readers' }), testDirectory({ readers: ['read'] }));
    expect(grouped.permissionsHeader).toBe('read');
    expect(authorize(policy({ permissions: ['read'] }), grouped, '/api')).toBeNull();
    expect(authorize(policy({ permissions: ['write'] }), grouped, '/api')).toBe('forbidden_permission');
    // A group that was removed from config grants nothing.
    const orphan = toIdentity(record({ permissions: ['read'], group: 'gone' }), testDirectory({}));
    expect(authorize(policy({ permissions: ['read'] }), orphan, '/api')).toBe('forbidden_permission');
  });

  it('limits routes to the listed clients; a key without a client is refused there', () => {
    expect(authorize(policy({ clients: new Set(['mcp']) }), id, '/api')).toBeNull();
    expect(authorize(policy({ clients: new Set(['webhook']) }), id, '/api')).toBe('forbidden_client');
    expect(authorize(policy({ clients: new Set(['mcp']) }), toIdentity(record({ client: null }), testDirectory({})), '/api')).toBe('forbidden_client');
  });

  it('checks the tenant in the path', () => {
    const p = policy({ tenantFromPath: true, pathPrefix: '/t' });
    expect(authorize(p, id, '/t/acme/x')).toBeNull();
    expect(authorize(p, id, '/t/other/x')).toBe('forbidden_tenant');
    expect(authorize(p, id, '/t/acmex/x')).toBe('forbidden_tenant');
    expect(authorize(p, id, '/t')).toBe('forbidden_tenant');
  });
});

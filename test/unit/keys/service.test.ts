import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../../src/config/load.ts';
import { parseKey } from '../../../src/keys/format.ts';
import { CLI_CALLER, KeyService, type CreateKeyInput } from '../../../src/keys/service.ts';
import { KeygateError } from '../../../src/http/problem.ts';
import { EmbeddedStore } from '../../../src/store/embedded/store.ts';
import { testHasher } from '../../helpers/pepper.ts';

const NOW = Date.parse('2026-03-01T12:00:00.000Z');
const DAY = 86_400_000;

let dir: string;
let store: EmbeddedStore;
let service: KeyService;
const hasher = testHasher;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'keygate-svc-'));
  store = new EmbeddedStore({ path: join(dir, 'k.db') });
  const config = parseConfig({ keys: { prefix: 'sk' }, tenants: { system: 'platform' }, permissionGroups: { readers: ['read'], empty: [] } }, 'test');
  service = new KeyService(store, hasher, config, null, () => NOW);
});

afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

async function refused(input: CreateKeyInput): Promise<KeygateError> {
  const before = (await store.list({ includeRevoked: true })).length;
  const error = await service.create(CLI_CALLER, input).then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(KeygateError);
  expect((error as KeygateError).code).toBe('validation_failed');
  // Nothing was written.
  expect((await store.list({ includeRevoked: true })).length).toBe(before);
  return error as KeygateError;
}

describe('KeyService.create', () => {
  it('returns the full key once and stores only its hash', async () => {
    const { key, record } = await service.create(CLI_CALLER, { tenant: 'acme', name: ' ci ', permissions: ['read', 'read', 'write'], user: 'alice', client: 'mcp', expires: '30d' });
    expect(parseKey(key, 'sk')).toEqual({ prefix: 'sk', tenant: 'acme', environment: 'live' });
    expect(record).toMatchObject({
      tenant: 'acme', name: 'ci', role: 'api-user', permissions: ['read', 'write'], group: null, user: 'alice', client: 'mcp',
      status: 'active', createdAt: NOW, expiresAt: NOW + 30 * DAY, revokedAt: null, lastUsedAt: null,
    });
    expect(record.id).toMatch(/^key_[0-9a-f]{20}$/);
    expect(record.prefix).toBe(`${key.slice(0, key.length - 60)}…`);
    expect(JSON.stringify(record)).not.toContain(key.slice(-60));
    expect(await store.findByHash(hasher(key))).toEqual(record);
  });

  it('defaults: api-user, no permissions, no user/client, never expires', async () => {
    const { record } = await service.create(CLI_CALLER, { tenant: 'acme', name: 'k' });
    expect(record).toMatchObject({ role: 'api-user', permissions: [], group: null, user: null, client: null, expiresAt: null });
  });

  it('treats empty user and client as none', async () => {
    const { record } = await service.create(CLI_CALLER, { tenant: 'acme', name: 'k', user: '', client: '' });
    expect(record.user).toBeNull();
    expect(record.client).toBeNull();
  });

  it('gives admin role only to the system tenant', async () => {
    const { record } = await service.create(CLI_CALLER, { tenant: 'platform', name: 'ops', role: 'admin' });
    expect(record.role).toBe('admin');
    const error = await refused({ tenant: 'acme', name: 'ops', role: 'admin' });
    expect(error.field).toBe('role');
    expect(error.message).toMatch(/^role: "admin" keys belong to the system tenant "platform"/);
  });

  it('refuses unknown roles', async () => {
    const error = await refused({ tenant: 'acme', name: 'k', role: 'root' as never });
    expect(error.field).toBe('role');
  });

  it('refuses bad tenants and names, naming the field', async () => {
    for (const tenant of ['Acme', '-acme', 'a_b', '', 'a'.repeat(64)]) expect((await refused({ tenant, name: 'k' })).field, tenant).toBe('tenant');
    for (const name of ['', '   ', 'x'.repeat(129)]) expect((await refused({ tenant: 'acme', name })).field, JSON.stringify(name)).toBe('name');
    expect((await service.create(CLI_CALLER, { tenant: 'acme', name: 'x'.repeat(128) })).record.name).toHaveLength(128);
  });

  it('refuses bad permission names', async () => {
    const error = await refused({ tenant: 'acme', name: 'k', permissions: ['read', 'has space'] });
    expect(error.field).toBe('permissions');
    expect(error.message).toContain('"has space"');
    expect((await refused({ tenant: 'acme', name: 'k', permissions: [''] })).field).toBe('permissions');
    expect((await service.create(CLI_CALLER, { tenant: 'acme', name: 'k', permissions: ['mcp:use', 'files.read', 'a-b_c*'] })).record.permissions).toHaveLength(3);
  });

  it('takes a group that exists, and never both a group and permissions', async () => {
    const { record } = await service.create(CLI_CALLER, { tenant: 'acme', name: 'k', group: 'readers' });
    expect(record.group).toBe('readers');
    expect(record.permissions).toEqual([]);
    const unknown = await refused({ tenant: 'acme', name: 'k', group: 'writers' });
    expect(unknown.field).toBe('group');
    expect(unknown.message).toContain('"writers" is neither a group of tenant');
    const both = await refused({ tenant: 'acme', name: 'k', group: 'readers', permissions: ['read'] });
    expect(both.field).toBe('group');
    // An empty permissions list next to a group is "no permissions", not a conflict.
    expect((await service.create(CLI_CALLER, { tenant: 'acme', name: 'k', group: 'readers', permissions: [] })).record.group).toBe('readers');
    // Not an inherited property of a plain object.
    expect((await refused({ tenant: 'acme', name: 'k', group: 'toString' })).field).toBe('group');
  });

  it('sets expiry from presets and ISO dates; bad values name "expires"', async () => {
    expect((await service.create(CLI_CALLER, { tenant: 'acme', name: 'k', expires: '90d' })).record.expiresAt).toBe(NOW + 90 * DAY);
    expect((await service.create(CLI_CALLER, { tenant: 'acme', name: 'k', expires: '365d' })).record.expiresAt).toBe(NOW + 365 * DAY);
    expect((await service.create(CLI_CALLER, { tenant: 'acme', name: 'k', expires: 'never' })).record.expiresAt).toBeNull();
    expect((await service.create(CLI_CALLER, { tenant: 'acme', name: 'k', expires: '2027-06-01' })).record.expiresAt).toBe(Date.parse('2027-06-01T00:00:00Z'));
    for (const expires of ['soon', '2020-01-01', '0d', '2027-13-01']) {
      const error = await refused({ tenant: 'acme', name: 'k', expires });
      expect(error.field, expires).toBe('expires');
      expect(error.message, expires).toMatch(/^expires: /);
    }
  });

  it('makes a different key and id each time', async () => {
    const a = await service.create(CLI_CALLER, { tenant: 'acme', name: 'k' });
    const b = await service.create(CLI_CALLER, { tenant: 'acme', name: 'k' });
    expect(a.key).not.toBe(b.key);
    expect(a.record.id).not.toBe(b.record.id);
  });
});

describe('KeyService.revoke / revokeTenant / list', () => {
  it('revokes permanently; revoking again changes nothing; unknown ids give null', async () => {
    const { key, record } = await service.create(CLI_CALLER, { tenant: 'acme', name: 'k' });
    const revoked = await service.revoke(CLI_CALLER, record.id);
    expect(revoked).toMatchObject({ changed: true, record: { id: record.id, status: 'revoked', revokedAt: NOW } });
    expect(await service.revoke(CLI_CALLER, record.id)).toEqual({ changed: false, record: revoked.record });
    await expect(service.revoke(CLI_CALLER, 'key_nope')).rejects.toThrow();
    expect((await store.findByHash(hasher(key)))?.status).toBe('revoked');
  });

  it('revokes every active key of one tenant only', async () => {
    const a1 = await service.create(CLI_CALLER, { tenant: 'acme', name: 'a1' });
    const a2 = await service.create(CLI_CALLER, { tenant: 'acme', name: 'a2' });
    const b = await service.create(CLI_CALLER, { tenant: 'beta', name: 'b' });
    await service.revoke(CLI_CALLER, a1.record.id);
    expect(await service.revokeTenant(CLI_CALLER, 'acme')).toEqual([a2.record.id]);
    expect((await service.get(CLI_CALLER, b.record.id)).status).toBe('active');
    expect(await service.list(CLI_CALLER, { tenant: 'acme' })).toEqual([]);
    expect((await service.list(CLI_CALLER, { tenant: 'acme', includeRevoked: true })).map((r) => r.id).sort()).toEqual([a1.record.id, a2.record.id].sort());
    await expect(service.revokeTenant(CLI_CALLER, 'Bad Tenant')).rejects.toMatchObject({ name: 'KeygateError', code: 'validation_failed', field: 'tenant' });
  });
});

describe('values that become upstream identity headers have a key shape everywhere', () => {
  it('a user or client with CR/LF, a leading space or non-ASCII is refused at creation, naming the field', async () => {
    for (const user of ['alice\r\nx-tenant-id: other', ' alice', 'alice\t', 'ålice', 'a'.repeat(257)]) {
      expect((await refused({ tenant: 'acme', name: 'n', user })).message).toMatch(/user|256/);
    }
    for (const client of ['mcp\nx', 'mcp ', 'c'.repeat(65)]) {
      expect((await refused({ tenant: 'acme', name: 'n', client })).message).toMatch(/client|64/);
    }
    const ok = await service.create(CLI_CALLER, { tenant: 'acme', name: 'n', user: 'Alice Smith, Ops', client: 'mcp' });
    expect(ok.record).toMatchObject({ user: 'Alice Smith, Ops', client: 'mcp' });
  });

  it('a permission group member that would split into two permissions upstream is refused in config', () => {
    expect(() => parseConfig({ permissionGroups: { billing: ['billing:read,billing:admin'] } }, 'test')).toThrow(/permissionGroups\.billing\[0\]: must be a permission name/);
    expect(() => parseConfig({ permissionGroups: { billing: ['billing read'] } }, 'test')).toThrow(/permissionGroups\.billing\[0\]/);
  });
});

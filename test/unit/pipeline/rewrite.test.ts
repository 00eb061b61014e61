import { describe, expect, it } from 'vitest';
import { testDirectory } from '../../helpers/directory.ts';
import type { IncomingMessage } from 'node:http';
import { toIdentity } from '../../../src/auth/identity.ts';
import { parseConfig } from '../../../src/config/load.ts';
import type { RawConfig } from '../../../src/config/schema.ts';
import type { KeyRecord } from '../../../src/keys/record.ts';
import { createHeaderPolicy, RESPONSE_HOP_BY_HOP, upstreamHeaders } from '../../../src/pipeline/rewrite.ts';

/** Just the parts of an IncomingMessage that upstreamHeaders reads, built like node:http builds them. */
function req(raw: string[], remoteAddress = '203.0.113.7', encrypted = false): IncomingMessage {
  const headers: Record<string, string | string[]> = {};
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    const value = raw[i + 1]!;
    const prev = headers[name];
    if (name === 'set-cookie') headers[name] = [...((prev as string[] | undefined) ?? []), value];
    else if (prev === undefined) headers[name] = value;
    else if (name !== 'host' && name !== 'authorization') headers[name] = `${prev as string}, ${value}`;
  }
  return { rawHeaders: raw, headers, socket: { remoteAddress, encrypted } } as unknown as IncomingMessage;
}

function record(overrides: Partial<KeyRecord> = {}): KeyRecord {
  return {
    id: 'key_abc', tenant: 'acme', name: 'k', role: 'api-user', permissions: ['read', 'write'], group: null, user: 'alice',
    client: 'mcp', status: 'active', prefix: 'kg_acme_0000…', createdAt: 0, expiresAt: null, revokedAt: null, revokesAt: null, lastUsedAt: null, permissionsFrom: 'key', environment: 'live', rateLimits: [], quota: null,
    ...overrides,
  };
}

function policy(raw: Partial<RawConfig> = {}) {
  return createHeaderPolicy(parseConfig(raw, 'test'));
}

/** [name, value, …] → list of "name: value" with lower-case names, in order. */
function lines(flat: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < flat.length; i += 2) out.push(`${flat[i]!.toLowerCase()}: ${flat[i + 1]}`);
  return out;
}

function values(flat: string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < flat.length; i += 2) if (flat[i]!.toLowerCase() === name) out.push(flat[i + 1]!);
  return out;
}

describe('upstreamHeaders', () => {
  const identity = toIdentity(record(), testDirectory({}));

  it('keeps ordinary headers in order, with their original case and duplicates', () => {
    const out = upstreamHeaders(req(['Host', 'gw', 'Accept', 'a/b', 'X-Custom', '1', 'x-custom', '2', 'Set-Cookie', 'c']), policy(), null, false);
    expect(out.slice(0, 8)).toEqual(['Accept', 'a/b', 'X-Custom', '1', 'x-custom', '2', 'Set-Cookie', 'c']);
  });

  it('removes X-Api-Key always, and Authorization only when it carried the key', () => {
    const raw = ['X-Api-Key', 'kg_x', 'Authorization', 'Basic abc'];
    expect(values(upstreamHeaders(req(raw), policy(), identity, false), 'x-api-key')).toEqual([]);
    expect(values(upstreamHeaders(req(raw), policy(), identity, false), 'authorization')).toEqual(['Basic abc']);
    expect(values(upstreamHeaders(req(['Authorization', 'Bearer kg_x', 'authorization', 'Bearer kg_y']), policy(), identity, true), 'authorization')).toEqual([]);
  });

  it('removes hop-by-hop headers and whatever Connection lists', () => {
    const raw = [
      'Connection', 'keep-alive, X-Private ,x-other', 'Keep-Alive', 'timeout=5', 'Proxy-Connection', 'keep-alive', 'TE', 'trailers',
      'Trailer', 'x-t', 'Transfer-Encoding', 'chunked', 'Upgrade', 'h2c', 'Proxy-Authorization', 'Basic x', 'Proxy-Authenticate', 'Basic',
      'X-Private', 'secret', 'X-Other', 'o', 'Expect', '100-continue', 'Host', 'gw.example', 'X-Kept', 'yes',
    ];
    const out = upstreamHeaders(req(raw), policy(), null, false);
    const names = lines(out).map((l) => l.split(':')[0]);
    for (const gone of ['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-authorization', 'proxy-authenticate', 'x-private', 'x-other', 'expect', 'host']) {
      expect(names, gone).not.toContain(gone);
    }
    expect(values(out, 'x-kept')).toEqual(['yes']);
  });

  it('replaces every client-sent identity header with the verified values', () => {
    const raw = ['X-Tenant-Id', 'evil', 'x-tenant-id', 'evil2', 'X-Api-Key-Id', 'key_evil', 'X-Auth-Role', 'admin', 'X-Auth-Permissions', '*', 'X-Auth-User', 'root', 'X-Auth-Client', 'cli'];
    const out = upstreamHeaders(req(raw), policy(), identity, false);
    expect(values(out, 'x-tenant-id')).toEqual(['acme']);
    expect(values(out, 'x-api-key-id')).toEqual(['key_abc']);
    expect(values(out, 'x-auth-role')).toEqual(['api-user']);
    expect(values(out, 'x-auth-permissions')).toEqual(['read,write']);
    expect(values(out, 'x-auth-user')).toEqual(['alice']);
    expect(values(out, 'x-auth-client')).toEqual(['mcp']);
  });

  it('strips identity headers without adding any when there is no identity (public routes)', () => {
    const out = upstreamHeaders(req(['X-Tenant-Id', 'evil', 'X-Auth-Role', 'admin', 'X-Auth-Permissions', '*']), policy(), null, false);
    for (const name of ['x-tenant-id', 'x-api-key-id', 'x-auth-role', 'x-auth-permissions', 'x-auth-user', 'x-auth-client']) expect(values(out, name), name).toEqual([]);
  });

  it('omits identity headers whose value is empty', () => {
    const bare = toIdentity(record({ permissions: [], user: null, client: null }), testDirectory({}));
    const out = upstreamHeaders(req(['X-Auth-User', 'root', 'X-Auth-Client', 'cli', 'X-Auth-Permissions', '*']), policy(), bare, false);
    expect(values(out, 'x-auth-permissions')).toEqual([]);
    expect(values(out, 'x-auth-user')).toEqual([]);
    expect(values(out, 'x-auth-client')).toEqual([]);
    expect(values(out, 'x-tenant-id')).toEqual(['acme']);
  });

  it('uses the configured header names, and strips client copies of those names', () => {
    const p = policy({ headers: { tenant: 'x-org', keyId: 'x-key' } });
    const out = upstreamHeaders(req(['X-Org', 'evil', 'X-Key', 'key_evil']), p, identity, false);
    expect(values(out, 'x-org')).toEqual(['acme']);
    expect(values(out, 'x-key')).toEqual(['key_abc']);
    expect(values(out, 'x-tenant-id')).toEqual([]);
  });

  it('sets X-Forwarded-* from the connection and drops client copies by default', () => {
    const raw = ['Host', 'gw.example:8080', 'X-Forwarded-For', '10.0.0.1', 'X-Forwarded-Proto', 'https', 'X-Forwarded-Host', 'evil', 'Forwarded', 'for=10.0.0.1'];
    const out = upstreamHeaders(req(raw), policy(), null, false);
    expect(values(out, 'x-forwarded-for')).toEqual(['203.0.113.7']);
    expect(values(out, 'x-forwarded-proto')).toEqual(['http']);
    expect(values(out, 'x-forwarded-host')).toEqual(['gw.example:8080']);
    expect(values(out, 'forwarded')).toEqual([]);
    expect(values(upstreamHeaders(req([], '203.0.113.7', true), policy(), null, false), 'x-forwarded-proto')).toEqual(['https']);
  });

  it('appends to client X-Forwarded-* only when trusted', () => {
    const raw = ['Host', 'gw.example', 'X-Forwarded-For', '10.0.0.1', 'X-Forwarded-Proto', 'https', 'X-Forwarded-Host', 'public.example'];
    const out = upstreamHeaders(req(raw), policy({ forwarded: { trustClient: true } }), null, false);
    expect(values(out, 'x-forwarded-for')).toEqual(['10.0.0.1, 203.0.113.7']);
    expect(values(out, 'x-forwarded-proto')).toEqual(['https']);
    expect(values(out, 'x-forwarded-host')).toEqual(['public.example']);
  });

  it('lets route-set headers replace any client copy', () => {
    const out = upstreamHeaders(req(['Authorization', 'Basic client', 'X-A', '1']), policy(), identity, false, ['authorization', 'Bearer injected']);
    expect(values(out, 'authorization')).toEqual(['Bearer injected']);
    expect(values(out, 'x-a')).toEqual(['1']);
  });
});

describe('RESPONSE_HOP_BY_HOP', () => {
  it('lists the RFC 9110 connection-specific fields', () => {
    for (const name of ['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'proxy-connection']) expect(RESPONSE_HOP_BY_HOP.has(name), name).toBe(true);
    expect(RESPONSE_HOP_BY_HOP.has('content-type')).toBe(false);
  });
});

/**
 * The admin listener's access rules on their own (admin/server.ts adminAccess, hostAllowed):
 * which Host names are answered by default and when configured, and how the /metrics token
 * is read from the environment.
 */
import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { adminAccess, hostAllowed } from '../../../src/admin/server.ts';
import { ConfigError, parseConfig } from '../../../src/config/load.ts';
import type { RawConfig } from '../../../src/config/schema.ts';

function admin(raw: Omit<NonNullable<RawConfig['admin']>, 'port'> = {}) {
  return parseConfig({ admin: { ...raw, port: 8081 } }, 'test').admin;
}

function req(hosts: string[]): IncomingMessage {
  const rawHeaders = hosts.flatMap((h) => ['Host', h]);
  return { rawHeaders, headers: hosts.length ? { host: hosts[0] } : {} } as unknown as IncomingMessage;
}

describe('admin.hosts', () => {
  it('by default answers localhost, the loopback addresses, admin.host and the console origin, on any port', () => {
    const { hosts } = adminAccess(admin({ host: 'keygate-admin.internal', console: { origin: 'https://Console.Example.com:8443' } }), {});
    for (const host of ['localhost', 'localhost:8081', 'LOCALHOST.', '127.0.0.1:1', '[::1]:8081', 'keygate-admin.internal:8081', 'console.example.com:8443']) {
      expect(hostAllowed(req([host]), hosts), host).toBe(true);
    }
    for (const host of ['rebind.evil.example', 'rebind.evil.example:8081', 'localhost.evil.example', 'keygate-admin.internal.evil', 'local host', 'evil.example:8081@localhost']) {
      expect(hostAllowed(req([host]), hosts), host).toBe(false);
    }
  });

  it('a wildcard admin.host adds no name; any IP address is answered (DNS rebinding needs a name)', () => {
    const { hosts } = adminAccess(admin({ host: '0.0.0.0' }), {});
    expect(hosts.has('0.0.0.0')).toBe(false);
    expect(hostAllowed(req(['10.1.2.3:8081']), hosts)).toBe(true);
    expect(hostAllowed(req(['[fd00::5]:8081']), hosts)).toBe(true);
    expect(hostAllowed(req(['keygate.internal']), hosts)).toBe(false);
  });

  it('configured, replaces the default names; an entry with a port answers that port only', () => {
    const { hosts } = adminAccess(admin({ hosts: ['Admin.Example.com:8443', 'ops.internal'] }), {});
    expect(hostAllowed(req(['admin.example.com:8443']), hosts)).toBe(true);
    expect(hostAllowed(req(['admin.example.com:8081']), hosts)).toBe(false);
    expect(hostAllowed(req(['admin.example.com']), hosts)).toBe(false);
    expect(hostAllowed(req(['ops.internal:1234']), hosts)).toBe(true);
    expect(hostAllowed(req(['localhost']), hosts)).toBe(false);
  });

  it('two Host headers are refused even when both are allowed', () => {
    const { hosts } = adminAccess(admin(), {});
    expect(hostAllowed(req(['localhost', 'localhost']), hosts)).toBe(false);
  });

  it('the config refuses an entry that is not a host', () => {
    expect(() => admin({ hosts: ['https://admin.example.com'] })).toThrow(/admin\.hosts\[0\]: must be a host name/);
    expect(() => admin({ hosts: [] })).toThrow(/admin\.hosts/);
  });
});

describe('admin.metricsTokenEnv', () => {
  it('reads the token from the variable it names; /metrics is open without it', () => {
    expect(adminAccess(admin(), {}).metricsToken).toBeNull();
    expect(adminAccess(admin({ metricsTokenEnv: 'MT' }), { MT: 'x'.repeat(32) }).metricsToken).toHaveLength(32);
  });

  it('an unset, empty or short variable stops start-up with a ConfigError naming the field, never the value', () => {
    for (const env of [{}, { MT: '' }, { MT: 'short-token' }, { MT: 'has space in it 0123456789' }]) {
      let error: unknown;
      try {
        adminAccess(admin({ metricsTokenEnv: 'MT' }), env);
      } catch (e) {
        error = e;
      }
      expect(error, JSON.stringify(env)).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).problems.join()).toContain('admin.metricsTokenEnv');
      if (env.MT) expect((error as ConfigError).problems.join()).not.toContain(env.MT);
    }
  });

  it('the config wants a variable name, not the token itself', () => {
    expect(() => admin({ metricsTokenEnv: 'abc def 0123' })).toThrow(/admin\.metricsTokenEnv/);
  });
});

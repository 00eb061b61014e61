/**
 * The console's session token (signed, stateless) and its config section: what is
 * accepted, what is refused, and the messages a person gets for a bad setting.
 */
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../../../src/config/load.ts';
import { newSessionId, SessionTokens, type SessionPayload } from '../../../../src/admin/console/session-token.ts';
import { TEST_PEPPER } from '../../../helpers/pepper.ts';

const now = 1_800_000_000_000;
const payload = (extra: Partial<SessionPayload> = {}): SessionPayload => ({ sid: newSessionId(), kid: 'key_abc', ten: 'acme', iat: now, exp: now + 60_000, max: now + 3_600_000, ...extra });

describe('SessionTokens', () => {
  const tokens = new SessionTokens(TEST_PEPPER);

  it('round-trips a payload until either deadline', () => {
    const p = payload();
    const token = tokens.sign(p);
    expect(token).toMatch(/^v1\.[\w-]+\.[\w-]{43}$/);
    expect(tokens.verify(token, now)).toEqual(p);
    expect(tokens.verify(token, now + 59_999)).toEqual(p);
    expect(tokens.verify(token, now + 60_000)).toBeNull();
    expect(tokens.verify(tokens.sign(payload({ exp: now + 7_200_000 })), now + 3_600_000)).toBeNull();
  });

  it('refuses a changed payload, another pepper’s signature, other versions and junk', () => {
    const token = tokens.sign(payload());
    const [v, body, mac] = token.split('.') as [string, string, string];
    const changed = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(body, 'base64url').toString()), ten: null })).toString('base64url');
    expect(tokens.verify(`${v}.${changed}.${mac}`, now)).toBeNull();
    expect(tokens.verify(new SessionTokens(`${TEST_PEPPER}x`).sign(payload()), now)).toBeNull();
    expect(tokens.verify(`v2.${body}.${mac}`, now)).toBeNull();
    for (const junk of ['', 'v1', 'v1..', `v1.${body}`, `${token}.x`, 'x'.repeat(5000)]) expect(tokens.verify(junk, now)).toBeNull();
  });

  it('refuses a well-signed payload of the wrong shape', () => {
    for (const bad of [{ ...payload(), kid: '' }, { ...payload(), ten: 3 }, { ...payload(), exp: 'soon' }, { sid: 'x' }, null, []]) {
      expect(tokens.verify(tokens.sign(bad as SessionPayload), now)).toBeNull();
    }
  });

  it('derives CSRF tokens per session, with a key of their own', () => {
    const a = tokens.csrfToken('session-a');
    expect(a).toMatch(/^[\w-]{43}$/);
    expect(tokens.csrfToken('session-b')).not.toBe(a);
    expect(tokens.csrfMatches('session-a', a)).toBe(true);
    expect(tokens.csrfMatches('session-b', a)).toBe(false);
    expect(tokens.csrfMatches('session-a', a.slice(1))).toBe(false);
    expect(new SessionTokens(`${TEST_PEPPER}x`).csrfToken('session-a')).not.toBe(a);
  });

  it('session ids are random', () => {
    expect(new Set(Array.from({ length: 100 }, newSessionId)).size).toBe(100);
  });
});

describe('admin.console in the config', () => {
  const problems = (console: unknown): string[] => {
    try {
      parseConfig({ admin: { port: 8081, console } }, 'test.yaml');
    } catch (error) {
      return (error as ConfigError).problems;
    }
    throw new Error('accepted');
  };

  it('normalises the origin', () => {
    expect(parseConfig({ admin: { port: 1, console: { origin: 'https://Admin.Example.com:443/' } } }, 't').admin.console.origin).toBe('https://admin.example.com');
  });

  it('refuses what is not an origin, and session lengths that make no sense', () => {
    expect(problems({ origin: 'https://admin.example.com/console' })[0]).toMatch(/^admin\.console\.origin: must be an origin/);
    expect(problems({ origin: 'admin.example.com' })[0]).toMatch(/^admin\.console\.origin: must be an origin/);
    expect(problems({ sessionIdleMs: 1000 })).toEqual(['admin.console.sessionIdleMs: must be at least 60000 (one minute)']);
    expect(problems({ sessionIdleMs: 3_600_000, sessionMaxMs: 600_000 })).toEqual(['admin.console.sessionMaxMs: must be at least sessionIdleMs']);
    expect(problems({ enabled: 'yes' })[0]).toMatch(/^admin\.console\.enabled/);
    expect(problems({ secure: true })[0]).toMatch(/secure/);
  });
});

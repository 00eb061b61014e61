import { describe, expect, it } from 'vitest';
import { Directory, USER_DISABLED } from '../../../src/users/directory.ts';
import type { GroupRecord, UserRecord } from '../../../src/users/records.ts';
import { directoryChange } from '../../../src/users/records.ts';
import { parseKeyMessage } from '../../../src/store/redis/messages.ts';

const user = (over: Partial<UserRecord> = {}): UserRecord => ({ tenant: 'acme', name: 'alice', displayName: 'Alice', group: 'ops', createdAt: 1, updatedAt: 1, disabledAt: null, ...over });
const group = (over: Partial<GroupRecord> = {}): GroupRecord => ({ tenant: 'acme', name: 'ops', permissions: ['read', 'write'], rateLimits: [], createdAt: 1, updatedAt: 1, ...over });
const key = (over: Partial<{ tenant: string; permissions: string[]; group: string | null; user: string | null; permissionsFrom: 'key' | 'user' }> = {}) => ({
  tenant: 'acme', permissions: ['own'], group: null, user: null, permissionsFrom: 'key' as const, ...over,
});

describe('Directory.resolve', () => {
  const dir = new Directory({ readers: ['read'], ops: ['global-ops'] }, { users: [user(), user({ name: 'bob', disabledAt: 5 }), user({ name: 'eve', group: 'gone' })], groups: [group()] });

  it("a key acting as a user has its user's group, the tenant's own group before the config's of the same name", () => {
    expect(dir.resolve(key({ permissionsFrom: 'user', user: 'alice' }))).toEqual(['read', 'write']);
    expect(dir.resolve(key({ tenant: 'globex', permissionsFrom: 'user', user: 'alice' }))).toBe(USER_DISABLED);
  });

  it('a disabled or unknown user refuses the key; a user whose group is gone has no permissions', () => {
    expect(dir.resolve(key({ permissionsFrom: 'user', user: 'bob' }))).toBe(USER_DISABLED);
    expect(dir.resolve(key({ permissionsFrom: 'user', user: 'nobody' }))).toBe(USER_DISABLED);
    expect(dir.resolve(key({ permissionsFrom: 'user', user: null }))).toBe(USER_DISABLED);
    expect(dir.resolve(key({ permissionsFrom: 'user', user: 'eve' }))).toEqual([]);
  });

  it('a key with its own group or permissions ignores users (a user name on it is a label)', () => {
    expect(dir.resolve(key({ group: 'readers', user: 'alice' }))).toEqual(['read']);
    expect(dir.resolve(key({ user: 'bob' }))).toEqual(['own']);
    expect(dir.resolve(key({ group: 'missing' }))).toEqual([]);
    expect(dir.resolve(key({ tenant: 'globex', group: 'ops' }))).toEqual(['global-ops']);
  });

  it('applies pushed changes and says whether anything changed; a deleted group grants nothing', () => {
    const d = new Directory({}, { users: [user()], groups: [group()] });
    expect(d.apply({ tenant: 'acme', kind: 'user', name: 'alice', value: user() })).toBe(false);
    expect(d.apply({ tenant: 'acme', kind: 'user', name: 'alice', value: user({ disabledAt: 9 }) })).toBe(true);
    expect(d.resolve(key({ permissionsFrom: 'user', user: 'alice' }))).toBe(USER_DISABLED);
    expect(d.apply({ tenant: 'acme', kind: 'group', name: 'ops', value: null })).toBe(true);
    expect(d.apply({ tenant: 'acme', kind: 'group', name: 'ops', value: null })).toBe(false);
    expect(d.resolve(key({ group: 'ops' }))).toEqual([]);
  });

  it('is not ready until a snapshot was loaded (a serving process whose store was unreachable at start)', () => {
    const d = new Directory({});
    expect(d.ready).toBe(false);
    expect(Directory.needed({ group: null, permissionsFrom: 'key' })).toBe(false);
    expect(Directory.needed({ group: 'g', permissionsFrom: 'key' })).toBe(true);
    d.load({ users: [], groups: [] });
    expect(d.ready).toBe(true);
  });
});

describe('directory changes on the revocation channel', () => {
  it('parses a change with its log position; a value that does not match its name, or cannot be read, is unreadable (the feed resyncs)', () => {
    const v = JSON.stringify(user());
    expect(parseKeyMessage(JSON.stringify({ dir: { t: 'acme', k: 'user', n: 'alice', v }, seq: 7, id: '1-0' }))).toEqual({ directory: { tenant: 'acme', kind: 'user', name: 'alice', value: user() }, seq: 7, id: '1-0' });
    expect(parseKeyMessage(JSON.stringify({ dir: { t: 'acme', k: 'group', n: 'ops', v: false } }))).toEqual({ directory: { tenant: 'acme', kind: 'group', name: 'ops', value: null } });
    expect(parseKeyMessage(JSON.stringify({ dir: { t: 'acme', k: 'user', n: 'mallory', v } }))).toBeNull();
    expect(parseKeyMessage(JSON.stringify({ dir: { t: 'acme', k: 'user', n: 'alice', v: '{"tenant":' } }))).toBeNull();
    expect(parseKeyMessage(JSON.stringify({ dir: { t: 'acme', k: 'key', n: 'alice', v } }))).toBeNull();
    expect(parseKeyMessage(JSON.stringify({ dir: 'acme' }))).toBeNull();
    expect(directoryChange('acme', 'user', 'alice', JSON.stringify({ ...user(), disabledAt: 'soon' }))).toBeNull();
  });
});

import type { DirectoryChange } from '../../../../src/users/records.ts';
import type { DirectorySnapshot } from '../../../../src/store/directory-store.ts';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { displayPrefix, generateKey } from '../../../../src/keys/format.ts';
import { newKeyId } from '../../../../src/keys/ids.ts';
import type { KeyRecord } from '../../../../src/keys/record.ts';
import { EmbeddedStore } from '../../../../src/store/embedded/store.ts';
import { DuplicateKeyError, type RevocationEvent, type StoreFeed } from '../../../../src/store/key-store.ts';
import { testHasher } from '../../../helpers/pepper.ts';

const hasher = testHasher;
let dir: string;
let path: string;
const open: EmbeddedStore[] = [];

function openStore(pollMs = 20): EmbeddedStore {
  const store = new EmbeddedStore({ path, pollMs });
  open.push(store);
  return store;
}

function newRecord(tenant = 'acme', overrides: Partial<KeyRecord> = {}): { key: string; hash: string; record: KeyRecord } {
  const key = generateKey('kg', tenant);
  const record: KeyRecord = {
    id: newKeyId(), tenant, name: 'k', role: 'api-user', permissions: ['read', 'mcp:use'], group: null, user: 'alice', client: 'mcp',
    status: 'active', prefix: displayPrefix(key), createdAt: Date.now(), expiresAt: Date.now() + 86_400_000, revokedAt: null, revokesAt: null, lastUsedAt: null, permissionsFrom: 'key', environment: 'live', rateLimits: [], quota: null,
    ...overrides,
  };
  return { key, hash: hasher(key), record };
}

class RecordingFeed implements StoreFeed {
  events: RevocationEvent[] = [];
  resyncs = 0;
  changes: string[][] = [];
  revoked(event: RevocationEvent): void {
    this.events.push(event);
  }
  changed(hashes: readonly string[]): void {
    this.changes.push([...hashes]);
  }
  resync(): void {
    this.resyncs++;
  }
  directoryChanged(change: DirectoryChange): void {
    this.directory.push(change);
  }
  directoryReset(snapshot: DirectorySnapshot): void {
    this.snapshots.push(snapshot);
  }
  directory: DirectoryChange[] = [];
  snapshots: DirectorySnapshot[] = [];
}

/** A serving process (polling every 20 ms) with a recording feed, and one key in its store. */
async function serverWithKey() {
  const server = openStore(20);
  const feed = new RecordingFeed();
  await server.subscribe(feed);
  const { hash, record } = newRecord();
  await server.create(record, hash);
  return { server, feed, hash, record };
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'keygate-store-'));
  path = join(dir, 'sub', 'keygate.db');
});

afterEach(async () => {
  for (const store of open.splice(0)) await store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('EmbeddedStore', () => {
  it('creates its directory and a database only its owner can read', () => {
    openStore();
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'sub')).mode & 0o077).toBe(0);
  });

  it('finds a record by hash and by id, with every field intact', async () => {
    const store = openStore();
    const { hash, record } = newRecord('acme', { group: 'readers', permissions: [], user: null, client: null, expiresAt: null });
    await store.create(record, hash);
    expect(await store.findByHash(hash)).toEqual(record);
    expect(await store.get(record.id)).toEqual(record);
    expect(await store.findByHash(hasher(generateKey('kg', 'acme')))).toBeNull();
    expect(await store.get('key_missing')).toBeNull();
  });

  it('refuses a second record with the same id or hash', async () => {
    const store = openStore();
    const a = newRecord();
    await store.create(a.record, a.hash);
    await expect(store.create({ ...newRecord().record, id: a.record.id }, hasher(generateKey('kg', 'acme')))).rejects.toBeInstanceOf(DuplicateKeyError);
    await expect(store.create(newRecord().record, a.hash)).rejects.toBeInstanceOf(DuplicateKeyError);
  });

  it('lists newest first, filters by tenant, hides revoked keys unless asked', async () => {
    const store = openStore();
    const a = newRecord('acme', { createdAt: 1000 });
    const b = newRecord('acme', { createdAt: 2000 });
    const c = newRecord('beta', { createdAt: 3000 });
    for (const r of [a, b, c]) await store.create(r.record, r.hash);
    await store.revoke(a.record.id, 5000);
    expect((await store.list({})).map((r) => r.id)).toEqual([c.record.id, b.record.id]);
    expect((await store.list({ tenant: 'acme' })).map((r) => r.id)).toEqual([b.record.id]);
    expect((await store.list({ tenant: 'acme', includeRevoked: true })).map((r) => r.id)).toEqual([b.record.id, a.record.id]);
    expect(JSON.stringify(await store.list({ includeRevoked: true }))).not.toContain(a.hash);
  });

  it('survives being closed and reopened (durable)', async () => {
    const first = openStore();
    const live = newRecord();
    const gone = newRecord();
    await first.create(live.record, live.hash);
    await first.create(gone.record, gone.hash);
    await first.revoke(gone.record.id, 1234);
    await first.close();

    const second = openStore();
    expect(await second.findByHash(live.hash)).toEqual(live.record);
    expect(await second.findByHash(gone.hash)).toEqual({ ...gone.record, status: 'revoked', revokedAt: 1234 });
  });

  it('revokes permanently and tells its subscriber at once', async () => {
    const store = openStore();
    const feed = new RecordingFeed();
    await store.subscribe(feed);
    const { hash, record } = newRecord();
    await store.create(record, hash);
    const after = await store.revoke(record.id, 777);
    expect(after).toMatchObject({ status: 'revoked', revokedAt: 777 });
    expect(feed.events[0]).toEqual({ ids: [record.id], hashes: [hash], at: 777 });
    // Revoking again keeps the first revocation and announces nothing new.
    expect(await store.revoke(record.id, 999)).toMatchObject({ status: 'revoked', revokedAt: 777 });
    expect(await store.revoke('key_nope', 999)).toBeNull();
    expect(feed.events.filter((e) => e.at === 999)).toEqual([]);
  });

  it('revokes every active key of a tenant in one event', async () => {
    const store = openStore();
    const feed = new RecordingFeed();
    await store.subscribe(feed);
    const a = newRecord('acme');
    const b = newRecord('acme');
    const c = newRecord('beta');
    for (const r of [a, b, c]) await store.create(r.record, r.hash);
    const ids = await store.revokeTenant('acme', 42);
    expect(ids.sort()).toEqual([a.record.id, b.record.id].sort());
    expect(feed.events).toHaveLength(1);
    expect(feed.events[0]!.hashes.sort()).toEqual([a.hash, b.hash].sort());
    expect((await store.get(c.record.id))?.status).toBe('active');
    expect(await store.revokeTenant('acme', 43)).toEqual([]);
    expect(await store.revokeTenant('nobody', 43)).toEqual([]);
  });

  it('delivers a revocation written by another instance on the same file within pollMs', async () => {
    const { server, feed, hash, record } = await serverWithKey();
    const cli = openStore();
    expect(await cli.findByHash(hash)).toEqual(record);
    const at = Date.now();
    await cli.revoke(record.id, at);
    await cli.close();

    const start = Date.now();
    while (!feed.events.some((e) => e.ids.includes(record.id)) && Date.now() - start < 2000) await sleep(5);
    const event = feed.events.find((e) => e.ids.includes(record.id));
    expect(event).toEqual({ ids: [record.id], hashes: [hash], at });
    // Poll interval 20 ms; allow scheduling slack on a busy machine, but far below "seconds".
    expect(Date.now() - start).toBeLessThan(500);
    expect((await server.findByHash(hash))?.status).toBe('revoked');
  });

  it("hears another process's revocation at once, without waiting for its poll timer (the write wakes it)", async () => {
    // A timer that would take a minute: only the file event can deliver it in time.
    const server = openStore(60_000);
    const feed = new RecordingFeed();
    await server.subscribe(feed);
    const { hash, record } = newRecord();
    await server.create(record, hash);
    await sleep(50);
    const cli = openStore(60_000);
    await cli.revoke(record.id, Date.now());
    const start = Date.now();
    while (!feed.events.some((e) => e.ids.includes(record.id)) && Date.now() - start < 2000) await sleep(2);
    expect(feed.events.find((e) => e.ids.includes(record.id))?.hashes).toEqual([hash]);
    expect(Date.now() - start).toBeLessThan(500);
  });

  it('does not replay revocations that happened before it subscribed', async () => {
    const store = openStore(10);
    const old = newRecord();
    await store.create(old.record, old.hash);
    await store.revoke(old.record.id, 1);
    const feed = new RecordingFeed();
    await store.subscribe(feed);
    await sleep(60);
    expect(feed.events).toEqual([]);
  });

  it('stops polling once closed', async () => {
    const server = openStore(10);
    const feed = new RecordingFeed();
    await server.subscribe(feed);
    await server.close();
    const cli = openStore();
    const { hash, record } = newRecord();
    await cli.create(record, hash);
    await cli.revoke(record.id, 1);
    await sleep(60);
    expect(feed.events).toEqual([]);
  });

  it("schedules a rotation's revocation on the record, tells its own feed at once and other processes within pollMs", async () => {
    const { server, feed, hash, record } = await serverWithKey();
    const cli = openStore();
    const after = await cli.scheduleRevocation(record.id, 50_000);
    expect(after).toEqual({ ...record, revokesAt: 50_000 });
    const start = Date.now();
    while (!feed.changes.length && Date.now() - start < 2000) await sleep(5);
    expect(feed.changes).toEqual([[hash]]);
    expect(Date.now() - start).toBeLessThan(500);
    expect(feed.events).toEqual([]); // changed, not revoked
    expect(await server.findByHash(hash)).toEqual({ ...record, revokesAt: 50_000 });

    // An earlier time wins; a later one does not postpone it. This process's feed hears at once.
    expect((await server.scheduleRevocation(record.id, 40_000))?.revokesAt).toBe(40_000);
    expect(feed.changes.at(-1)).toEqual([hash]);
    expect((await server.scheduleRevocation(record.id, 90_000))?.revokesAt).toBe(40_000);
    expect(await server.revokeDue(39_999)).toEqual([]);
    expect(await server.revokeDue(40_000)).toEqual([record.id]);
    expect(await server.get(record.id)).toMatchObject({ status: 'revoked', revokedAt: 40_000, revokesAt: 40_000 });

    // Unknown: null. Revoked: left as it is, nothing scheduled, nothing announced.
    expect(await server.scheduleRevocation('key_nope', 1)).toBeNull();
    const changes = feed.changes.length;
    expect(await server.scheduleRevocation(record.id, 1)).toMatchObject({ status: 'revoked', revokesAt: 40_000 });
    expect(feed.changes).toHaveLength(changes);
    expect(await server.revokeDue(Number.MAX_SAFE_INTEGER)).toEqual([]);
  });

  it('adds revokes_at to a file written before it existed, filled from the rotations already scheduled', async () => {
    const { DatabaseSync } = await import('node:sqlite');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(join(dir, 'sub'), { recursive: true });
    const old = new DatabaseSync(path);
    old.exec(`CREATE TABLE keys (
      id TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE, tenant TEXT NOT NULL, name TEXT NOT NULL, role TEXT NOT NULL,
      permissions TEXT NOT NULL, grp TEXT, user_name TEXT, client TEXT, status TEXT NOT NULL, prefix TEXT NOT NULL,
      created_at INTEGER NOT NULL, expires_at INTEGER, revoked_at INTEGER, last_used_at INTEGER) STRICT;
      CREATE TABLE scheduled_revocations (key_id TEXT PRIMARY KEY, at INTEGER NOT NULL) STRICT;`);
    const rotating = newRecord();
    const plain = newRecord();
    for (const { record: r, hash } of [rotating, plain]) {
      old.prepare('INSERT INTO keys VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)').run(
        r.id, hash, r.tenant, r.name, r.role, JSON.stringify(r.permissions), r.group, r.user, r.client, r.status, r.prefix, r.createdAt, r.expiresAt, null, null,
      );
    }
    old.prepare('INSERT INTO scheduled_revocations VALUES (?, ?)').run(rotating.record.id, 77_000);
    old.close();

    // Opened twice: the first adds the column, the second finds it there.
    const [a, b] = [openStore(), openStore()];
    expect(await a.findByHash(rotating.hash)).toEqual({ ...rotating.record, revokesAt: 77_000 });
    expect(await b.get(plain.record.id)).toEqual(plain.record);
    expect(await b.revokeDue(77_000)).toEqual([rotating.record.id]);
  });

  it('answers ping while open and fails once closed', async () => {
    const store = openStore();
    await expect(store.ping()).resolves.toBeUndefined();
    await store.close();
    await expect(store.ping()).rejects.toThrow();
    await expect(store.findByHash('x')).rejects.toThrow();
    await store.close(); // closing twice is harmless
  });
});

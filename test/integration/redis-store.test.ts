/**
 * The Redis store against a real redis-server: the KeyStore semantics the embedded store
 * has, the documented key layout, atomic writes, the revocation message, the lifecycle
 * operations, and how it fails when Redis is not there.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { parseConfig } from '../../src/config/load.ts';
import type { KeyRecord } from '../../src/keys/record.ts';
import { DuplicateKeyError, StoreUnavailableError, type RevocationEvent } from '../../src/store/key-store.ts';
import { RedisStore } from '../../src/store/redis/store.ts';
import { startRedis, type RedisWithClient } from '../helpers/redis-fixture.ts';
import { freePort, startRedisServer, waitFor, type RedisServer } from '../helpers/redis-server.ts';

function redisConfig(url: string, extra: Record<string, unknown> = {}) {
  return parseConfig({ store: { kind: 'redis', redis: { url, commandTimeoutMs: 300, ...extra } } }, 'test').store.redis;
}

let seq = 0;
function record(overrides: Partial<KeyRecord> = {}): { record: KeyRecord; hash: string } {
  seq++;
  return {
    hash: `hash${seq}_${Math.random().toString(36).slice(2)}`,
    record: {
      id: `key_${seq.toString().padStart(4, '0')}${Math.random().toString(16).slice(2, 8)}`,
      tenant: 'acme',
      name: `key ${seq}`,
      role: 'api-user',
      permissions: ['read', 'write'],
      group: null,
      user: null,
      client: null,
      status: 'active',
      prefix: 'kg_acme_0123…',
      createdAt: 1_700_000_000_000 + seq,
      expiresAt: null,
      revokedAt: null,
      revokesAt: null,
      lastUsedAt: null, permissionsFrom: 'key', environment: 'live', rateLimits: [], quota: null,
      ...overrides,
    },
  };
}

/** The server and a client on it as the default user. */
let server: RedisWithClient, redis: RedisServer, raw: Redis;
let store: RedisStore;

beforeAll(async () => {
  server = await startRedis();
  ({ redis, raw } = server);
  store = await RedisStore.connect(redisConfig(redis.url));
});

afterAll(async () => {
  await store?.close();
  await server?.stop();
});

describe('records', () => {
  it('finds a record by hash and by id, with every field intact', async () => {
    const { record: r, hash } = record({ group: 'readers', permissions: [], user: 'alice', client: 'mcp', expiresAt: 1_900_000_000_000 });
    await store.create(r, hash);
    expect(await store.findByHash(hash)).toEqual(r);
    expect(await store.get(r.id)).toEqual(r);
    expect(await store.findByHash('no-such-hash')).toBeNull();
    expect(await store.get('key_missing')).toBeNull();
  });

  it('uses the documented key layout, and stores no key hash inside a record', async () => {
    const { record: r, hash } = record({ tenant: 'layout' });
    await store.create(r, hash);
    expect(await raw.type(`kg:hash:${hash}`)).toBe('hash');
    expect(await raw.get(`kg:id:${r.id}`)).toBe(hash);
    expect(await raw.zscore('kg:tenant:layout', r.id)).toBe(String(r.createdAt));
    expect(await raw.zscore('kg:keys', r.id)).toBe(String(r.createdAt));
    const fields = await raw.hgetall(`kg:hash:${hash}`);
    expect(Object.values(fields)).not.toContain(hash);
    expect(fields).toMatchObject({ id: r.id, tenant: 'layout', status: 'active', permissions: '["read","write"]' });
    expect(fields).not.toHaveProperty('expiresAt');
  });

  it('refuses a duplicate id or hash and writes nothing for it', async () => {
    const first = record();
    await store.create(first.record, first.hash);
    const sameHash = record();
    await expect(store.create(sameHash.record, first.hash)).rejects.toBeInstanceOf(DuplicateKeyError);
    expect(await raw.exists(`kg:id:${sameHash.record.id}`)).toBe(0);
    expect(await raw.zscore('kg:keys', sameHash.record.id)).toBeNull();
    const sameId = record({ id: first.record.id });
    await expect(store.create(sameId.record, sameId.hash)).rejects.toBeInstanceOf(DuplicateKeyError);
    expect(await raw.exists(`kg:hash:${sameId.hash}`)).toBe(0);
    expect(await store.findByHash(first.hash)).toEqual(first.record);
    // The same create again (a command resent after a lost reply) is not a conflict.
    await store.create(first.record, first.hash);
  });

  it('lists newest first, per tenant, with or without revoked keys', async () => {
    const a = record({ tenant: 'listing', createdAt: 1000 });
    const b = record({ tenant: 'listing', createdAt: 3000 });
    const c = record({ tenant: 'listing', createdAt: 2000 });
    const other = record({ tenant: 'elsewhere' });
    for (const x of [a, b, c, other]) await store.create(x.record, x.hash);
    await store.revoke(c.record.id, 5000);
    expect((await store.list({ tenant: 'listing' })).map((r) => r.id)).toEqual([b.record.id, a.record.id]);
    expect((await store.list({ tenant: 'listing', includeRevoked: true })).map((r) => r.id)).toEqual([b.record.id, c.record.id, a.record.id]);
    const all = await store.list({ includeRevoked: true });
    expect(all.map((r) => r.id)).toContain(other.record.id);
    expect(all.map((r) => r.createdAt)).toEqual([...all.map((r) => r.createdAt)].sort((x, y) => y - x));
  });
});

describe('revocation', () => {
  it('revokes once, permanently, and publishes {ids, hashes, at} on the channel', async () => {
    const sub = new Redis(redis.url);
    const messages: string[] = [];
    sub.on('message', (_channel, message) => messages.push(message));
    await sub.subscribe('kg:revocations');
    try {
      const { record: r, hash } = record();
      await store.create(r, hash);
      const before = Date.now();
      const after = await store.revoke(r.id, 42);
      expect(after).toMatchObject({ id: r.id, status: 'revoked', revokedAt: 42 });
      expect((await store.findByHash(hash))?.status).toBe('revoked');
      await waitFor('the revocation message', () => messages.length === 1);
      const event = JSON.parse(messages[0]!) as RevocationEvent;
      // Numbered and logged in the revocation log in the same script (docs/redis.md, "Revocation log").
      expect(event).toEqual({ ids: [r.id], hashes: [hash], at: expect.any(Number), us: expect.any(Number), seq: expect.any(Number), id: expect.any(String) });
      const [logged] = (await raw.xrevrange('kg:revocations:log', '+', '-', 'COUNT', 1)) as [string, string[]][];
      expect(logged![0]).toBe((event as unknown as { id: string }).id);
      expect(logged![1]).toEqual(['n', String((event as unknown as { seq: number }).seq), 'e', expect.stringContaining(r.id)]);
      expect(Number(await raw.get('kg:revocations:seq'))).toBe((event as unknown as { seq: number }).seq);
      expect(event.at).toBeGreaterThanOrEqual(before - 1000);
      expect(event.at).toBeLessThanOrEqual(Date.now() + 1000);
      // Already revoked: left as it was, nothing published.
      expect(await store.revoke(r.id, 99)).toMatchObject({ status: 'revoked', revokedAt: 42 });
      expect(await store.revoke('key_unknown', 1)).toBeNull();
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(messages).toHaveLength(1);
    } finally {
      sub.disconnect();
    }
  });

  it('revokes every active key of a tenant in one message, and only those', async () => {
    const sub = new Redis(redis.url);
    const messages: RevocationEvent[] = [];
    sub.on('message', (_channel, message) => messages.push(JSON.parse(message) as RevocationEvent));
    await sub.subscribe('kg:revocations');
    try {
      const keys = [record({ tenant: 'doomed' }), record({ tenant: 'doomed' }), record({ tenant: 'doomed', status: 'revoked', revokedAt: 1 })];
      const spared = record({ tenant: 'spared' });
      for (const k of [...keys, spared]) await store.create(k.record, k.hash);
      const ids = await store.revokeTenant('doomed', 777);
      expect(ids.sort()).toEqual([keys[0]!.record.id, keys[1]!.record.id].sort());
      await waitFor('the revoke-all message', () => messages.length === 1);
      expect(messages[0]!.ids.sort()).toEqual(ids);
      expect(messages[0]!.hashes.sort()).toEqual([keys[0]!.hash, keys[1]!.hash].sort());
      expect((await store.get(keys[2]!.record.id))?.revokedAt).toBe(1);
      expect((await store.get(spared.record.id))?.status).toBe('active');
      expect(await store.revokeTenant('doomed', 778)).toEqual([]);
      expect(await store.revokeTenant('nobody', 778)).toEqual([]);
    } finally {
      sub.disconnect();
    }
  });

  it('applies its own revocations to its feed at once, and the echo from the channel only once', async () => {
    const subscriber = await RedisStore.connect(redisConfig(redis.url));
    const events: RevocationEvent[] = [];
    let resyncs = 0;
    await subscriber.subscribe({ revoked: (e) => events.push(e), changed: () => {}, resync: () => resyncs++, directoryChanged: () => {}, directoryReset: () => {} });
    try {
      expect(subscriber.feedHealthy).toBe(true);
      expect(resyncs).toBe(1);
      const { record: r, hash } = record();
      await subscriber.create(r, hash);
      await subscriber.revoke(r.id, Date.now());
      // Applied before revoke() returned, not waiting for the channel.
      expect(events).toHaveLength(1);
      expect(events[0]).toMatchObject({ ids: [r.id], hashes: [hash] });
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(events).toHaveLength(1);
      // A revocation by another process arrives over the channel.
      const other = record();
      await store.create(other.record, other.hash);
      await store.revoke(other.record.id, Date.now());
      await waitFor('the pushed revocation', () => events.length === 2);
      expect(events[1]).toMatchObject({ ids: [other.record.id], hashes: [other.hash] });
      // Something unreadable on the channel: the cache is flushed.
      await raw.publish('kg:revocations', 'not json');
      await waitFor('a resync', () => resyncs === 2);
    } finally {
      await subscriber.close();
    }
    expect(subscriber.feedHealthy).toBe(false);
  });
});

describe('the subscriber connection', () => {
  it('is unhealthy from the moment it drops; it re-subscribes, catches up from the log (no flush), then reports healthy', async () => {
    const subscriber = await RedisStore.connect(redisConfig(redis.url));
    const resyncs: { healthyAtResync: boolean; subscribers: Promise<unknown> }[] = [];
    await subscriber.subscribe({
      revoked: () => {},
      changed: () => {},
      resync: () => resyncs.push({ healthyAtResync: subscriber.feedHealthy, subscribers: raw.call('PUBSUB', 'NUMSUB', 'kg:revocations') }),
      directoryChanged: () => {},
      directoryReset: () => {},
    });
    try {
      expect(subscriber.feedHealthy).toBe(true);
      const killed = Number(await raw.call('CLIENT', 'KILL', 'TYPE', 'pubsub'));
      expect(killed).toBeGreaterThanOrEqual(1);
      await waitFor('the drop to be noticed', () => !subscriber.feedHealthy, 1000, 1);
      await waitFor('the feed to come back', () => subscriber.feedHealthy, 3000, 1);
      // Healthy again only once subscribed: the log covers the gap, so the cache is kept.
      expect(await raw.call('PUBSUB', 'NUMSUB', 'kg:revocations')).toEqual(['kg:revocations', 1]);
      // One resync: the first subscription (whatever was cached before the feed existed).
      expect(resyncs).toHaveLength(1);
      for (const r of resyncs) {
        expect(r.healthyAtResync).toBe(false);
        expect(await r.subscribers).toEqual(['kg:revocations', 1]);
      }
    } finally {
      await subscriber.close();
    }
  });
});

describe('key prefix', () => {
  it('keeps everything under a configured prefix, including the channel', async () => {
    const custom = await RedisStore.connect(redisConfig(redis.url, { keyPrefix: 'app1:kg:' }));
    try {
      const { record: r, hash } = record();
      await custom.create(r, hash);
      expect(await raw.exists(`app1:kg:hash:${hash}`, `app1:kg:id:${r.id}`)).toBe(2);
      expect(await store.findByHash(hash)).toBeNull();
      expect(custom.layout).toMatchObject({ mode: 'standalone', prefix: 'app1:kg:', channel: 'app1:kg:revocations' });
    } finally {
      await custom.close();
    }
  });
});

describe('lifecycle operations', () => {
  it('renames, and records last use only forward in time', async () => {
    const { record: r } = record();
    await store.create(r, `h-${r.id}`);
    expect(await store.rename(r.id, 'renamed')).toMatchObject({ id: r.id, name: 'renamed' });
    expect(await store.rename('key_nope', 'x')).toBeNull();
    await store.touch(new Map([[r.id, 5000], ['key_nope', 1]]));
    await store.touch(new Map([[r.id, 4000]]));
    expect((await store.get(r.id))?.lastUsedAt).toBe(5000);
    expect(await raw.exists('kg:hash:undefined', 'kg:id:key_nope')).toBe(0);
  });

  it('pages the audit log newest first, per tenant', async () => {
    for (let i = 0; i < 5; i++) {
      await store.appendAudit({ id: `evt_${i}`, at: i, actor: 'cli', action: 'key.create', tenant: i % 2 ? 'odd' : 'even', target: null, detail: { i } });
    }
    const first = await store.listAudit({ limit: 2 });
    expect(first.entries.map((e) => e.id)).toEqual(['evt_4', 'evt_3']);
    const second = await store.listAudit({ limit: 2, before: first.next! });
    expect(second.entries.map((e) => e.id)).toEqual(['evt_2', 'evt_1']);
    const odd = await store.listAudit({ limit: 10, tenant: 'odd' });
    expect(odd.entries.map((e) => e.id)).toEqual(['evt_3', 'evt_1']);
    expect(odd.next).toBeNull();
    expect(odd.entries[0]).toEqual({ id: 'evt_3', at: 3, actor: 'cli', action: 'key.create', tenant: 'odd', target: null, detail: { i: 3 } });
  });

  it('revokes a scheduled key exactly once however many instances sweep', async () => {
    const { record: r, hash } = record();
    await store.create(r, hash);
    await store.scheduleRevocation(r.id, 10_000);
    await store.scheduleRevocation(r.id, 20_000); // a later time does not postpone it
    const second = await RedisStore.connect(redisConfig(redis.url));
    try {
      expect(await store.revokeDue(9_999)).toEqual([]);
      const results = await Promise.all([store.revokeDue(10_000), second.revokeDue(10_000), store.revokeDue(10_001)]);
      expect(results.flat()).toEqual([r.id]);
      expect((await store.get(r.id))?.status).toBe('revoked');
    } finally {
      await second.close();
    }
  });

  it("a rotation's schedule is on the record, told to this process at once and to every subscriber as a change, not a revocation", async () => {
    const { record: r, hash } = record();
    await store.create(r, hash);
    const subscriber = await RedisStore.connect(redisConfig(redis.url));
    const changes: string[][] = [];
    const revocations: RevocationEvent[] = [];
    const feed = { revoked: (e: RevocationEvent) => revocations.push(e), changed: (h: readonly string[]) => changes.push([...h]), resync: () => {}, directoryChanged: () => {}, directoryReset: () => {} };
    await subscriber.subscribe(feed);
    const messages: string[] = [];
    const listener = new Redis(redis.url);
    try {
      await listener.subscribe('kg:revocations');
      listener.on('message', (_channel: string, message: string) => messages.push(message));
      // Through the subscribing instance: applied before the call returns.
      expect(await subscriber.scheduleRevocation(r.id, 30_000)).toEqual({ ...r, revokesAt: 30_000 });
      expect(changes).toEqual([[hash]]);
      expect(await raw.hget(`kg:hash:${hash}`, 'revokesAt')).toBe('30000');
      expect(Number(await raw.zscore('kg:scheduled', r.id))).toBe(30_000);
      // Through another instance: over the channel. An earlier time wins, a later one does not postpone it.
      expect((await store.scheduleRevocation(r.id, 25_000))?.revokesAt).toBe(25_000);
      // its own (its echo is recognised by its log number and not applied twice), then the other's
      await waitFor('the pushed change', () => changes.length === 2);
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(changes).toEqual([[hash], [hash]]);
      expect((await store.scheduleRevocation(r.id, 99_000))?.revokesAt).toBe(25_000);
      expect(Number(await raw.zscore('kg:scheduled', r.id))).toBe(25_000);
      await waitFor('three messages', () => messages.length === 3);
      expect(messages.map((m) => JSON.parse(m))).toEqual(Array(3).fill({ changed: [hash], seq: expect.any(Number), id: expect.any(String) }));
      expect(revocations).toEqual([]);
      // Unknown: null. Revoked: unchanged, and nothing published.
      expect(await store.scheduleRevocation('key_unknown', 1)).toBeNull();
      expect(await store.revokeDue(25_000)).toEqual([r.id]);
      expect(await store.scheduleRevocation(r.id, 1)).toMatchObject({ status: 'revoked', revokesAt: 25_000 });
      await waitFor('the revocation', () => messages.length === 4);
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(messages).toHaveLength(4);
      expect(JSON.parse(messages[3]!)).toMatchObject({ ids: [r.id], hashes: [hash] });
    } finally {
      listener.disconnect();
      await subscriber.close();
    }
  });

  it('lists active keys expiring in a window, and claims each reminder once', async () => {
    const soon = record({ tenant: 'exp', expiresAt: 50_000 });
    const later = record({ tenant: 'exp', expiresAt: 90_000 });
    const revoked = record({ tenant: 'exp', expiresAt: 60_000 });
    for (const k of [soon, later, revoked]) await store.create(k.record, k.hash);
    await store.revoke(revoked.record.id, 1);
    expect((await store.listExpiring(0, 80_000)).map((r) => r.id)).toEqual([soon.record.id]);
    const claims = await Promise.all([store.claimReminder(soon.record.id, '7d'), store.claimReminder(soon.record.id, '7d')]);
    expect(claims.sort()).toEqual([false, true]);
    expect(await store.claimReminder(soon.record.id, 'today')).toBe(true);
  });
});

describe('when Redis is not there', () => {
  it('fails to connect with a clear message naming the server, without the password', async () => {
    const port = await freePort();
    const started = Date.now();
    const error = await RedisStore.connect(redisConfig(`redis://:s3cret-pass@127.0.0.1:${port}`)).then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(StoreUnavailableError);
    expect((error as Error).message).toMatch(new RegExp(`cannot reach Redis at redis://127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`));
    expect((error as Error).message).not.toContain('s3cret');
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('with allowUnavailable, starts degraded and recovers when Redis comes up', async () => {
    const port = await freePort();
    const degraded = await RedisStore.connect(redisConfig(`redis://127.0.0.1:${port}`), { allowUnavailable: true });
    let late: RedisServer | null = null;
    try {
      const started = Date.now();
      await expect(degraded.findByHash('x')).rejects.toBeInstanceOf(StoreUnavailableError);
      await expect(degraded.ping()).rejects.toThrow(/not connected/);
      expect(Date.now() - started).toBeLessThan(200);
      late = await startRedisServer({ port });
      await waitFor('the store to reconnect', () => degraded.ping().then(() => true, () => false), 5000, 50);
      expect(await degraded.findByHash('x')).toBeNull();
    } finally {
      await degraded.close();
      await late?.stop();
    }
  });

  it('turns a frozen server into StoreUnavailableError within the command timeout, naming no key', async () => {
    const frozen = await startRedisServer();
    const s = await RedisStore.connect(redisConfig(frozen.url));
    try {
      frozen.pause();
      const started = Date.now();
      const error = await s.findByHash('secret-looking-hash').then(() => null, (e: unknown) => e);
      const elapsed = Date.now() - started;
      expect(error).toBeInstanceOf(StoreUnavailableError);
      expect((error as Error).message).toBe('Redis did not answer within 300 ms');
      expect(elapsed).toBeGreaterThanOrEqual(250);
      expect(elapsed).toBeLessThan(800);
    } finally {
      frozen.resume();
      await s.close();
      await frozen.stop();
    }
  });
});

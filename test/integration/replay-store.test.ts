/**
 * ReplayStore.claimOnce on both stores: one winner per id among every instance sharing the
 * store, until the claim expires; on Redis a real redis-server (SET NX PX, the documented
 * key name), on the embedded store two stores on one SQLite file (what two processes do).
 * A store that cannot answer rejects: the caller refuses the delivery.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.ts';
import { EmbeddedStore } from '../../src/store/embedded/store.ts';
import { StoreUnavailableError } from '../../src/store/key-store.ts';
import { RedisStore } from '../../src/store/redis/store.ts';
import type { ReplayStore } from '../../src/store/replay-store.ts';
import { freePort, startRedisServer, type RedisServer } from '../helpers/redis-server.ts';

const redisConfig = (url: string) => parseConfig({ store: { kind: 'redis', redis: { url, commandTimeoutMs: 300 } } }, 'test').store.redis;
let unique = 0;
const id = () => `claim-${process.pid}-${Date.now()}-${unique++}`;

/** The same contract, whichever store: `a` and `b` are two instances sharing one store. */
function contract(name: string, pair: () => { a: ReplayStore; b: ReplayStore }) {
  describe(name, () => {
    it('one claim per id, across instances, until it expires; then the id can be claimed again', async () => {
      const { a, b } = pair();
      const x = id();
      // Generous: the claims before the sleep must all land inside the first second, even on a loaded machine.
      expect(await a.claimOnce(x, 1000)).toBe(true);
      expect(await a.claimOnce(x, 1000)).toBe(false);
      expect(await b.claimOnce(x, 1000)).toBe(false);
      expect(await b.claimOnce(id(), 1000)).toBe(true);
      await sleep(1100);
      expect(await b.claimOnce(x, 10_000)).toBe(true);
      expect(await a.claimOnce(x, 10_000)).toBe(false);
    });

    it('a released claim can be made again at once, by either instance; releasing an unknown id changes nothing', async () => {
      const { a, b } = pair();
      const x = id();
      expect(await a.claimOnce(x, 60_000)).toBe(true);
      await a.releaseClaim(x);
      expect(await b.claimOnce(x, 60_000)).toBe(true);
      expect(await a.claimOnce(x, 60_000)).toBe(false);
      await b.releaseClaim(id());
      expect(await a.claimOnce(x, 60_000)).toBe(false);
    });

    it('exactly one winner among many concurrent claims from both instances', async () => {
      const { a, b } = pair();
      const x = id();
      const results = await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 ? a : b).claimOnce(x, 10_000)));
      expect(results.filter(Boolean)).toHaveLength(1);
    });
  });
}

let redis: RedisServer;
let redisA: RedisStore;
let redisB: RedisStore;
let dir: string;
let fileA: EmbeddedStore;
let fileB: EmbeddedStore;

beforeAll(async () => {
  redis = await startRedisServer();
  [redisA, redisB] = await Promise.all([RedisStore.connect(redisConfig(redis.url)), RedisStore.connect(redisConfig(redis.url))]);
  dir = mkdtempSync(join(tmpdir(), 'keygate-replay-'));
  fileA = new EmbeddedStore({ path: join(dir, 'keygate.db') });
  fileB = new EmbeddedStore({ path: join(dir, 'keygate.db') });
});

afterAll(async () => {
  await Promise.all([redisA?.close(), redisB?.close(), fileA?.close(), fileB?.close()]);
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

contract('Redis store', () => ({ a: redisA, b: redisB }));
contract('embedded store (two stores on one file)', () => ({ a: fileA, b: fileB }));

describe('Redis layout and failure', () => {
  it('is one key <prefix>replay:<id> with a TTL', async () => {
    const raw = new Redis(redis.url);
    try {
      const x = id();
      await redisA.claimOnce(x, 60_000);
      const ttl = await raw.pttl(`kg:replay:${x}`);
      expect(ttl).toBeGreaterThan(50_000);
      expect(ttl).toBeLessThanOrEqual(60_000);
    } finally {
      raw.disconnect();
    }
  });

  it('rejects with StoreUnavailableError when Redis is not there', async () => {
    const gone = await RedisStore.connect(redisConfig(`redis://127.0.0.1:${await freePort()}`), { allowUnavailable: true });
    try {
      await expect(gone.claimOnce(id(), 1000)).rejects.toBeInstanceOf(StoreUnavailableError);
    } finally {
      await gone.close();
    }
  });
});

describe('embedded store pruning', () => {
  it('drops expired claims (at most once a minute, by the next claim)', async () => {
    const path = join(dir, 'prune.db');
    const store = new EmbeddedStore({ path });
    try {
      for (let i = 0; i < 5; i++) await store.claimOnce(`old-${i}`, 1);
      await sleep(10);
      // The first claim of this store pruned already (nothing was due); a fresh store prunes on its first claim.
      const other = new EmbeddedStore({ path });
      await other.claimOnce('fresh', 60_000);
      await other.close();
      const { DatabaseSync } = await import('node:sqlite');
      const db = new DatabaseSync(path);
      const ids = (db.prepare('SELECT id FROM replay_claims ORDER BY id').all() as { id: string }[]).map((r) => r.id);
      db.close();
      expect(ids).toEqual(['fresh']);
    } finally {
      await store.close();
    }
  });
});

/**
 * Bench keys written straight into keygate's store (embedded SQLite or Redis) with the
 * same pepper keygate uses, before keygate starts: no admin API round trips, so 20k keys
 * take seconds. Also the invalid keys of the flood scenario.
 */
import { displayPrefix, generateKey } from '../../src/keys/format.ts';
import { createKeyHasher } from '../../src/keys/hash.ts';
import { newKeyId } from '../../src/keys/ids.ts';
import type { KeyRecord } from '../../src/keys/record.ts';
import { EmbeddedStore } from '../../src/store/embedded/store.ts';
import { RedisStore } from '../../src/store/redis/store.ts';
import { parseConfig } from '../../src/config/load.ts';
import { typo } from '../../test/helpers/typo.ts';

export const KEY_PREFIX = 'kg';
export const TENANT = 'bench';

export type StoreTarget = { kind: 'embedded'; path: string } | { kind: 'redis'; url: string };

interface Creator {
  create(record: KeyRecord, hash: string): Promise<void>;
  close(): Promise<void>;
}

async function open(target: StoreTarget): Promise<Creator> {
  if (target.kind === 'embedded') return new EmbeddedStore({ path: target.path, pollMs: 60_000 });
  const config = parseConfig({ store: { kind: 'redis', redis: { url: target.url } } }, 'bench');
  return RedisStore.connect(config.store.redis);
}

/** Creates `count` active keys in tenant `bench`, in batches of `batch` concurrent creates. */
export async function createKeys(target: StoreTarget, pepper: string, count: number, batch = 500): Promise<string[]> {
  const store = await open(target);
  const hash = createKeyHasher(pepper);
  const keys: string[] = [];
  try {
    const now = Date.now();
    for (let start = 0; start < count; start += batch) {
      const jobs: Promise<void>[] = [];
      for (let i = start; i < Math.min(count, start + batch); i++) {
        const key = generateKey(KEY_PREFIX, TENANT);
        keys.push(key);
        const record: KeyRecord = {
          id: newKeyId(),
          tenant: TENANT,
          name: `bench-${i}`,
          role: 'api-user',
          permissions: [],
          group: null,
          user: null,
          client: null,
          status: 'active',
          prefix: displayPrefix(key),
          createdAt: now,
          expiresAt: null,
          revokedAt: null,
          revokesAt: null,
          lastUsedAt: null, permissionsFrom: 'key', environment: 'live', rateLimits: [], quota: null,
        };
        jobs.push(store.create(record, hash(key)));
      }
      await Promise.all(jobs);
    }
  } finally {
    await store.close();
  }
  return keys;
}

/** Well-formed keys whose checksum is wrong: rejected before any cache or store lookup. */
export function badChecksumKeys(count: number): string[] {
  return Array.from({ length: count }, () => typo(generateKey(KEY_PREFIX, TENANT)));
}

/** Keys with a valid checksum that were never created: a store lookup each (then the negative cache). */
export function unknownKeys(count: number): string[] {
  return Array.from({ length: count }, () => generateKey(KEY_PREFIX, TENANT));
}

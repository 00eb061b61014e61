import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { testDirectory } from '../../helpers/directory.ts';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Identity } from '../../../src/auth/identity.ts';
import { Verifier, type VerifierOptions } from '../../../src/auth/verify.ts';
import { displayPrefix, generateKey } from '../../../src/keys/format.ts';
import type { KeyRecord } from '../../../src/keys/record.ts';
import { KeyService } from '../../../src/keys/service.ts';
import { cliKeys, type TestKeys } from '../../helpers/keygate.ts';
import { EmbeddedStore, type EmbeddedStoreOptions } from '../../../src/store/embedded/store.ts';
import { typo } from '../../helpers/typo.ts';
import { testHasher } from '../../helpers/pepper.ts';

const hasher = testHasher;
const config = { keys: { prefix: 'kg' }, tenants: { system: 'system' }, permissionGroups: { readers: ['read'], writers: ['read', 'write'] } };

/** A real EmbeddedStore that counts lookups and can hold them (after reading) until released. */
class CountingStore extends EmbeddedStore {
  calls = 0;
  #gate: Promise<void> | null = null;
  #open: (() => void) | null = null;
  broken = false;

  constructor(options: EmbeddedStoreOptions) {
    super(options);
  }

  /** Lookups started from now on read the row, then wait for release(). */
  hold(): void {
    this.#gate = new Promise((resolve) => (this.#open = resolve));
  }

  release(): void {
    this.#open?.();
    this.#gate = null;
  }

  override async findByHash(hash: string): Promise<KeyRecord | null> {
    this.calls++;
    if (this.broken) throw new Error('store down');
    const gate = this.#gate;
    const record = await super.findByHash(hash);
    if (gate) await gate;
    return record;
  }
}

let dir: string;
let store: CountingStore;
let keys: TestKeys;
let clock: number;

function verifier(options: Partial<VerifierOptions> = {}): Verifier {
  const v = new Verifier({
    store, hasher, prefix: 'kg', directory: testDirectory(config.permissionGroups),
    max: 100, maxAgeMs: 60_000, negativeMax: 100, negativeMaxAgeMs: 60_000,
    now: () => clock,
    ...options,
  });
  return v;
}

function isIdentity(result: unknown): result is Identity {
  return typeof result === 'object' && result !== null && 'record' in result;
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'keygate-verify-'));
  store = new CountingStore({ path: join(dir, 'k.db'), pollMs: 10 });
  clock = Date.now();
  keys = cliKeys(new KeyService(store, hasher, config, null, () => clock));
});

afterEach(async () => {
  store.release();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('Verifier', () => {
  it('refuses malformed and mistyped keys without touching the store', async () => {
    const v = verifier();
    const { key } = await keys.create({ tenant: 'acme', name: 'k' });
    const mistyped = typo(key);
    for (const bad of ['', 'kg_acme_', mistyped, key.toUpperCase(), `${key}0`, key.replace('kg_', 'sk_'), `Bearer ${key}`]) {
      expect(v.verify(bad), bad).toBe('invalid_key');
    }
    expect(store.calls).toBe(0);
    expect(v.stats.storeCalls).toBe(0);
  });

  it('answers a cached key synchronously, without a store call', async () => {
    const v = verifier();
    const { key, record } = await keys.create({ tenant: 'acme', name: 'k', permissions: ['read', 'write'] });
    const first = await v.verify(key);
    expect(isIdentity(first) && first.record).toEqual(record);
    expect(store.calls).toBe(1);
    for (let i = 0; i < 50; i++) {
      const again = v.verify(key);
      expect(again).not.toBeInstanceOf(Promise);
      expect(isIdentity(again) && again.permissionsHeader).toBe('read,write');
    }
    expect(store.calls).toBe(1);
    expect(v.stats).toMatchObject({ hits: 50, misses: 1, storeCalls: 1 });
  });

  it('computes the HMAC of a valid key once, of an unknown key every time, and still honours a revocation', async () => {
    let hmacs = 0;
    const counted = (key: string) => (hmacs++, hasher(key));
    const v = verifier({ hasher: counted });
    await store.subscribe(v);
    const { key, record } = await keys.create({ tenant: 'acme', name: 'k' });
    expect(isIdentity(await v.verify(key))).toBe(true);
    for (let i = 0; i < 20; i++) expect(isIdentity(v.verify(key))).toBe(true);
    expect(hmacs).toBe(1);
    const unknown = generateKey('kg', 'acme');
    for (let i = 0; i < 3; i++) expect(await v.verify(unknown)).toBe('invalid_key');
    expect(hmacs).toBe(4);
    // The remembered HMAC leads to the cache entry, which the revocation removed.
    await keys.revoke(record.id);
    expect(await v.verify(key)).toBe('key_revoked');
    expect(hmacs).toBe(4);
  });

  it('shares ONE store call between concurrent misses of a key', async () => {
    const v = verifier();
    const { key, record } = await keys.create({ tenant: 'acme', name: 'k' });
    store.hold();
    const pending = Array.from({ length: 25 }, () => v.verify(key));
    expect(pending.every((p) => p instanceof Promise)).toBe(true);
    await sleep(5);
    expect(store.calls).toBe(1);
    store.release();
    const results = await Promise.all(pending);
    for (const r of results) expect(isIdentity(r) && r.record.id).toBe(record.id);
    expect(store.calls).toBe(1);
    // And afterwards it is cached.
    expect(v.verify(key)).not.toBeInstanceOf(Promise);
    expect(store.calls).toBe(1);
  });

  it('shares one store call between concurrent misses of an unknown key, then remembers it', async () => {
    const v = verifier();
    const unknown = generateKey('kg', 'acme');
    store.hold();
    const pending = Array.from({ length: 10 }, () => v.verify(unknown));
    store.release();
    expect(await Promise.all(pending)).toEqual(Array(10).fill('invalid_key'));
    expect(store.calls).toBe(1);
    expect(v.verify(unknown)).toBe('invalid_key');
    expect(store.calls).toBe(1);
  });

  it('does not share lookups between different keys', async () => {
    const v = verifier();
    const a = await keys.create({ tenant: 'acme', name: 'a' });
    const b = await keys.create({ tenant: 'beta', name: 'b' });
    const [ra, rb] = await Promise.all([v.verify(a.key), v.verify(b.key)]);
    expect(isIdentity(ra) && ra.record.tenant).toBe('acme');
    expect(isIdentity(rb) && rb.record.tenant).toBe('beta');
    expect(store.calls).toBe(2);
  });

  it('bounds the negative cache: the oldest unknown key is forgotten first', async () => {
    const v = verifier({ negativeMax: 2 });
    const [u1, u2, u3] = [generateKey('kg', 'x'), generateKey('kg', 'x'), generateKey('kg', 'x')];
    for (const u of [u1, u2, u3]) expect(await v.verify(u!)).toBe('invalid_key');
    expect(store.calls).toBe(3);
    expect(v.verify(u3!)).toBe('invalid_key'); // still remembered
    expect(v.verify(u2!)).toBe('invalid_key');
    expect(store.calls).toBe(3);
    expect(await v.verify(u1!)).toBe('invalid_key'); // evicted: asks again
    expect(store.calls).toBe(4);
  });

  it('a flood of unknown keys does not push valid keys out of the cache', async () => {
    const v = verifier({ max: 5, negativeMax: 3 });
    const { key } = await keys.create({ tenant: 'acme', name: 'k' });
    await v.verify(key);
    for (let i = 0; i < 20; i++) await v.verify(generateKey('kg', 'x'));
    const calls = store.calls;
    expect(isIdentity(v.verify(key))).toBe(true);
    expect(store.calls).toBe(calls);
    expect(v.size).toBe(1);
  });

  it('forgets unknown keys after negativeMaxAgeMs, so a key created meanwhile starts working', async () => {
    const v = verifier({ negativeMaxAgeMs: 30 });
    const key = generateKey('kg', 'acme');
    expect(await v.verify(key)).toBe('invalid_key');
    const record: KeyRecord = {
      id: 'key_late', tenant: 'acme', name: 'late', role: 'api-user', permissions: [], group: null, user: null, client: null,
      status: 'active', prefix: displayPrefix(key), createdAt: clock, expiresAt: null, revokedAt: null, revokesAt: null, lastUsedAt: null, permissionsFrom: 'key', environment: 'live', rateLimits: [], quota: null,
    };
    await store.create(record, hasher(key));
    expect(v.verify(key)).toBe('invalid_key'); // still the remembered answer
    expect(store.calls).toBe(1);
    await sleep(60);
    const later = await v.verify(key);
    expect(isIdentity(later) && later.record.id).toBe('key_late');
    expect(store.calls).toBe(2);
  });

  it('asks the store again once a positive entry is older than maxAgeMs', async () => {
    const v = verifier({ maxAgeMs: 30 });
    const { key } = await keys.create({ tenant: 'acme', name: 'k' });
    await v.verify(key);
    v.verify(key);
    expect(store.calls).toBe(1);
    await sleep(60);
    expect(v.verify(key)).toBeInstanceOf(Promise);
    expect(store.calls).toBe(2);
  });

  it('checks expiry on cached entries', async () => {
    const v = verifier();
    const { key, record } = await keys.create({ tenant: 'acme', name: 'k', expires: '30d' });
    expect(isIdentity(await v.verify(key))).toBe(true);
    clock = record.expiresAt! - 1;
    expect(isIdentity(v.verify(key))).toBe(true);
    clock = record.expiresAt!;
    expect(v.verify(key)).toBe('key_expired');
    expect(store.calls).toBe(1);
  });

  it("a rotated key: the rotation drops its cached answer, and it is refused from revokesAt on, cached or not", async () => {
    const v = verifier();
    await store.subscribe(v);
    const { key, record } = await keys.create({ tenant: 'acme', name: 'k', expires: '30d' });
    expect(isIdentity(await v.verify(key))).toBe(true);
    expect(store.calls).toBe(1);
    await store.scheduleRevocation(record.id, clock + 1000);
    // Read again after the rotation, so the new revokesAt is what is cached.
    const reread = await v.verify(key);
    expect(isIdentity(reread) && reread.record.revokesAt).toBe(clock + 1000);
    expect(store.calls).toBe(2);
    clock += 999;
    expect(isIdentity(v.verify(key))).toBe(true);
    clock += 1;
    expect(v.verify(key)).toBe('key_revoked');
    expect(store.calls).toBe(2);
    // From the store too (another instance that never saw the key).
    expect(await verifier().verify(key)).toBe('key_revoked');
  });

  it('refuses an expired key from the store', async () => {
    const v = verifier();
    const { key } = await keys.create({ tenant: 'acme', name: 'k', expires: '1d' });
    clock += 2 * 86_400_000;
    expect(await v.verify(key)).toBe('key_expired');
  });

  it('refuses a revoked key from the store, and keeps refusing it from the cache', async () => {
    const v = verifier();
    const { key, record } = await keys.create({ tenant: 'acme', name: 'k' });
    await keys.revoke(record.id);
    expect(await v.verify(key)).toBe('key_revoked');
    expect(v.verify(key)).toBe('key_revoked');
    expect(store.calls).toBe(1);
  });

  it('drops a cached key on the store revocation event; the next request is refused', async () => {
    const v = verifier();
    await store.subscribe(v);
    const { key, record } = await keys.create({ tenant: 'acme', name: 'k' });
    expect(isIdentity(await v.verify(key))).toBe(true);
    expect(isIdentity(v.verify(key))).toBe(true);
    const applied: string[] = [];
    v.onRevocationApplied = (event) => applied.push(...event.ids);
    await keys.revoke(record.id);
    expect(applied).toContain(record.id);
    expect(v.size).toBe(0);
    expect(await v.verify(key)).toBe('key_revoked');
  });

  it('applies a revocation made by another process (a second store on the same file) within pollMs', async () => {
    const v = verifier();
    await store.subscribe(v);
    const { key, record } = await keys.create({ tenant: 'acme', name: 'k' });
    expect(isIdentity(await v.verify(key))).toBe(true);
    const cli = new EmbeddedStore({ path: join(dir, 'k.db') });
    await cliKeys(new KeyService(cli, hasher, config)).revoke(record.id);
    await cli.close();
    const start = Date.now();
    while (v.size > 0 && Date.now() - start < 2000) await sleep(2);
    expect(Date.now() - start).toBeLessThan(500);
    expect(await v.verify(key)).toBe('key_revoked');
  });

  it('does not cache a lookup that was in flight when a revocation arrived', async () => {
    const v = verifier();
    await store.subscribe(v);
    const { key, record } = await keys.create({ tenant: 'acme', name: 'k' });
    store.hold();
    const inflight = v.verify(key); // reads the row while still active, then waits
    await sleep(5);
    await keys.revoke(record.id);
    store.release();
    await inflight;
    expect(v.size).toBe(0);
    const next = v.verify(key);
    expect(next).toBeInstanceOf(Promise);
    expect(await next).toBe('key_revoked');
    expect(store.calls).toBe(2);
  });

  it('fails closed when the store cannot answer and nothing is cached', async () => {
    const errors: unknown[] = [];
    const v = verifier({ onStoreError: (e) => errors.push(e) });
    const { key } = await keys.create({ tenant: 'acme', name: 'k' });
    store.broken = true;
    expect(await v.verify(key)).toBe('auth_unavailable');
    expect(errors).toHaveLength(1);
    // Not remembered as unknown either: once the store is back, the key works.
    store.broken = false;
    expect(isIdentity(await v.verify(key))).toBe(true);
  });

  it('resolves groups at verification and re-resolves them after setGroups, from the cached record', async () => {
    const v = verifier();
    const { key } = await keys.create({ tenant: 'acme', name: 'k', group: 'writers' });
    const first = await v.verify(key);
    expect(isIdentity(first) && [...first.permissionSet]).toEqual(['read', 'write']);
    v.setGroups({ writers: ['write'] });
    const second = await v.verify(key);
    expect(isIdentity(second) && second.permissionsHeader).toBe('write');
    // The record did not change, only the group: no second store lookup.
    expect(store.calls).toBe(1);
  });

  it('flush and resync forget everything, positive and negative', async () => {
    const v = verifier();
    const { key } = await keys.create({ tenant: 'acme', name: 'k' });
    const unknown = generateKey('kg', 'acme');
    await v.verify(key);
    await v.verify(unknown);
    v.resync();
    expect(v.size).toBe(0);
    expect(v.verify(key)).toBeInstanceOf(Promise);
    expect(v.verify(unknown)).toBeInstanceOf(Promise);
  });
});

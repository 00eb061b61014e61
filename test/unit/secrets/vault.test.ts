/**
 * The vault: decrypt on first use, answer synchronously from memory afterwards, forget on a
 * change notice or resync, ask the store while the push feed is down, fail closed.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { encryptSecret, loadKeyring, type Envelope } from '../../../src/secrets/crypto.ts';
import type { SecretFeed, SecretMeta, SecretStore, StoredSecret } from '../../../src/secrets/secret-store.ts';
import { renderTemplate, Vault, type HeaderResult, type SecretSpec } from '../../../src/secrets/vault.ts';
import { StoreUnavailableError } from '../../../src/store/key-store.ts';
import { captureStream } from '../../helpers/keygate.ts';
import { createLogger } from '../../../src/observability/logger.ts';

const keyring = loadKeyring({ KEYGATE_MASTER_KEY: randomBytes(32).toString('base64') })!;
const VALUE = 'tok-vault-9f8e7d6c5b4a';

/** A store held in a Map, counting getSecret calls; `down` makes every call fail. */
class FakeStore implements SecretStore {
  readonly secrets = new Map<string, StoredSecret>();
  gets = 0;
  down = false;
  feedHealthy = true;
  touched: Map<string, number>[] = [];
  put(id: string, value: string, envelope?: Envelope): void {
    this.secrets.set(id, { id, name: id, createdAt: 1, lastUsedAt: null, keyVersion: keyring.current.version, envelope: envelope ?? encryptSecret(keyring, id, value) });
  }
  async getSecret(id: string): Promise<StoredSecret | null> {
    this.gets++;
    await new Promise((resolve) => setTimeout(resolve, 5));
    if (this.down) throw new StoreUnavailableError('Redis at redis://x is not connected');
    return this.secrets.get(id) ?? null;
  }
  async touchSecrets(batch: ReadonlyMap<string, number>): Promise<void> {
    this.touched.push(new Map(batch));
  }
  async addSecret(): Promise<void> {}
  async listSecrets(): Promise<SecretMeta[]> {
    return [];
  }
  async renameSecret(): Promise<SecretMeta | null> {
    return null;
  }
  async moveSecret(): Promise<SecretMeta | null> {
    return null;
  }
  async replaceEnvelope(): Promise<boolean> {
    return false;
  }
  async removeSecret(): Promise<SecretMeta | null> {
    return null;
  }
  subscribeSecrets(_feed: SecretFeed): void {}
}

function setup(options: { ttlMs?: number; withKey?: boolean } = {}) {
  const store = new FakeStore();
  const logs = captureStream();
  let now = 1_000_000;
  const vault = new Vault({ store, keyring: options.withKey === false ? null : keyring, logger: createLogger({ level: 'info', destination: logs.stream }), ttlMs: options.ttlMs ?? 30_000, now: () => now });
  return { store, vault, logs, advance: (ms: number) => (now += ms) };
}

const spec: SecretSpec = { id: 'openai', header: 'authorization', template: 'Bearer {value}' };

async function resolve(result: HeaderResult | Promise<HeaderResult>): Promise<HeaderResult> {
  return result;
}

describe('Vault', () => {
  it('decrypts once, then answers synchronously with the same rendered pair', async () => {
    const { store, vault, logs } = setup();
    store.put('openai', VALUE);
    const first = vault.headerFor(spec);
    expect(first).toBeInstanceOf(Promise);
    expect(await first).toEqual(['authorization', `Bearer ${VALUE}`]);
    const second = vault.headerFor(spec);
    expect(second).not.toBeInstanceOf(Promise);
    expect(second).toBe(await first); // the very same array: no allocation per request
    expect(store.gets).toBe(1);
    expect(logs.text()).not.toContain(VALUE);
  });

  it('makes one store call for many concurrent misses', async () => {
    const { store, vault } = setup();
    store.put('openai', VALUE);
    const results = await Promise.all(Array.from({ length: 20 }, () => resolve(vault.headerFor(spec))));
    expect(new Set(results).size).toBe(1);
    expect(store.gets).toBe(1);
  });

  it('renders each route spec of one secret separately, with the value taken literally', async () => {
    const { store, vault } = setup();
    store.put('legacy', 'p$&ss$1word');
    expect(await vault.headerFor({ id: 'legacy', header: 'authorization', template: 'Basic {value}' })).toEqual(['authorization', 'Basic p$&ss$1word']);
    expect(await resolve(vault.headerFor({ id: 'legacy', header: 'x-token', template: '{value}' }))).toEqual(['x-token', 'p$&ss$1word']);
    expect(renderTemplate('{value}:{value}', 'a$&')).toBe('a$&:a$&');
    expect(store.gets).toBe(1);
  });

  it('forgets a secret the store says changed, and everything on a resync', async () => {
    const { store, vault } = setup();
    store.put('openai', VALUE);
    await vault.headerFor(spec);
    store.secrets.delete('openai');
    vault.secretsChanged(['openai']);
    expect(await resolve(vault.headerFor(spec))).toBe('not_found');
    store.put('openai', 'tok-new-value');
    vault.secretsChanged(['openai']);
    expect(await resolve(vault.headerFor(spec))).toEqual(['authorization', 'Bearer tok-new-value']);
    store.put('openai', 'tok-third');
    vault.secretsResync();
    expect(vault.size).toBe(0);
    expect(await resolve(vault.headerFor(spec))).toEqual(['authorization', 'Bearer tok-third']);
  });

  it('does not cache an answer fetched across a change notice', async () => {
    const { store, vault } = setup();
    store.put('openai', VALUE);
    const pending = vault.headerFor(spec);
    vault.secretsChanged(['openai']);
    await pending;
    expect(vault.headerFor(spec)).toBeInstanceOf(Promise);
  });

  it('keeps a value for ttlMs only', async () => {
    const { store, vault, advance } = setup({ ttlMs: 1000 });
    store.put('openai', VALUE);
    await vault.headerFor(spec);
    advance(999);
    expect(vault.headerFor(spec)).not.toBeInstanceOf(Promise);
    advance(2);
    expect(vault.headerFor(spec)).toBeInstanceOf(Promise);
  });

  it('caches failures too, with one warning naming the secret id, not one per request', async () => {
    const { store, vault, logs } = setup();
    expect(await resolve(vault.headerFor(spec))).toBe('not_found');
    expect(vault.headerFor(spec)).toBe('not_found');
    expect(store.gets).toBe(1);
    const warnings = logs.text().trim().split('\n').filter((l) => l.includes('"secretId":"openai"'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('"level":"warn"');
  });

  it('refuses a tampered envelope, logging why (without the value)', async () => {
    const { store, vault, logs } = setup();
    const envelope = encryptSecret(keyring, 'openai', VALUE);
    const ct = Buffer.from(envelope.ct, 'base64');
    ct[0] = ct[0]! ^ 0xff;
    store.put('openai', VALUE, { ...envelope, ct: ct.toString('base64') });
    expect(await resolve(vault.headerFor(spec))).toBe('undecryptable');
    expect(logs.text()).toMatch(/cannot be decrypted/);
    expect(logs.text()).not.toContain(VALUE);
  });

  it('asks the store on every miss while the push feed is down; falls back to a fresh value only if the store is down too', async () => {
    const { store, vault, advance } = setup({ ttlMs: 1000 });
    store.put('openai', VALUE);
    await vault.headerFor(spec);
    store.feedHealthy = false;
    const asked = vault.headerFor(spec);
    expect(asked).toBeInstanceOf(Promise);
    await asked;
    await vault.headerFor(spec);
    expect(store.gets).toBe(3);
    store.down = true;
    expect(await resolve(vault.headerFor(spec))).toEqual(['authorization', `Bearer ${VALUE}`]);
    advance(1001);
    expect(await resolve(vault.headerFor(spec))).toBe('store_unavailable');
  });

  it('fails closed when the store is down and nothing is cached', async () => {
    const { store, vault } = setup();
    store.put('openai', VALUE);
    store.down = true;
    expect(await resolve(vault.headerFor(spec))).toBe('store_unavailable');
    // Not cached: the next request tries again.
    store.down = false;
    expect(await resolve(vault.headerFor(spec))).toEqual(['authorization', `Bearer ${VALUE}`]);
  });

  it('without a master key, every route that needs a secret fails at once, without a store call', () => {
    const { store, vault, logs } = setup({ withKey: false });
    store.put('openai', VALUE);
    expect(vault.headerFor(spec)).toBe('no_master_key');
    expect(vault.headerFor(spec)).toBe('no_master_key');
    expect(store.gets).toBe(0);
    expect(logs.text()).toContain('KEYGATE_MASTER_KEY is not set');
  });

  it('batches last-used times and writes them on flush; stop() forgets every value', async () => {
    const { store, vault } = setup();
    store.put('openai', VALUE);
    await vault.headerFor(spec);
    vault.headerFor(spec);
    await vault.flushLastUsed();
    expect(store.touched).toHaveLength(1);
    expect([...store.touched[0]!.keys()]).toEqual(['openai']);
    await vault.flushLastUsed();
    expect(store.touched).toHaveLength(1);
    await vault.stop();
    expect(vault.size).toBe(0);
  });

  it('valueFor: the raw value through the same cache — sync on a hit, the same object until it changes, failures as for headerFor', async () => {
    const { store, vault, logs } = setup();
    store.put('signing', VALUE);
    const first = vault.valueFor('signing');
    expect(first).toBeInstanceOf(Promise);
    const value = await first;
    expect(value).toEqual(expect.objectContaining({ value: VALUE }));
    const again = vault.valueFor('signing');
    expect(again).toBe(value);
    // headerFor shares the entry: no second store call.
    expect(await resolve(vault.headerFor({ id: 'signing', header: 'x-t', template: '{value}' }))).toEqual(['x-t', VALUE]);
    expect(store.gets).toBe(1);
    store.put('signing', 'tok-rotated');
    vault.secretsChanged(['signing']);
    const fresh = await vault.valueFor('signing');
    expect(fresh).not.toBe(value);
    expect(fresh).toEqual(expect.objectContaining({ value: 'tok-rotated' }));
    expect(await vault.valueFor('nope')).toBe('not_found');
    await vault.flushLastUsed();
    expect([...store.touched[0]!.keys()].sort()).toEqual(['signing']);
    expect(logs.text()).not.toContain(VALUE);
    const bare = setup({ withKey: false });
    expect(bare.vault.valueFor('signing')).toBe('no_master_key');
  });
});

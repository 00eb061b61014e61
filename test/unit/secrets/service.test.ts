/**
 * SecretService on the embedded store: who may manage secrets, what a valid secret is, that
 * the value is stored only encrypted and never returned or audited, renames and id moves,
 * removal, and rewrap after a master-key rotation. Also the embedded store's change feed.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EventSink } from '../../../src/events/event-sink.ts';
import { CLI_CALLER } from '../../../src/keys/service.ts';
import { KeygateError, type ProblemCode } from '../../../src/http/problem.ts';
import { decryptSecret, type Keyring } from '../../../src/secrets/crypto.ts';
import { SecretService } from '../../../src/secrets/service.ts';
import { EmbeddedStore } from '../../../src/store/embedded/store.ts';
import { testKeyrings } from '../../helpers/keyrings.ts';

const VALUE = 'sk-proj-SERVICE-TEST-4b1d2c3e4f5a6b7c';
/** A, B, and a rotation in progress (B current, A still decrypts). */
const { keyA, keyB, ringA, ringB, rotating } = testKeyrings();
const admin = { actor: 'key_admin', tenant: null };
const tenantAdmin = { actor: 'key_acme', tenant: 'acme' };

let dir: string;
let path: string;
let store: EmbeddedStore;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'keygate-secrets-'));
  path = join(dir, 'keygate.db');
  store = new EmbeddedStore({ path, pollMs: 20 });
});

afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

function service(keyring: Keyring | null = ringA): SecretService {
  return new SecretService(store, keyring, new EventSink(store, null, null), 'system');
}

async function rejection(work: Promise<unknown>): Promise<Error> {
  return work.then(
    () => {
      throw new Error('resolved');
    },
    (error: Error) => error,
  );
}

/** A KeygateError with this code (what the admin API answers, and the CLI's exit status). */
function expectCode(error: Error, code: ProblemCode): void {
  expect(error).toBeInstanceOf(KeygateError);
  expect((error as KeygateError).code).toBe(code);
}

/** Every byte the store has on disk (database, WAL), as text. */
function onDisk(): string {
  return readdirSync(dir)
    .map((name) => readFileSync(join(dir, name)).toString('latin1'))
    .join('\n');
}

describe('SecretService', () => {
  it('stores the value only encrypted, returns metadata only, and audits without the value', async () => {
    const meta = await service().add(admin, { id: 'openai', name: 'OpenAI', value: VALUE });
    expect(meta).toEqual({ id: 'openai', name: 'OpenAI', createdAt: expect.any(Number), lastUsedAt: null, keyVersion: ringA.current.version });
    expect(JSON.stringify(meta)).not.toContain(VALUE);
    const list = await service().list(admin);
    expect(list).toEqual([meta]);
    expect(Object.keys(list[0]!).sort()).toEqual(['createdAt', 'id', 'keyVersion', 'lastUsedAt', 'name']);
    const stored = await store.getSecret('openai');
    expect(decryptSecret(ringA, 'openai', stored!.envelope)).toBe(VALUE);
    expect(onDisk()).not.toContain(VALUE);
    expect(onDisk()).not.toContain(VALUE.slice(-16));
    const audit = await store.listAudit({ limit: 10 });
    expect(audit.entries).toEqual([expect.objectContaining({ action: 'secret.create', actor: 'key_admin', tenant: null, target: 'openai', detail: { name: 'OpenAI', keyVersion: ringA.current.version } })]);
    expect(JSON.stringify(audit)).not.toContain(VALUE);
  });

  it('lets only platform admins manage secrets', async () => {
    await service().add(admin, { id: 'openai', name: 'OpenAI', value: VALUE });
    for (const work of [
      service().add(tenantAdmin, { id: 'x', name: 'x', value: VALUE }),
      service().list(tenantAdmin),
      service().rename(tenantAdmin, 'openai', { name: 'mine' }),
      service().remove(tenantAdmin, 'openai'),
      service().rewrap(tenantAdmin),
    ]) {
      expectCode(await rejection(work), 'forbidden');
    }
    expect(await service().list(CLI_CALLER)).toHaveLength(1);
  });

  it('validates id, name and value, without quoting the value', async () => {
    const bad = async (input: { id: string; name: string; value: string }, field: string) => {
      const error = await rejection(service().add(admin, input));
      expectCode(error, 'validation_failed');
      expect((error as KeygateError).field).toBe(field);
      if (input.value.length > 3) expect(error.message).not.toContain(input.value);
    };
    await bad({ id: 'Open AI', name: 'n', value: VALUE }, 'id');
    await bad({ id: 'openai', name: ' ', value: VALUE }, 'name');
    await bad({ id: 'openai', name: 'n', value: '' }, 'value');
    await bad({ id: 'openai', name: 'n', value: `${VALUE}\r\nx-injected: 1` }, 'value');
    await bad({ id: 'openai', name: 'n', value: ` ${VALUE}` }, 'value');
    await bad({ id: 'openai', name: 'n', value: `tök-${VALUE}` }, 'value');
    await bad({ id: 'openai', name: 'n', value: 'x'.repeat(8193) }, 'value');
    expect((await service().add(admin, { id: 'big', name: 'n', value: 'x'.repeat(8192) })).id).toBe('big');
  });

  it('never replaces a value: a second add with the same id is refused', async () => {
    await service().add(admin, { id: 'openai', name: 'OpenAI', value: VALUE });
    const error = await rejection(service().add(admin, { id: 'openai', name: 'OpenAI', value: 'another-value' }));
    expectCode(error, 'conflict');
    expect(decryptSecret(ringA, 'openai', (await store.getSecret('openai'))!.envelope)).toBe(VALUE);
  });

  it('cannot store without a master key, but can list, rename and remove', async () => {
    await service().add(admin, { id: 'openai', name: 'OpenAI', value: VALUE });
    const none = service(null);
    expect((await rejection(none.add(admin, { id: 'x', name: 'x', value: VALUE }))).message).toMatch(/^KEYGATE_MASTER_KEY is not set/);
    expect(await none.list(admin)).toHaveLength(1);
    expect((await none.rename(admin, 'openai', { name: 'Renamed' })).name).toBe('Renamed');
    expectCode(await rejection(none.rename(admin, 'openai', { id: 'moved' })), 'conflict');
    expect((await none.remove(admin, 'openai')).id).toBe('openai');
  });

  it('renames (audited with the old name), and moves to a new id re-encrypted for it', async () => {
    const before = await service().add(admin, { id: 'openai', name: 'OpenAI', value: VALUE });
    await store.touchSecrets(new Map([['openai', 12345]]));
    expect(await service().rename(admin, 'openai', { name: 'OpenAI prod' })).toEqual({ ...before, name: 'OpenAI prod', lastUsedAt: 12345 });
    const moved = await service().rename(admin, 'openai', { id: 'openai-prod' });
    expect(moved).toEqual({ ...before, id: 'openai-prod', name: 'OpenAI prod', lastUsedAt: 12345 });
    expect(await store.getSecret('openai')).toBeNull();
    const stored = (await store.getSecret('openai-prod'))!;
    expect(decryptSecret(ringA, 'openai-prod', stored.envelope)).toBe(VALUE);
    expect(() => decryptSecret(ringA, 'openai', stored.envelope)).toThrow();
    await service().add(admin, { id: 'other', name: 'Other', value: 'other-value' });
    expectCode(await rejection(service().rename(admin, 'other', { id: 'openai-prod' })), 'conflict');
    expectCode(await rejection(service().rename(admin, 'nope', { name: 'x' })), 'not_found');
    const audit = (await store.listAudit({ limit: 10 })).entries.filter((e) => e.action === 'secret.rename');
    expect(audit.map((e) => e.detail)).toEqual([
      { name: 'OpenAI prod', fromId: 'openai', from: 'OpenAI prod' },
      { name: 'OpenAI prod', from: 'OpenAI' },
    ]);
    expect(onDisk()).not.toContain(VALUE);
  });

  it('removes (audited), and a removed id is unknown', async () => {
    await service().add(admin, { id: 'openai', name: 'OpenAI', value: VALUE });
    expect((await service().remove(admin, 'openai')).name).toBe('OpenAI');
    expect(await store.getSecret('openai')).toBeNull();
    expectCode(await rejection(service().remove(admin, 'openai')), 'not_found');
    expect((await store.listAudit({ limit: 1 })).entries[0]).toMatchObject({ action: 'secret.remove', target: 'openai', detail: { name: 'OpenAI' } });
  });

  it('rewrap re-encrypts every secret under the new key, keeping every one readable', async () => {
    const values = new Map(Array.from({ length: 5 }, (_, i) => [`s${i}`, `value-${i}-${randomBytes(8).toString('hex')}`]));
    for (const [id, value] of values) await service(ringA).add(admin, { id, name: id, value });
    // One secret added mid-rotation is already under the new key.
    await service(rotating).add(admin, { id: 'fresh', name: 'fresh', value: 'fresh-value' });
    values.set('fresh', 'fresh-value');

    const result = await service(rotating).rewrap(admin);
    expect(result).toEqual({ version: ringB.current.version, rewrapped: expect.any(Array), alreadyCurrent: 1, failed: [] });
    expect(result.rewrapped.sort()).toEqual(['s0', 's1', 's2', 's3', 's4']);
    for (const meta of await store.listSecrets()) expect(meta.keyVersion).toBe(ringB.current.version);
    // Readable with the new key alone: the old one can go.
    for (const [id, value] of values) expect(decryptSecret(ringB, id, (await store.getSecret(id))!.envelope)).toBe(value);
    // Again: nothing left to do.
    expect(await service(ringB).rewrap(admin)).toEqual({ version: ringB.current.version, rewrapped: [], alreadyCurrent: 6, failed: [] });
    expect((await store.listAudit({ limit: 1 })).entries[0]).toMatchObject({ action: 'secret.rewrap', detail: { keyVersion: ringB.current.version, count: 5 } });
  });

  it('rewrap without the old key reports what it cannot decrypt and changes nothing', async () => {
    await service(ringA).add(admin, { id: 'openai', name: 'OpenAI', value: VALUE });
    const before = (await store.getSecret('openai'))!.envelope;
    const result = await service(ringB).rewrap(admin);
    expect(result.rewrapped).toEqual([]);
    expect(result.failed).toEqual([{ id: 'openai', reason: expect.stringContaining('KEYGATE_MASTER_KEY_PREVIOUS') }]);
    expect((await store.getSecret('openai'))!.envelope).toEqual(before);
  });

  it('replaceEnvelope only replaces the envelope it was given (a concurrent change wins)', async () => {
    await service(ringA).add(admin, { id: 'openai', name: 'OpenAI', value: VALUE });
    const stale = (await store.getSecret('openai'))!.envelope;
    await service(ringA).remove(admin, 'openai');
    await service(ringA).add(admin, { id: 'openai', name: 'OpenAI', value: 'newer' });
    expect(await store.replaceEnvelope('openai', stale, stale)).toBe(false);
  });
});

describe('EmbeddedStore secret changes across processes', () => {
  it('another store on the same file announces adds, renames, moves and removals to a subscribed one', async () => {
    let changed: string[] = [];
    store.subscribeSecrets({ secretsChanged: (ids) => changed.push(...ids), secretsResync: () => {} });
    const other = new EmbeddedStore({ path });
    const announced = async (work: () => Promise<unknown>, ids: string[]) => {
      changed = [];
      await work();
      const deadline = Date.now() + 2000;
      while (!ids.every((id) => changed.includes(id)) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
      expect(changed.sort()).toEqual(ids);
    };
    try {
      const svc = new SecretService(other, ringA, null, 'system');
      await announced(() => svc.add(admin, { id: 'a', name: 'a', value: VALUE }), ['a']);
      await announced(() => svc.rename(admin, 'a', { name: 'b' }), ['a']);
      await announced(() => svc.rename(admin, 'a', { id: 'c' }), ['a', 'c']);
      await announced(() => svc.remove(admin, 'c'), ['c']);
    } finally {
      await other.close();
    }
  });
});

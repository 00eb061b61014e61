/**
 * Which keys a process knows to exist (Verifier.isKnown's map): the failed-auth limit serves
 * a blocked address those keys only, so under `workers: N` a worker tells its siblings what
 * it learned (onKnown → cluster/known-keys-ipc.ts → learn). Here: the Verifier's side.
 */
import { testDirectory } from '../../helpers/directory.ts';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LOOKUP_REFUSED, Verifier } from '../../../src/auth/verify.ts';
import { generateKey } from '../../../src/keys/format.ts';
import { KeyService, CLI_CALLER } from '../../../src/keys/service.ts';
import { EmbeddedStore } from '../../../src/store/embedded/store.ts';
import { testHasher } from '../../helpers/pepper.ts';

let dir: string;
let store: EmbeddedStore;
let service: KeyService;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'keygate-known-'));
  store = new EmbeddedStore({ path: join(dir, 'k.db') });
  service = new KeyService(store, testHasher, { keys: { prefix: 'kg' }, tenants: { system: 'system' }, permissionGroups: {} });
});

afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

const verifier = (onKnown?: (id: string, hash: string) => void) =>
  new Verifier({ store, hasher: testHasher, prefix: 'kg', directory: testDirectory({}), max: 100, maxAgeMs: 30_000, negativeMax: 100, negativeMaxAgeMs: 5000, onKnown });

describe('known keys', () => {
  it('the first time the store vouches for a key, onKnown is told once (its SHA-256 and HMAC, never the key); unknown keys are never announced', async () => {
    const announced: [string, string][] = [];
    const v = verifier((id, hash) => announced.push([id, hash]));
    const { key } = await service.create(CLI_CALLER, { tenant: 'acme', name: 'k' });
    expect(typeof (await v.verify(key))).toBe('object');
    v.flush();
    await v.verify(key);
    await v.verify(generateKey('kg', 'acme'));
    expect(announced).toHaveLength(1);
    expect(announced[0]![1]).toBe(testHasher(key));
    expect(announced.flat().join()).not.toContain(key.slice(8));
  });

  it('a key a sibling learned is verified for a blocked address; one nobody learned is refused without a lookup', async () => {
    const announced: [string, string][] = [];
    const first = verifier((id, hash) => announced.push([id, hash]));
    const second = verifier();
    const { key } = await service.create(CLI_CALLER, { tenant: 'acme', name: 'k' });
    await first.verify(key);
    expect(second.verifyKnown(key)).toBe(LOOKUP_REFUSED);
    for (const [id, hash] of announced) second.learn(id, hash);
    const result = await second.verifyKnown(key);
    expect(result).not.toBe(LOOKUP_REFUSED);
    expect(typeof result).toBe('object');
  });
});

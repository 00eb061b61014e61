/**
 * The cache of GitHub's secret scanning public keys (src/leaks/public-keys.ts): fetched on
 * first use, refetched for an unknown identifier or when an hour old, never more than once
 * per cooldown, concurrent lookups sharing one fetch, failures keeping what is held.
 */
import { describe, expect, it } from 'vitest';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createLogger } from '../../../src/observability/logger.ts';
import { KEYS_MAX_AGE_MS, parsePublicKeys, PublicKeys } from '../../../src/leaks/public-keys.ts';

function p256(): { id: string; pem: string } {
  const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { id: randomBytes(32).toString('hex'), pem: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
}

function setup(cooldownMs = 60_000) {
  const lines: string[] = [];
  const logger = createLogger({ level: 'debug', destination: { write: (line: string) => void lines.push(line) } });
  const state = { now: 1_000_000, keys: [p256()], status: 200, body: null as string | null, calls: 0, gate: null as Promise<void> | null };
  const fakeFetch = (async (url: string | URL | Request) => {
    state.calls++;
    expect(String(url)).toBe('https://keys.example/secret_scanning');
    if (state.gate) await state.gate;
    const body = state.body ?? JSON.stringify({ public_keys: state.keys.map((k) => ({ key_identifier: k.id, key: k.pem, is_current: true })) });
    return new Response(body, { status: state.status, headers: { 'content-type': 'application/json' } });
  }) as typeof fetch;
  const keys = new PublicKeys({ url: 'https://keys.example/secret_scanning', cooldownMs, logger, fetch: fakeFetch, now: () => state.now });
  return { keys, state, lines };
}

describe('PublicKeys', () => {
  it('fetches once, then answers from the cache', async () => {
    const { keys, state } = setup();
    const id = state.keys[0]!.id;
    expect(typeof (await keys.get(id))).toBe('object');
    expect(typeof (await keys.get(id))).toBe('object');
    state.now += KEYS_MAX_AGE_MS - 1;
    expect(typeof (await keys.get(id))).toBe('object');
    expect(state.calls).toBe(1);
  });

  it('an unknown identifier refetches once; more unknowns within the cooldown fetch nothing', async () => {
    const { keys, state } = setup(60_000);
    await keys.get(state.keys[0]!.id);
    state.now += 60_000;
    expect(await keys.get('made-up-1')).toBe('unknown');
    expect(state.calls).toBe(2);
    for (let i = 0; i < 100; i++) expect(await keys.get(`made-up-${i}`)).toBe('unknown');
    state.now += 59_999;
    expect(await keys.get('made-up-x')).toBe('unknown');
    expect(state.calls).toBe(2);
    // GitHub rotates: the next unknown identifier after the cooldown finds the new key.
    const rotated = p256();
    state.keys.push(rotated);
    state.now += 1;
    expect(typeof (await keys.get(rotated.id))).toBe('object');
    expect(state.calls).toBe(3);
  });

  it('concurrent lookups share one fetch', async () => {
    const { keys, state } = setup(0);
    let open!: () => void;
    state.gate = new Promise<void>((resolve) => (open = resolve));
    const answers = Promise.all([keys.get(state.keys[0]!.id), keys.get('x'), keys.get('y'), keys.get(state.keys[0]!.id)]);
    open();
    const [a, x, y, b] = await answers;
    expect(typeof a).toBe('object');
    expect([x, y]).toEqual(['unknown', 'unknown']);
    expect(b).toBe(a);
    expect(state.calls).toBe(1);
  });

  it('an hour-old cache is refreshed: a key GitHub withdrew stops being trusted', async () => {
    const { keys, state } = setup();
    const old = state.keys[0]!;
    await keys.get(old.id);
    state.keys = [p256()];
    state.now += KEYS_MAX_AGE_MS;
    expect(await keys.get(old.id)).toBe('unknown');
    expect(state.calls).toBe(2);
  });

  it('a failed fetch keeps the keys held; an identifier not held is then unavailable, not unknown', async () => {
    const { keys, state, lines } = setup(1000);
    expect(await keys.get('anything')).toBe('unknown');
    const held = state.keys[0]!;
    expect(typeof (await keys.get(held.id))).toBe('object'); // within the cooldown: not fetched
    expect(state.calls).toBe(1);
    state.now += 1000;
    expect(typeof (await keys.get(held.id))).toBe('object');

    state.status = 503;
    state.now += KEYS_MAX_AGE_MS;
    expect(typeof (await keys.get(held.id))).toBe('object'); // stale but held: still used
    state.now += 1000;
    expect(await keys.get('new-id')).toBe('unavailable');
    expect(lines.join('')).toContain('could not be fetched');

    for (const body of ['not json', '{"public_keys": "x"}', '{"public_keys": [{"key_identifier": "a", "key": "not a pem"}]}']) {
      state.status = 200;
      state.body = body;
      state.now += 1000;
      expect(await keys.get('other-id')).toBe('unavailable');
      expect(typeof (await keys.get(held.id))).toBe('object');
    }
    const fresh = setup(0);
    fresh.state.status = 500;
    expect(await fresh.keys.get(fresh.state.keys[0]!.id)).toBe('unavailable');
  });
});

describe('parsePublicKeys', () => {
  it('keeps ECDSA P-256 keys only', () => {
    const good = p256();
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const keys = parsePublicKeys({
      public_keys: [
        { key_identifier: good.id, key: good.pem, is_current: true },
        { key_identifier: 'rsa', key: rsa },
        { key_identifier: 'p384', key: p384 },
        { key_identifier: 'garbage', key: 'garbage' },
        { key_identifier: 7, key: good.pem },
        null,
      ],
    });
    expect([...keys.keys()]).toEqual([good.id]);
    expect(() => parsePublicKeys({})).toThrow('public_keys');
    expect(() => parsePublicKeys(null)).toThrow('public_keys');
  });
});

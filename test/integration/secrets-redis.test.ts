/**
 * Upstream secrets on a real redis-server shared by two keygate instances: a secret added
 * on one is injected by both; removed or moved on one, it stops being injected by both at
 * once (the push channel, not the cache's time-to-live); a resync of the subscriber flushes
 * the decrypted values; Redis never holds a value in clear; rewrap after a master-key
 * rotation keeps every secret readable.
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI_CALLER } from '../../src/keys/service.ts';
import { decryptSecret, loadKeyring } from '../../src/secrets/crypto.ts';
import { SecretService } from '../../src/secrets/service.ts';
import type { RedisStore } from '../../src/store/redis/store.ts';
import { adminClient, type AdminClient } from '../helpers/admin.ts';
import { rawRequest, type RawResponse } from '../helpers/http.ts';
import type { TestKeygate } from '../helpers/keygate.ts';
import { startRedisPair, type RedisPair } from '../helpers/redis-fixture.ts';
import { waitFor } from '../helpers/redis-server.ts';
import { startUpstream, type TestUpstream } from '../helpers/upstream.ts';

const KEY_A = randomBytes(32).toString('base64');
const KEY_B = randomBytes(32).toString('base64');
const VALUES: Record<string, string> = {
  openai: `sk-redis-${randomBytes(16).toString('hex')}`,
  github: `ghp_${randomBytes(16).toString('hex')}`,
  legacy: `legacy-${randomBytes(16).toString('hex')}`,
};

let raw: Redis;
let pair: RedisPair<TestKeygate>;
let up: TestUpstream;
let a: TestKeygate, b: TestKeygate;
let adminA: AdminClient;
let adminB: AdminClient;
let userKey: string;
const responses: string[] = [];

async function injected(instance: TestKeygate, path: string): Promise<string | number> {
  const before = up.received.length;
  const res: RawResponse = await rawRequest(instance.url, { path, headers: { 'x-api-key': userKey } });
  responses.push(res.body);
  if (res.status !== 200) return res.json?.code === 'upstream_unavailable' ? 502 : res.status;
  expect(up.received.length).toBe(before + 1);
  return String(up.received[before]!.headers.authorization);
}

beforeAll(async () => {
  up = await startUpstream((req, res) => {
    req.resume();
    req.on('end', () => res.end('ok'));
  });
  pair = await startRedisPair({
    config: (store) => ({
      store,
      routes: [
        { name: 'llm', pathPrefix: '/llm', upstream: up.url, secret: { id: 'openai', header: 'authorization', template: 'Bearer {value}' } },
        { name: 'gh', pathPrefix: '/gh', upstream: up.url, secret: { id: 'github', header: 'authorization', template: 'token {value}' } },
      ],
      log: { level: 'info' as const, access: false },
    }),
    env: { KEYGATE_MASTER_KEY: KEY_A },
  });
  ({ raw, a, b } = pair);
  adminA = adminClient(a.adminUrl, (await a.keys.create({ tenant: 'system', role: 'admin', name: 'root' })).key);
  adminB = adminClient(b.adminUrl, (await b.keys.create({ tenant: 'system', role: 'admin', name: 'root-b' })).key);
  userKey = (await a.keys.create({ tenant: 'acme', name: 'agent' })).key;
});

afterAll(async () => {
  await pair?.stop();
  await up?.close();
});

describe('two instances on one Redis', () => {
  it('a secret added on one instance is injected by both', async () => {
    for (const id of ['openai', 'github', 'legacy']) {
      const res = await adminA.post('/v1/secrets', { id, name: id, value: VALUES[id] });
      expect(res.status, res.text).toBe(201);
    }
    expect(await injected(a, '/llm/x')).toBe(`Bearer ${VALUES.openai}`);
    expect(await injected(b, '/llm/x')).toBe(`Bearer ${VALUES.openai}`);
    expect(await injected(b, '/gh/x')).toBe(`token ${VALUES.github}`);
    const list = await adminB.get('/v1/secrets');
    expect(list.json.secrets.map((s: { id: string }) => s.id).sort()).toEqual(['github', 'legacy', 'openai']);
  });

  it('a removed secret stops being injected on every instance at once, not when the cache expires', async () => {
    // Both instances have the value in memory now (30 s time-to-live).
    expect(await injected(a, '/llm/y')).toBe(`Bearer ${VALUES.openai}`);
    expect(await injected(b, '/llm/y')).toBe(`Bearer ${VALUES.openai}`);
    expect(b.keygate.vault.size).toBeGreaterThan(0);
    const removed = await adminA.call('DELETE', '/v1/secrets/openai?force=true'); // route llm names it
    expect(removed.status, removed.text).toBe(200);
    const started = Date.now();
    expect(await injected(a, '/llm/z')).toBe(502);
    await waitFor('instance B to stop injecting', async () => (await injected(b, '/llm/z')) === 502, 1000, 1);
    expect(Date.now() - started).toBeLessThan(1000);
    // And it stays that way on both.
    expect(await injected(b, '/llm/z')).toBe(502);
    expect(await injected(a, '/llm/z')).toBe(502);
    expect(b.logs()).toMatch(/"secretId":"openai".*not stored/);
  });

  it('a secret moved to a new id on one instance stops being injected under the old id on the other', async () => {
    expect(await injected(a, '/gh/x')).toBe(`token ${VALUES.github}`);
    const moved = await adminB.patch('/v1/secrets/github', { id: 'github-v2', name: 'GitHub' });
    expect(moved.status, moved.text).toBe(200);
    await waitFor('instance A to drop the old id', async () => (await injected(a, '/gh/x')) === 502, 1000, 1);
    expect(await injected(b, '/gh/x')).toBe(502);
    const back = await adminA.patch('/v1/secrets/github-v2', { id: 'github' });
    expect(back.status, back.text).toBe(200);
    await waitFor('instance B to inject it again', async () => (await injected(b, '/gh/x')) === `token ${VALUES.github}`, 1000, 1);
  });

  it('a resync of the subscriber (after a disconnect) flushes the decrypted values', async () => {
    expect(await injected(b, '/gh/resync')).toBe(`token ${VALUES.github}`);
    expect(b.keygate.vault.size).toBeGreaterThan(0);
    await waitFor('both feeds to be subscribed', () => a.keygate.store.feedHealthy && b.keygate.store.feedHealthy, 3000, 5);
    expect(Number(await raw.call('CLIENT', 'KILL', 'TYPE', 'pubsub'))).toBe(2);
    await waitFor('the feed to be lost', () => !b.keygate.store.feedHealthy, 2000, 1);
    await waitFor('the feed to be back', () => b.keygate.store.feedHealthy, 3000, 5);
    expect(b.keygate.vault.size).toBe(0);
    expect(await injected(b, '/gh/resync')).toBe(`token ${VALUES.github}`);
  });

  it('keeps only ciphertext in Redis, under the documented keys', async () => {
    const prefix = (a.keygate.store as RedisStore).layout.prefix;
    const keys = (await raw.keys(`${prefix}secret*`)).sort();
    expect(keys).toEqual([`${prefix}secret:github`, `${prefix}secret:legacy`, `${prefix}secrets`]);
    const hash = await raw.hgetall(`${prefix}secret:legacy`);
    expect(Object.keys(hash).sort()).toEqual(['createdAt', 'envelope', 'id', 'keyVersion', 'name']);
    let everything = '';
    for (const key of await raw.keys('*')) {
      const type = await raw.type(key);
      if (type === 'hash') everything += JSON.stringify(await raw.hgetall(key));
      else if (type === 'string') everything += await raw.get(key);
      else if (type === 'zset') everything += JSON.stringify(await raw.zrange(key, '0', '-1'));
    }
    expect(everything).toContain('legacy');
    for (const value of Object.values(VALUES)) expect(everything.includes(value)).toBe(false);
  });

  it('rewrap after a master-key rotation keeps every secret readable with the new key alone', async () => {
    const store = a.keygate.store;
    const rotating = loadKeyring({ KEYGATE_MASTER_KEY: KEY_B, KEYGATE_MASTER_KEY_PREVIOUS: KEY_A })!;
    const newOnly = loadKeyring({ KEYGATE_MASTER_KEY: KEY_B })!;
    const result = await new SecretService(store, rotating, null, 'system').rewrap(CLI_CALLER);
    expect(result.rewrapped.sort()).toEqual(['github', 'legacy']);
    expect(result.failed).toEqual([]);
    for (const id of ['github', 'legacy']) {
      const stored = (await store.getSecret(id))!;
      expect(stored.keyVersion).toBe(newOnly.current.version);
      expect(decryptSecret(newOnly, id, stored.envelope)).toBe(VALUES[id]);
    }
    const list = await adminB.get('/v1/secrets');
    expect(new Set(list.json.secrets.map((s: { keyVersion: string }) => s.keyVersion))).toEqual(new Set([newOnly.current.version]));
  });

  it('never shows a value in a response or a log line', () => {
    const texts = [...responses, a.logs(), b.logs()];
    for (const value of Object.values(VALUES)) for (const text of texts) expect(text.includes(value)).toBe(false);
  });
});

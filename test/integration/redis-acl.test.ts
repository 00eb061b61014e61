/**
 * The Redis ACL that docs/redis.md gives operators, taken from that file: two keygate
 * instances connect as that user and use every part of keygate that touches Redis (key
 * lifecycle, rotation sweeps, reminders, audit, secrets and their push, revocation push,
 * console sign-out, webhook replay claims, last-used); Redis's ACL LOG must record no
 * refusal. And the user must not be able to do more than that: no KEYS, SCAN, MONITOR,
 * CONFIG or FLUSHALL, no keys or channels outside the prefix.
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI_CALLER } from '../../src/keys/service.ts';
import { loadKeyring } from '../../src/secrets/crypto.ts';
import { SecretService } from '../../src/secrets/service.ts';
import { adminClient, type AdminClient } from '../helpers/admin.ts';
import { rawRequest } from '../helpers/http.ts';
import { aclRefusals, documentedAcl } from '../helpers/redis-acl.ts';
import { startTestKeygate, type TestKeygate } from '../helpers/keygate.ts';
import { startRedisPair, type RedisPair } from '../helpers/redis-fixture.ts';
import { waitFor, type RedisServer } from '../helpers/redis-server.ts';
import { startUpstream, type TestUpstream } from '../helpers/upstream.ts';

const PASSWORD = randomBytes(12).toString('hex');
const MASTER_KEY = randomBytes(32).toString('base64');
const SECRET_VALUE = `sk-acl-${randomBytes(16).toString('hex')}`;

let redis: RedisServer;
/** The default (unrestricted) user: sets up the ACL and reads the ACL LOG. */
let root: Redis;
/** A connection as the documented user, for checking what it may not do. */
let restricted: Redis;
let pair: RedisPair<TestKeygate>;
let up: TestUpstream;
let a: TestKeygate, b: TestKeygate;
let adminA: AdminClient;
let adminB: AdminClient;

const proxied = (instance: TestKeygate, path: string, key: string) => rawRequest(instance.url, { path, headers: { 'x-api-key': key } });

beforeAll(async () => {
  up = await startUpstream((req, res) => {
    req.resume();
    req.on('end', () => res.end(String(req.headers.authorization ?? 'none')));
  });
  pair = await startRedisPair({
    prepare: async (r) => {
      await r.call('ACL', 'SETUSER', 'keygate', 'reset', ...documentedAcl(PASSWORD));
      await r.call('ACL', 'LOG', 'RESET');
    },
    config: (_, server) => ({
      store: { kind: 'redis', redis: { url: `redis://keygate:${PASSWORD}@127.0.0.1:${server.port}`, commandTimeoutMs: 1000 } },
      routes: [
        { name: 'llm', pathPrefix: '/llm', upstream: up.url, secret: { id: 'openai', header: 'authorization', template: 'Bearer {value}' } },
        { name: 'api', pathPrefix: '/api', upstream: up.url },
        { name: 'limited', pathPrefix: '/limited', upstream: up.url, limits: { rates: [{ by: 'key', rate: '2/10s' }] } },
      ],
      lifecycle: { sweepMs: 3_600_000, lastUsedFlushMs: 3_600_000 },
      log: { level: 'info', access: false },
    }),
    env: { KEYGATE_MASTER_KEY: MASTER_KEY },
  });
  ({ redis, raw: root, a, b } = pair);
  const rootKey = (await a.keys.create({ tenant: 'system', role: 'admin', name: 'root' })).key;
  adminA = adminClient(a.adminUrl, rootKey);
  adminB = adminClient(b.adminUrl, rootKey);
  restricted = new Redis({ port: redis.port, host: '127.0.0.1', username: 'keygate', password: PASSWORD, maxRetriesPerRequest: 0 });
});

afterAll(async () => {
  restricted?.disconnect();
  await pair?.stop();
  await up?.close();
});

describe('keygate as the documented Redis user', () => {
  it('both instances connected as that user and are ready', async () => {
    expect(((await root.call('CLIENT', 'LIST')) as string).split('\n').filter((l) => l.includes('user=keygate')).length).toBeGreaterThanOrEqual(4);
    for (const instance of [a, b]) expect((await fetch(`${instance.adminUrl}/readyz`)).status).toBe(200);
  });

  it('keys: create, verify on the other instance, rename, list, rotate with overlap, sweep, revoke pushed, tenant revoke, audit', async () => {
    const created = await adminA.post('/v1/keys', { tenant: 'acme', name: 'agent', expires: '5d' });
    expect(created.status, created.text).toBe(201);
    const { key, id } = created.json as { key: string; id: string };
    // A cache miss on b: the lookup is an HGETALL as the restricted user.
    expect((await proxied(b, '/api/x', key)).status).toBe(200);
    expect((await adminB.patch(`/v1/keys/${id}`, { name: 'agent-renamed' })).json).toMatchObject({ name: 'agent-renamed' });
    expect((await adminB.get('/v1/keys?tenant=acme')).json.keys.map((k: { id: string }) => k.id)).toContain(id);
    expect((await adminA.get('/v1/tenants')).status).toBe(200);

    const rotated = await adminA.post(`/v1/keys/${id}/rotate`, { overlapSeconds: 1 });
    expect(rotated.status, rotated.text).toBe(201);
    const successor = rotated.json as { key: string; id: string };
    await new Promise((r) => setTimeout(r, 1100));
    await Promise.all([a.keygate.jobs.sweep(), b.keygate.jobs.sweep()]);
    expect((await adminA.get(`/v1/keys/${id}`)).json.status).toBe('revoked');
    // The successor expires in 5 days: the sweep claimed its 7-day reminder.
    expect(Object.keys(await root.hgetall('kg:reminders'))).toContain(`${successor.id}:7d`);

    // Revoked on a, refused on b at once although b had it cached: the push arrived.
    expect((await proxied(b, '/api/x', successor.key)).status).toBe(200);
    expect((await adminA.post(`/v1/keys/${successor.id}/revoke`)).status).toBe(200);
    await waitFor('b to refuse the revoked key', async () => (await proxied(b, '/api/x', successor.key)).status === 401, 2000);

    const other = (await adminA.post('/v1/keys', { tenant: 'beta', name: 'one' })).json as { key: string; id: string };
    expect((await adminB.post('/v1/tenants/beta/keys/revoke')).json).toEqual({ tenant: 'beta', revoked: [other.id] });
    await waitFor('a to refuse the tenant-revoked key', async () => (await proxied(a, '/api/x', other.key)).status === 401, 2000);

    const audit = await adminA.get('/v1/audit?limit=50');
    expect(audit.status, audit.text).toBe(200);
    expect(audit.json.entries.map((e: { action: string }) => e.action)).toEqual(expect.arrayContaining(['key.create', 'key.rename', 'key.rotate', 'key.revoke']));
  });

  it('secrets: add on one instance, injected by the other, rename, move, rewrap, remove pushed', async () => {
    const user = (await a.keys.create({ tenant: 'acme', name: 'llm-user' })).key;
    expect((await adminA.post('/v1/secrets', { id: 'openai', name: 'OpenAI', value: SECRET_VALUE })).status).toBe(201);
    await waitFor('b to inject the new secret', async () => (await proxied(b, '/llm/v1', user)).body === `Bearer ${SECRET_VALUE}`, 2000);
    expect((await adminB.get('/v1/secrets')).json.secrets.map((s: { id: string }) => s.id)).toEqual(['openai']);
    expect((await adminB.patch('/v1/secrets/openai', { name: 'OpenAI prod' })).status).toBe(200);
    expect((await adminB.patch('/v1/secrets/openai', { id: 'openai-old' })).status).toBe(200);
    await waitFor('a to stop injecting the moved secret', async () => (await proxied(a, '/llm/v1', user)).status !== 200, 2000);
    expect((await adminA.patch('/v1/secrets/openai-old', { id: 'openai' })).status).toBe(200);
    await waitFor('a to inject it again', async () => (await proxied(a, '/llm/v1', user)).body === `Bearer ${SECRET_VALUE}`, 2000);

    const rotating = loadKeyring({ KEYGATE_MASTER_KEY: randomBytes(32).toString('base64'), KEYGATE_MASTER_KEY_PREVIOUS: MASTER_KEY })!;
    expect((await new SecretService(a.keygate.store, rotating, null, 'system').rewrap(CLI_CALLER)).rewrapped).toEqual(['openai']);

    expect((await adminA.call('DELETE', '/v1/secrets/openai?force=true')).status).toBe(200); // route llm names it
    await waitFor('b to stop injecting the removed secret', async () => (await proxied(b, '/llm/v1', user)).status !== 200, 2000);
  });

  it('users, groups, rate limits and quotas (set, charged, topped up, removed): written on one instance, applied on the other', async () => {
    expect((await adminA.post('/v1/groups', { tenant: 'acl', name: 'readers', permissions: ['read'], rateLimits: ['100/s'] })).status).toBe(201);
    expect((await adminA.post('/v1/users', { tenant: 'acl', name: 'ann', group: 'readers' })).status).toBe(201);
    const key = await adminA.post('/v1/keys', { tenant: 'acl', name: 'k', user: 'ann', quota: '3/day' });
    expect(key.status).toBe(201);
    expect((await adminA.call('PUT', '/v1/tenants/acl/limits', { body: { rateLimits: ['50/s'], quota: '1000 credits' } })).status).toBe(200);
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await fetch(`${b.url}/limited/x`, { headers: { 'x-api-key': key.json.key } })).status);
    expect(statuses).toEqual([200, 200, 429, 429]);
    expect((await fetch(`${b.url}/api/x`, { headers: { 'x-api-key': key.json.key } })).status).toBe(200);
    expect((await fetch(`${a.url}/api/x`, { headers: { 'x-api-key': key.json.key } })).status).toBe(429);
    expect((await adminB.post(`/v1/keys/${key.json.id}/quota/top-up`, { amount: 1 })).status).toBe(200);
    expect((await adminB.post('/v1/tenants/acl/quota/top-up', { amount: 5 })).status).toBe(200);
    const daily = await adminA.post('/v1/keys', { tenant: 'acl', name: 'daily', quota: '5/day' });
    expect((await adminA.post(`/v1/keys/${daily.json.id}/quota/top-up`, { amount: 2 })).json.remaining).toBe(7);
    expect((await adminA.patch(`/v1/keys/${daily.json.id}`, { quota: null })).json.quota).toBeNull();
    expect((await adminB.patch('/v1/users/acl/ann', { disabled: true })).status).toBe(200);
    expect((await fetch(`${a.url}/api/x`, { headers: { 'x-api-key': key.json.key } })).status).toBe(401);
    expect((await adminA.call('DELETE', '/v1/groups/acl/readers')).status).toBe(409);
  });

  it('console sign-out and webhook replay claims', async () => {
    const store = a.keygate.store;
    await store.endSession('s-acl-1', Date.now() + 60_000);
    expect(await b.keygate.store.isSessionEnded('s-acl-1')).toBe(true);
    expect(await b.keygate.store.isSessionEnded('s-acl-2')).toBe(false);
    expect(await store.claimOnce('delivery-acl', 60_000)).toBe(true);
    expect(await b.keygate.store.claimOnce('delivery-acl', 60_000)).toBe(false);
  });

  it('last-used: written when an instance stops', async () => {
    const created = (await adminA.post('/v1/keys', { tenant: 'acme', name: 'used' })).json as { key: string; id: string };
    expect((await proxied(b, '/api/used', created.key)).status).toBe(200);
    await b.stop();
    b = await startTestKeygate(b.config, { KEYGATE_MASTER_KEY: MASTER_KEY });
    expect((await adminA.get(`/v1/keys/${created.id}`)).json.lastUsedAt).not.toBeNull();
  });

  it('Redis refused nothing keygate asked for', async () => {
    expect(await aclRefusals(root)).toEqual([]);
  });
});

describe('what the documented user may not do', () => {
  const refused = async (...command: string[]) => {
    const error = await restricted.call(command[0]!, ...command.slice(1)).then(() => null, (e: Error) => e);
    // A script's refusal is reported as ERR "… can't access …", the rest as NOPERM.
    expect(error?.message, command.join(' ')).toMatch(/^NOPERM|can't access/);
  };

  it('no enumeration, monitoring, configuration or flushing', async () => {
    await refused('KEYS', '*');
    await refused('SCAN', '0');
    await refused('MONITOR');
    await refused('SLOWLOG', 'GET');
    await refused('CONFIG', 'GET', '*');
    await refused('FLUSHALL');
    await refused('ACL', 'LIST');
  });

  it('no keys or channels outside the prefix, not even through a script', async () => {
    await root.set('other:app', 'x');
    await refused('GET', 'other:app');
    await refused('SET', 'other:app', 'y');
    await refused('PUBLISH', 'other:channel', 'x');
    await refused('EVAL', "return redis.call('GET', 'other:app')", '0');
    expect(await root.get('other:app')).toBe('x');
    // Inside the prefix it may.
    expect(await restricted.call('GET', 'kg:audit:seq')).not.toBeNull();
  });
});

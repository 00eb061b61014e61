/**
 * Key lifecycle over time (issue 5) on the embedded store: rotation with and without an
 * overlap, sweeps that revoke and remind exactly once while two keygate instances share
 * one store file (and, for the store's atomicity, two OS processes), expiry on the request
 * path, and the batched last-used times.
 *
 * Instances A and B share a store file; their timers are set to an hour so that only the
 * sweeps a test runs itself happen. Instance C has fast timers to show the timers work.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseConfig } from '../../src/config/load.ts';
import { CLI_CALLER, KeyService } from '../../src/keys/service.ts';
import { EmbeddedStore } from '../../src/store/embedded/store.ts';
import { expectProblem, waitFor } from '../helpers/http.ts';
import { startUpstream, type TestUpstream } from '../helpers/upstream.ts';
import { adminClient, call, proxyGet, schemaProblems, shiftedService, startAdminKeygate, type AdminClient, type AdminTestKeygate } from '../helpers/admin.ts';
import { testHasher } from '../helpers/pepper.ts';

const DAY = 86_400_000;
const HOUR = 3_600_000;
const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
const hasher = testHasher;

let up: TestUpstream;
let shared: string;
let a: AdminTestKeygate, b: AdminTestKeygate;
let rootKey: string;
let rootId: string;
let adminA: AdminClient;
let adminB: AdminClient;
const issued: string[] = [];

const slow = { sweepMs: HOUR, lastUsedFlushMs: HOUR };
const routes = (url: string) => [{ name: 'api', pathPrefix: '/api', upstream: url, auth: { permissions: ['read'] } }];

async function createOk(client: AdminClient, body: Record<string, unknown>): Promise<{ key: string; id: string; body: any }> {
  const res = await client.post('/v1/keys', body);
  expect(res.status, res.text).toBe(201);
  issued.push(res.json.key);
  return { key: res.json.key, id: res.json.id, body: res.json };
}

async function rotate(client: AdminClient, id: string, body: Record<string, unknown>) {
  const res = await client.post(`/v1/keys/${id}/rotate`, body);
  if (typeof res.json?.key === 'string') issued.push(res.json.key);
  return res;
}

async function audit(): Promise<any[]> {
  const res = await adminA.get('/v1/audit?limit=500');
  expect(res.status).toBe(200);
  return res.json.entries;
}

const allEvents = () => [...a.events, ...b.events];

beforeAll(async () => {
  up = await startUpstream();
  shared = mkdtempSync(join(tmpdir(), 'keygate-shared-'));
  const store = { path: join(shared, 'keygate.db') };
  a = await startAdminKeygate({ store, lifecycle: slow, routes: routes(up.url) });
  b = await startAdminKeygate({ store, lifecycle: slow, routes: routes(up.url) });
  const root = await a.keys.create({ tenant: 'system', role: 'admin', name: 'root' });
  issued.push(root.key);
  [rootKey, rootId] = [root.key, root.record.id];
  adminA = adminClient(a.adminUrl, rootKey);
  adminB = adminClient(b.adminUrl, rootKey);
});

afterAll(async () => {
  await b?.stop();
  await a?.stop();
  await up?.close();
  if (shared) rmSync(shared, { recursive: true, force: true });
});

describe('rotation', () => {
  it('overlapSeconds 0: a successor with the same attributes, its key shown once; the old key is refused at once', async () => {
    const old = await createOk(adminA, { tenant: 'rot', name: 'rotating', user: 'alice', client: 'cli', permissions: ['read', 'extra'], expires: '90d' });
    // Cached as valid on both instances.
    for (const t of [a, b]) expect((await proxyGet(t.url, '/api/x', old.key)).status).toBe(200);

    const res = await rotate(adminA, old.id, { overlapSeconds: 0 });
    expect(res.status, res.text).toBe(201);
    const successor = res.json;
    expect(successor.key).toMatch(/^kg_rot_[0-9a-f]{64}$/);
    expect(successor.key).not.toBe(old.key);
    expect(successor.id).not.toBe(old.id);
    for (const field of ['tenant', 'name', 'role', 'permissions', 'group', 'user', 'client', 'expiresAt']) expect(successor[field], field).toEqual(old.body[field]);
    expect(successor).toMatchObject({ status: 'active', revokedAt: null, lastUsedAt: null });
    expect(successor.previous).toMatchObject({ id: old.id, status: 'revoked', revokedAt: expect.any(String) });

    expectProblem(await proxyGet(a.url, '/api/x', old.key), 401, 'key_revoked');
    await waitFor(async () => (await proxyGet(b.url, '/api/x', old.key)).status === 401, 2000, 20);
    for (const t of [a, b]) expect((await proxyGet(t.url, '/api/x', successor.key)).status).toBe(200);

    // Only the rotate response carried the key.
    const got = await adminB.get(`/v1/keys/${successor.id}`);
    expect(got.json).not.toHaveProperty('key');
    expect(got.text).not.toContain(successor.key.slice(-64));
    expect((await adminA.get(`/v1/keys/${old.id}`)).json.status).toBe('revoked');

    const entries = (await audit()).filter((e) => e.target === old.id || e.target === successor.id);
    expect(entries.map((e) => [e.action, e.target, e.actor])).toEqual([
      ['key.revoke', old.id, rootId],
      ['key.create', successor.id, rootId],
      ['key.rotate', old.id, rootId],
      ['key.create', old.id, rootId],
    ]);
    expect(entries[2].detail).toMatchObject({ successor: successor.id, overlapSeconds: 0 });
    expect(entries[1].detail).toMatchObject({ rotatedFrom: old.id });
  });

  it("the successor's expiry can be given; otherwise it is the old key's", async () => {
    const old = await createOk(adminA, { tenant: 'rot', name: 'rotate expiry', permissions: ['read'], expires: '30d' });
    const res = await rotate(adminA, old.id, { overlapSeconds: 0, expires: '365d' });
    expect(res.status, res.text).toBe(201);
    expect(Date.parse(res.json.expiresAt) - Date.parse(res.json.createdAt)).toBe(365 * DAY);
    const bad = await adminA.post(`/v1/keys/${res.json.id}/rotate`, { overlapSeconds: 0, expires: 'soon' });
    expectProblem(bad, 422, 'validation_failed');
    expect(bad.json.detail).toContain('body.expires');
    expect((await adminA.get(`/v1/keys/${res.json.id}`)).json.status).toBe('active');
  });

  it('the rotate response matches the schema /openapi.json documents for it', async () => {
    const doc = (await call(a.adminUrl, 'GET', '/openapi.json')).json;
    const documented = doc.paths['/v1/keys/{id}/rotate'].post.responses['201'].content['application/json'].schema;
    const old = await createOk(adminA, { tenant: 'rot', name: 'documented' });
    const res = await rotate(adminA, old.id, { overlapSeconds: 0 });
    expect(res.status, res.text).toBe(201);
    expect(schemaProblems(documented, res.json, doc.components.schemas)).toEqual([]);
  });

  it('with an overlap the old key works until it ends, is refused by both instances from then on, and exactly one of two sweeping instances revokes it', async () => {
    const olds: { key: string; id: string }[] = [];
    for (let i = 0; i < 3; i++) olds.push(await createOk(adminA, { tenant: 'overlap', name: `overlap ${i}`, permissions: ['read'] }));
    // Cached by both before the rotation: the instance that did not rotate learns of it from the file.
    for (const t of [a, b]) for (const k of olds) expect((await proxyGet(t.url, '/api/x', k.key)).status).toBe(200);
    const successors: { key: string; id: string; createdAt: string; previous: { revokesAt: string } }[] = [];
    for (const [n, old] of olds.entries()) {
      // Through either instance's admin API: both write to the one store.
      const res = await rotate(n % 2 === 0 ? adminA : adminB, old.id, { overlapSeconds: 3 });
      expect(res.status, res.text).toBe(201);
      expect(res.json.previous).toMatchObject({ id: old.id, status: 'active', revokedAt: null });
      expect(Date.parse(res.json.previous.revokesAt) - Date.parse(res.json.createdAt)).toBe(3000);
      successors.push(res.json);
    }
    const revokesAt = successors.map((s) => Date.parse(s.previous.revokesAt));
    // During the overlap both keys work everywhere, and a sweep changes nothing. (3 s: the
    // rotations, sweeps and twelve requests must all fit inside it on a busy CI machine.)
    await Promise.all([a.keygate.jobs.sweep(), b.keygate.jobs.sweep()]);
    for (const t of [a, b]) {
      for (const k of [...olds, ...successors]) expect((await proxyGet(t.url, '/api/x', k.key)).status).toBe(200);
    }
    expect(Date.now()).toBeLessThan(Math.min(...revokesAt));
    expect((await audit()).filter((e) => e.action === 'key.revoke' && olds.some((o) => o.id === e.target))).toEqual([]);

    // Once the overlap has ended, before any sweep: refused by both, as revoked.
    await sleep(Math.max(0, Math.max(...revokesAt) + 5 - Date.now()));
    for (const t of [a, b]) for (const old of olds) expectProblem(await proxyGet(t.url, '/api/x', old.key), 401, 'key_revoked');
    // …and listed as revoked (keyState), though no sweep has written that to the store yet.
    for (const old of olds) expect((await adminB.get(`/v1/keys/${old.id}`)).json).toMatchObject({ status: 'revoked', revokedAt: null });

    await Promise.all([a.keygate.jobs.sweep(), b.keygate.jobs.sweep(), b.keygate.jobs.sweep(), a.keygate.jobs.sweep()]);
    await Promise.all([a.keygate.jobs.sweep(), b.keygate.jobs.sweep()]);

    for (const old of olds) {
      expectProblem(await proxyGet(a.url, '/api/x', old.key), 401, 'key_revoked');
      expect((await adminB.get(`/v1/keys/${old.id}`)).json).toMatchObject({ status: 'revoked', revokedAt: expect.any(String) });
      const revokes = (await audit()).filter((e) => e.action === 'key.revoke' && e.target === old.id);
      expect(revokes).toHaveLength(1);
      expect(revokes[0]).toMatchObject({ actor: 'keygate', tenant: 'overlap', detail: { reason: 'rotation overlap ended' } });
      const notified = allEvents().filter((e) => e.type === 'key.revoked' && e.target.keyId === old.id);
      expect(notified).toHaveLength(1);
      expect(notified[0]!.actor).toBe('keygate');
    }
    for (const s of successors) for (const t of [a, b]) expect((await proxyGet(t.url, '/api/x', s.key)).status).toBe(200);
  });
});

describe('expiry', () => {
  it('an expired key gets 401 key_expired, even while its earlier answer is cached', async () => {
    const soon = new Date(Date.now() + 300).toISOString();
    const k = await createOk(adminA, { tenant: 'exp', name: 'short lived', permissions: ['read'], expires: soon });
    expect((await proxyGet(a.url, '/api/x', k.key)).status).toBe(200);
    await sleep(Math.max(0, Date.parse(soon) - Date.now() + 20));
    expectProblem(await proxyGet(a.url, '/api/x', k.key), 401, 'key_expired');
    // Never seen by B before: refused from the store as well.
    expectProblem(await proxyGet(b.url, '/api/x', k.key), 401, 'key_expired');
    // Expiry does not turn the key into a revoked one: it is listed as expired, as the proxy treats it.
    expect((await adminA.get(`/v1/keys/${k.id}`)).json).toMatchObject({ status: 'expired', expiresAt: soon, revokedAt: null });
  });

  it('reminders at 30 days, 7 days and on the day, and key.expire after: each once per key with two instances sweeping', async () => {
    let now = Date.now();
    let dayEnd = (Math.floor(now / DAY) + 1) * DAY;
    if (dayEnd - now < 10_000) {
      // Too close to UTC midnight to have a "today" key that is still valid: wait for the new day.
      await sleep(dayEnd - now + 20);
      now = Date.now();
      dayEnd = (Math.floor(now / DAY) + 1) * DAY;
    }
    const at = (ms: number) => new Date(now + ms).toISOString();
    const k20 = await createOk(adminA, { tenant: 'remind', name: 'in 20 days', expires: at(20 * DAY) });
    const k5 = await createOk(adminA, { tenant: 'remind', name: 'in 5 days', expires: at(5 * DAY) });
    const kToday = await createOk(adminA, { tenant: 'remind', name: 'today', expires: at(Math.min(3 * HOUR, Math.floor((dayEnd - now) / 2))) });
    const k40 = await createOk(adminA, { tenant: 'remind', name: 'in 40 days', expires: at(40 * DAY) });
    const kNever = await createOk(adminA, { tenant: 'remind', name: 'never' });
    const kRevoked = await createOk(adminA, { tenant: 'remind', name: 'revoked, in 5 days', expires: at(5 * DAY) });
    await adminA.post(`/v1/keys/${kRevoked.id}/revoke`);
    // Expired yesterday (the service refuses past dates, so it is created with yesterday's clock).
    const expired = await shiftedService(a, -31 * DAY).create(CLI_CALLER, { tenant: 'remind', name: 'expired yesterday', expires: '30d' });
    issued.push(expired.key);
    expectProblem(await proxyGet(b.url, '/api/x', expired.key), 401, 'key_expired');

    const sweepAll = () => Promise.all([a.keygate.jobs.sweep(), b.keygate.jobs.sweep(), b.keygate.jobs.sweep(), a.keygate.jobs.sweep()]);
    await sweepAll();
    await sweepAll();

    const expiring = allEvents().filter((e) => e.tenant === 'remind' && e.type === 'key.expiring');
    expect(expiring.map((e) => [e.target.keyId, e.target.reminder]).sort()).toEqual(
      [
        [k20.id, '30d'],
        [k5.id, '7d'],
        [kToday.id, 'today'],
      ].sort(),
    );
    for (const e of expiring) expect(e).toMatchObject({ actor: null, id: expect.stringMatching(/^evt_/), target: { prefix: expect.stringMatching(/^kg_remind_[0-9a-f]{4}…$/), expiresAt: expect.any(Number) } });
    for (const quiet of [k40, kNever, kRevoked]) expect(allEvents().filter((e) => e.target.keyId === quiet.id && (e.type === 'key.expiring' || e.type === 'key.expired'))).toEqual([]);

    const expiredEvents = allEvents().filter((e) => e.tenant === 'remind' && e.type === 'key.expired');
    expect(expiredEvents.map((e) => e.target.keyId)).toEqual([expired.record.id]);
    const expireAudit = (await audit()).filter((e) => e.tenant === 'remind' && e.action === 'key.expire');
    expect(expireAudit).toHaveLength(1);
    expect(expireAudit[0]).toMatchObject({ actor: 'keygate', tenant: 'remind', target: expired.record.id, detail: { name: 'expired yesterday' } });
  });

  it('two OS processes sweeping one store file revoke and remind exactly once', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'keygate-procs-'));
    const path = join(dir, 'keygate.db');
    const store = new EmbeddedStore({ path });
    try {
      const service = new KeyService(store, hasher, parseConfig({}, 'test'));
      const due: string[] = [];
      const expiring: string[] = [];
      for (let n = 0; n < 30; n++) {
        const r = await service.create(CLI_CALLER, { tenant: 'procs', name: `due ${n}` });
        await store.scheduleRevocation(r.record.id, Date.now() - 1);
        due.push(r.record.id);
        expiring.push((await service.create(CLI_CALLER, { tenant: 'procs', name: `expiring ${n}`, expires: '5d' })).record.id);
      }
      const script = `
        const root = process.env.KG_ROOT;
        const { EmbeddedStore } = await import(root + 'src/store/embedded/store.ts');
        const { EventSink } = await import(root + 'src/events/event-sink.ts');
        const { LastUsed } = await import(root + 'src/events/last-used.ts');
        const { LifecycleJobs } = await import(root + 'src/events/lifecycle-jobs.ts');
        const store = new EmbeddedStore({ path: process.env.KG_STORE });
        const seen = [];
        const events = new EventSink(store, (e) => seen.push([e.type, e.target.keyId, e.target.reminder ?? null]), null);
        const jobs = new LifecycleJobs({ store, events, lastUsed: new LastUsed(), logger: { warn() {} }, sweepMs: 3600000, lastUsedFlushMs: 3600000 });
        process.stdout.write('ready\\n');
        process.stdin.once('data', async () => {
          await jobs.sweep();
          await store.close();
          process.stdout.write(JSON.stringify(seen) + '\\n');
          process.exit(0);
        });
      `;
      const children = [0, 1].map(() => {
        const child = spawn(process.execPath, ['--no-warnings', '--input-type=module', '-e', script], {
          env: { ...process.env, KG_ROOT: pathToFileURL(REPO_ROOT).href, KG_STORE: path },
          stdio: ['pipe', 'pipe', 'inherit'],
        });
        let out = '';
        child.stdout!.on('data', (c: Buffer) => (out += String(c)));
        return { child, out: () => out, exited: once(child, 'exit') };
      });
      try {
        await waitFor(() => children.every((c) => c.out().startsWith('ready\n')), 10_000, 10);
        for (const c of children) c.child.stdin!.write('go\n');
        const codes = await Promise.all(children.map((c) => c.exited));
        expect(codes.map(([code]) => code)).toEqual([0, 0]);
      } finally {
        for (const c of children) if (c.child.exitCode === null) c.child.kill('SIGKILL');
      }
      const seen = children.flatMap((c) => JSON.parse(c.out().split('\n')[1]!) as [string, string, string | null][]);
      expect(seen.filter(([type]) => type === 'key.revoked').map(([, id]) => id).sort()).toEqual([...due].sort());
      expect(seen.filter(([type]) => type === 'key.expiring').map(([, id, stage]) => `${id}:${stage}`).sort()).toEqual(expiring.map((id) => `${id}:7d`).sort());
      expect(seen).toHaveLength(due.length + expiring.length);
      const entries = (await store.listAudit({ limit: 500 })).entries;
      expect(entries.filter((e) => e.action === 'key.revoke' && e.actor === 'keygate').map((e) => e.target).sort()).toEqual([...due].sort());
      for (const id of due) expect((await store.get(id))!.status).toBe('revoked');
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('last used', () => {
  it('is set after a flush and shown in listings; many requests make one store write per key', async () => {
    const touch = vi.spyOn(a.keygate.store, 'touch');
    try {
      // Write out whatever earlier tests left pending, then count from zero.
      await a.keygate.jobs.stop();
      touch.mockClear();
      const busy = await createOk(adminA, { tenant: 'used', name: 'busy', permissions: ['read'] });
      const quiet = await createOk(adminA, { tenant: 'used', name: 'quiet', permissions: ['read'] });
      const idle = await createOk(adminA, { tenant: 'used', name: 'idle', permissions: ['read'] });
      const start = Date.now();
      const results = await Promise.all([
        ...Array.from({ length: 40 }, () => proxyGet(a.url, '/api/x', busy.key)),
        ...Array.from({ length: 3 }, () => proxyGet(a.url, '/api/x', quiet.key)),
      ]);
      expect(results.every((r) => r.status === 200)).toBe(true);
      const end = Date.now();
      // Nothing written on the request path.
      expect(touch).not.toHaveBeenCalled();
      expect((await adminA.get(`/v1/keys/${busy.id}`)).json.lastUsedAt).toBeNull();

      await a.keygate.jobs.stop();
      expect(touch).toHaveBeenCalledTimes(1);
      const batch = touch.mock.calls[0]![0];
      expect([...batch.keys()].sort()).toEqual([busy.id, quiet.id].sort());
      for (const at of batch.values()) expect(at).toBeGreaterThanOrEqual(start);

      const listed = (await adminB.get('/v1/keys?tenant=used')).json.keys;
      const byId = Object.fromEntries(listed.map((k: { id: string }) => [k.id, k]));
      for (const id of [busy.id, quiet.id]) {
        const lastUsed = Date.parse(byId[id].lastUsedAt);
        expect(lastUsed).toBeGreaterThanOrEqual(start);
        expect(lastUsed).toBeLessThanOrEqual(end);
      }
      expect(byId[idle.id].lastUsedAt).toBeNull();

      // A refused request is not a use.
      await adminA.post(`/v1/keys/${quiet.id}/revoke`);
      expect((await proxyGet(a.url, '/api/x', quiet.key)).status).toBe(401);
      await a.keygate.jobs.stop();
      expect(touch).toHaveBeenCalledTimes(1);
    } finally {
      touch.mockRestore();
    }
  });

  it('the timers flush last-used times and sweep on their own', async () => {
    const c = await startAdminKeygate({ lifecycle: { sweepMs: 50, lastUsedFlushMs: 50 }, routes: routes(up.url) });
    try {
      const cRoot = await c.keys.create({ tenant: 'system', role: 'admin', name: 'c root' });
      issued.push(cRoot.key);
      const admin = adminClient(c.adminUrl, cRoot.key);
      const k = await createOk(admin, { tenant: 'timers', name: 'used', permissions: ['read'] });
      expect((await proxyGet(c.url, '/api/x', k.key)).status).toBe(200);
      await waitFor(async () => (await admin.get(`/v1/keys/${k.id}`)).json.lastUsedAt !== null, 3000, 20);
      const expired = await shiftedService(c, -31 * DAY).create(CLI_CALLER, { tenant: 'timers', name: 'expired', expires: '30d' });
      issued.push(expired.key);
      await waitFor(() => c.events.some((e) => e.type === 'key.expired' && e.target.keyId === expired.record.id), 3000, 20);
      await sleep(150);
      expect(c.events.filter((e) => e.type === 'key.expired')).toHaveLength(1);
    } finally {
      await c.stop();
    }
  });
});

describe('no key leaves keygate', () => {
  it('no full key or hash in the audit log, notifications or logs of either instance', async () => {
    const auditText = (await adminA.get('/v1/audit?limit=500')).text;
    const texts = { audit: auditText, logsA: a.logs(), logsB: b.logs(), events: JSON.stringify(allEvents()) };
    expect(issued.length).toBeGreaterThan(10);
    for (const key of issued) {
      for (const [where, text] of Object.entries(texts)) {
        expect(text.includes(key.slice(-64)), `${where} contains a key`).toBe(false);
        expect(text.includes(hasher(key)), `${where} contains a key hash`).toBe(false);
      }
    }
  });
});

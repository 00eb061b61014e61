/**
 * Where a stored secret is used (issue 19), against a real admin listener on the embedded
 * store and on a real redis-server: GET /v1/secrets lists each secret's usages by the
 * configuration in force, GET /v1/secrets/{id}/usages answers for one id (a dangling
 * reference with stored: false; 404 for an id that is neither stored nor named), DELETE is
 * refused with 409 naming every usage unless ?force=true, a forced removal is audited with
 * the usages it broke, and the usages follow POST /v1/reload both ways. Hostile callers: a
 * tenant-scoped admin or a plain key gets 403 and learns nothing (the same answer for a
 * used, an unused and an unknown id); bad ids and bad `force` values are 4xx, never 500,
 * and delete nothing. No response or log line carries a secret value.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RawConfig } from '../../src/config/schema.ts';
import { createLoggers } from '../../src/observability/logger.ts';
import { startKeygate, type Keygate } from '../../src/server.ts';
import { adminClient, call, expectInvalid, schemaProblems, type AdminClient, type ApiResponse } from '../helpers/admin.ts';
import { expectProblem, rawRequest } from '../helpers/http.ts';
import { captureStream, testConfig } from '../helpers/keygate.ts';
import { TEST_PEPPER } from '../helpers/pepper.ts';
import { redisStore, startRedis, type RedisWithClient } from '../helpers/redis-fixture.ts';
import { startUpstream, type TestUpstream } from '../helpers/upstream.ts';

const MASTER_KEY = randomBytes(32).toString('base64');
const VALUES: Record<string, string> = {
  openai: `sk-usage-${randomBytes(16).toString('hex')}`,
  'openai-v2': `sk-usage-v2-${randomBytes(16).toString('hex')}`,
  'stripe-old': `whsec_${randomBytes(24).toString('base64')}`,
  'stripe-new': `whsec_${randomBytes(24).toString('base64')}`,
  spare: `spare-${randomBytes(16).toString('hex')}`,
};

let up: TestUpstream;

beforeAll(async () => {
  up = await startUpstream((req, res) => {
    req.resume();
    req.on('end', () => res.end('ok'));
  });
});
afterAll(async () => {
  await up?.close();
});

/** llm and llm-eu inject "openai"; stripe verifies with stripe-old and stripe-new; ghost names a secret never stored. */
function routes(llmSecret = 'openai'): NonNullable<RawConfig['routes']> {
  return [
    { name: 'llm', pathPrefix: '/llm', upstream: up.url, secret: { id: llmSecret, header: 'authorization', template: 'Bearer {value}' } },
    { name: 'llm-eu', pathPrefix: '/llm-eu', upstream: up.url, secret: { id: llmSecret, header: 'x-upstream-token' } },
    { name: 'stripe', pathPrefix: '/hooks/stripe', upstream: up.url, auth: { required: false }, webhook: { scheme: 'stripe', secrets: ['stripe-old', 'stripe-new'] } },
    { name: 'ghost', pathPrefix: '/ghost', upstream: up.url, secret: { id: 'ghost', header: 'authorization' } },
    { name: 'plain', pathPrefix: '/plain', upstream: up.url },
  ];
}

interface Running {
  keygate: Keygate;
  adminUrl: string;
  logs(): string;
  /** What the next reload reads. */
  next: RawConfig;
  stop(): Promise<void>;
}

/** A keygate whose reload (POST /v1/reload) reads `running.next`. */
async function start(store: RawConfig['store']): Promise<Running> {
  const dir = mkdtempSync(join(tmpdir(), 'keygate-usages-'));
  const raw: RawConfig = { store, routes: routes(), log: { level: 'info', access: false } };
  const capture = captureStream();
  const { logger, access } = createLoggers({ level: 'info', destination: capture.stream });
  const running: Running = {
    next: raw,
    keygate: undefined as unknown as Keygate,
    adminUrl: '',
    logs: capture.text,
    async stop() {
      try {
        await running.keygate?.close(500);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
  try {
    running.keygate = await startKeygate({
      config: testConfig(raw, dir),
      env: { KEYGATE_PEPPER: TEST_PEPPER, KEYGATE_MASTER_KEY: MASTER_KEY },
      logger,
      accessLogger: access,
      reloadConfig: () => testConfig(running.next, dir),
    });
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  running.adminUrl = `http://127.0.0.1:${running.keygate.adminPort}`;
  return running;
}

const backends: [string, () => Promise<{ running: Running; stop(): Promise<void> }>][] = [
  [
    'embedded store',
    async () => {
      const running = await start(undefined);
      return { running, stop: () => running.stop() };
    },
  ],
  [
    'Redis',
    async () => {
      const redis: RedisWithClient = await startRedis();
      try {
        const running = await start(redisStore(redis.redis, 1000));
        return {
          running,
          async stop() {
            await running.stop();
            await redis.stop();
          },
        };
      } catch (error) {
        await redis.stop();
        throw error;
      }
    },
  ],
];

describe.each(backends)('secret usages on the %s', (_, setUp) => {
  let t: Running;
  let stopAll: () => Promise<void>;
  let admin: AdminClient;
  let tenantAdmin: AdminClient;
  let plainKey: AdminClient;
  let userKey: string;
  let openapi: any;
  /** Every admin response of this block: none may carry a value. */
  const seen: ApiResponse[] = [];

  const api = async (client: AdminClient, method: string, path: string, body?: unknown) => {
    const res = body === undefined ? await client.call(method, path) : await client.call(method, path, { body });
    seen.push(res);
    return res;
  };
  const conforms = (schemaId: string, value: unknown) => expect(schemaProblems({ $ref: `#/components/schemas/${schemaId}` }, value, openapi.components.schemas)).toEqual([]);
  const stored = async () => (await t.keygate.store.listSecrets()).map((s) => s.id).sort();
  /** What the upstream got in `header` through `path`, or keygate's own status. */
  const injected = async (path: string, header = 'authorization') => {
    const before = up.received.length;
    const res = await rawRequest(`http://127.0.0.1:${t.keygate.proxyPort}`, { path, headers: { 'x-api-key': userKey } });
    return res.status === 200 ? String(up.received[before]!.headers[header]) : res.status;
  };
  const reload = async (raw: RawConfig) => {
    t.next = raw;
    const res = await api(admin, 'POST', '/v1/reload');
    expect(res.status, res.text).toBe(200);
  };

  beforeAll(async () => {
    ({ running: t, stop: stopAll } = await setUp());
    const keys = t.keygate.service;
    const { CLI_CALLER } = await import('../../src/keys/service.ts');
    admin = adminClient(t.adminUrl, (await keys.create(CLI_CALLER, { tenant: 'system', role: 'admin', name: 'root' })).key);
    tenantAdmin = adminClient(t.adminUrl, (await keys.create(CLI_CALLER, { tenant: 'acme', name: 'acme-admin', permissions: ['keys:manage'] })).key);
    plainKey = adminClient(t.adminUrl, (await keys.create(CLI_CALLER, { tenant: 'acme', name: 'plain' })).key);
    userKey = (await keys.create(CLI_CALLER, { tenant: 'acme', name: 'agent' })).key;
    openapi = (await call(t.adminUrl, 'GET', '/openapi.json')).json;
    for (const id of ['openai', 'stripe-old', 'stripe-new', 'spare']) {
      const res = await api(admin, 'POST', '/v1/secrets', { id, name: `${id} token`, value: VALUES[id] });
      expect(res.status, res.text).toBe(201);
    }
  });

  afterAll(async () => {
    await stopAll?.();
  });

  it('lists every secret with where the configuration in force uses it ("spare": not used)', async () => {
    const res = await api(admin, 'GET', '/v1/secrets');
    expect(res.status, res.text).toBe(200);
    const byId = Object.fromEntries(res.json.secrets.map((s: { id: string; usages: unknown[] }) => [s.id, s.usages]));
    expect(byId).toEqual({
      openai: [
        { kind: 'route_secret', route: 'llm', path: 'routes[0].secret.id' },
        { kind: 'route_secret', route: 'llm-eu', path: 'routes[1].secret.id' },
      ],
      'stripe-old': [{ kind: 'webhook_verifier', route: 'stripe', path: 'routes[2].webhook.secrets[0]' }],
      'stripe-new': [{ kind: 'webhook_verifier', route: 'stripe', path: 'routes[2].webhook.secrets[1]' }],
      spare: [],
    });
    for (const secret of res.json.secrets) conforms('ListedSecret', secret);
  });

  it('GET /v1/secrets/{id}/usages: stored and used, stored and unused, named but not stored, neither', async () => {
    const used = await api(admin, 'GET', '/v1/secrets/openai/usages');
    expect(used.status, used.text).toBe(200);
    expect(used.json).toEqual({
      id: 'openai',
      name: 'openai token',
      stored: true,
      usages: [
        { kind: 'route_secret', route: 'llm', path: 'routes[0].secret.id' },
        { kind: 'route_secret', route: 'llm-eu', path: 'routes[1].secret.id' },
      ],
    });
    conforms('SecretUsages', used.json);
    expect((await api(admin, 'GET', '/v1/secrets/spare/usages')).json).toEqual({ id: 'spare', name: 'spare token', stored: true, usages: [] });
    const dangling = await api(admin, 'GET', '/v1/secrets/ghost/usages');
    expect(dangling.status, dangling.text).toBe(200);
    expect(dangling.json).toEqual({ id: 'ghost', name: null, stored: false, usages: [{ kind: 'route_secret', route: 'ghost', path: 'routes[3].secret.id' }] });
    conforms('SecretUsages', dangling.json);
    expectProblem(await api(admin, 'GET', '/v1/secrets/nope/usages'), 404, 'not_found');
    expect(Object.keys(openapi.paths['/v1/secrets/{id}/usages'])).toEqual(['get']);
    expect(openapi.paths['/v1/secrets/{id}'].delete.parameters.map((p: { name: string }) => p.name)).toEqual(['id', 'force']);
    expect(openapi.paths['/v1/secrets/{id}'].delete.responses['409']).toBeDefined();
  });

  it('DELETE of a secret in use: 409 conflict naming every usage; nothing removed, still injected', async () => {
    const refused = await api(admin, 'DELETE', '/v1/secrets/openai');
    expectProblem(refused, 409, 'conflict');
    expect(refused.json.detail).toContain('route llm (routes[0].secret.id)');
    expect(refused.json.detail).toContain('route llm-eu (routes[1].secret.id)');
    expect(refused.json.detail).toContain('force=true');
    const hook = await api(admin, 'DELETE', '/v1/secrets/stripe-new?force=false');
    expectProblem(hook, 409, 'conflict');
    expect(hook.json.detail).toContain('webhook verifier of route stripe (routes[2].webhook.secrets[1])');
    expect(await stored()).toEqual(['openai', 'spare', 'stripe-new', 'stripe-old']);
    expect(await injected('/llm/x')).toBe(`Bearer ${VALUES.openai}`);
    expect(await injected('/llm-eu/x', 'x-upstream-token')).toBe(VALUES.openai);
    // A name the config uses but the store lacks is still 404: there is nothing to remove.
    expectProblem(await api(admin, 'DELETE', '/v1/secrets/ghost'), 404, 'not_found');
  });

  it('DELETE of an unused secret needs no force, and is audited without "forced"', async () => {
    const removed = await api(admin, 'DELETE', '/v1/secrets/spare');
    expect(removed.status, removed.text).toBe(200);
    expect(removed.json).toMatchObject({ id: 'spare', removed: true, usages: [] });
    conforms('RemovedSecret', removed.json);
    const entry = (await api(admin, 'GET', '/v1/audit?limit=1')).json.entries[0];
    expect(entry).toMatchObject({ action: 'secret.remove', target: 'spare' });
    expect(entry.detail.forced).toBeUndefined();
  });

  it('?force=true removes a secret in use, answers and audits the usages it broke', async () => {
    const removed = await api(admin, 'DELETE', '/v1/secrets/stripe-old?force=true');
    expect(removed.status, removed.text).toBe(200);
    expect(removed.json).toMatchObject({ id: 'stripe-old', removed: true, usages: [{ kind: 'webhook_verifier', route: 'stripe', path: 'routes[2].webhook.secrets[0]' }] });
    conforms('RemovedSecret', removed.json);
    expect(await stored()).toEqual(['openai', 'stripe-new']);
    const entry = (await api(admin, 'GET', '/v1/audit?limit=1')).json.entries[0];
    expect(entry).toMatchObject({
      action: 'secret.remove',
      target: 'stripe-old',
      detail: { name: 'stripe-old token', forced: true, brokenUsages: 'webhook verifier of route stripe (routes[2].webhook.secrets[0])' },
    });
    // The configuration still names it: a dangling reference now.
    expect((await api(admin, 'GET', '/v1/secrets/stripe-old/usages')).json).toMatchObject({ stored: false, usages: [{ route: 'stripe' }] });
  });

  it('follows POST /v1/reload: repointed routes free the old secret (removed without force) and hold the new one', async () => {
    expect((await api(admin, 'POST', '/v1/secrets', { id: 'openai-v2', name: 'openai v2', value: VALUES['openai-v2'] })).status).toBe(201);
    expect((await api(admin, 'GET', '/v1/secrets/openai-v2/usages')).json.usages).toEqual([]);
    // Rotation: both routes point at the new secret, then reload.
    await reload({ ...t.next, routes: routes('openai-v2') });
    expect(t.keygate.config.routes[0]!.secret!.id).toBe('openai-v2');
    expect((await api(admin, 'GET', '/v1/secrets/openai/usages')).json).toEqual({ id: 'openai', name: 'openai token', stored: true, usages: [] });
    expect((await api(admin, 'GET', '/v1/secrets/openai-v2/usages')).json.usages.map((u: { route: string }) => u.route)).toEqual(['llm', 'llm-eu']);
    expectProblem(await api(admin, 'DELETE', '/v1/secrets/openai-v2'), 409, 'conflict');
    const removed = await api(admin, 'DELETE', '/v1/secrets/openai');
    expect(removed.status, removed.text).toBe(200);
    expect(removed.json.usages).toEqual([]);
    expect(await injected('/llm/y')).toBe(`Bearer ${VALUES['openai-v2']}`);
    // And back: a reload that names a secret again protects it again.
    await reload({ ...t.next, routes: routes('openai-v2').filter((r) => r.name !== 'llm' && r.name !== 'llm-eu') });
    expect((await api(admin, 'GET', '/v1/secrets/openai-v2/usages')).json.usages).toEqual([]);
    await reload({ ...t.next, routes: routes('openai-v2') });
    expectProblem(await api(admin, 'DELETE', '/v1/secrets/openai-v2'), 409, 'conflict');
    // A refused reload leaves the usages of the configuration still in force.
    t.next = { ...t.next, routes: [{ name: 'broken', pathPrefix: 'no-slash', upstream: up.url }] };
    expect((await api(admin, 'POST', '/v1/reload')).status).toBe(422);
    expect((await api(admin, 'GET', '/v1/secrets/openai-v2/usages')).json.usages).toHaveLength(2);
  });

  it('a tenant-scoped admin or a plain key gets 403 and learns nothing, whatever the id', async () => {
    for (const client of [tenantAdmin, plainKey]) {
      const answers = [];
      for (const path of ['/v1/secrets/openai-v2/usages', '/v1/secrets/stripe-new/usages', '/v1/secrets/ghost/usages', '/v1/secrets/nope/usages', '/v1/secrets/BAD!/usages']) {
        const res = await api(client, 'GET', path);
        expectProblem(res, 403, 'forbidden');
        answers.push(res.text);
      }
      for (const path of ['/v1/secrets/openai-v2?force=true', '/v1/secrets/nope?force=true', '/v1/secrets/openai-v2?force=bogus']) {
        const res = await api(client, 'DELETE', path);
        expectProblem(res, 403, 'forbidden');
        answers.push(res.text);
      }
      expect(new Set(answers).size).toBe(1);
      const list = await api(client, 'GET', '/v1/secrets');
      expectProblem(list, 403, 'forbidden');
      expect(list.text).not.toContain('openai');
    }
    expectProblem(await call(t.adminUrl, 'GET', '/v1/secrets/openai-v2/usages'), 401, 'missing_credentials');
    expect(await stored()).toEqual(['openai-v2', 'stripe-new']);
    const audit = await api(tenantAdmin, 'GET', '/v1/audit?limit=200');
    expect(audit.status, audit.text).toBe(200);
    // Only its own failed calls (their paths are what it sent): no secret entry, name or usage.
    expect(audit.json.entries.map((e: { action: string }) => e.action)).not.toContain('secret.remove');
    expect(audit.text).not.toMatch(/"action":"secret\.|brokenUsages|token"|stripe-old|routes\[/);
  });

  it('bad ids and bad force values are 4xx naming the field, never 500, and remove nothing', async () => {
    expectInvalid(await api(admin, 'GET', '/v1/secrets/BAD!/usages'), 'path.id');
    expectInvalid(await api(admin, 'DELETE', '/v1/secrets/Upper'), 'path.id');
    expectInvalid(await api(admin, 'DELETE', `/v1/secrets/${'a'.repeat(65)}?force=true`), 'path.id');
    expectInvalid(await api(admin, 'DELETE', '/v1/secrets/a%2Fb?force=true'), 'path.id');
    expectInvalid(await api(admin, 'GET', `/v1/secrets/${encodeURIComponent('../openai-v2')}/usages`), 'path.id');
    expectProblem(await api(admin, 'DELETE', '/v1/secrets/%E0%A4%A'), 400, 'bad_request');
    expectProblem(await api(admin, 'GET', '/v1/secrets/%ZZ/usages'), 400, 'bad_request');
    for (const query of ['force=yes', 'force=TRUE', 'force=1', 'force=', 'force']) expectInvalid(await api(admin, 'DELETE', `/v1/secrets/openai-v2?${query}`), 'query.force');
    expectInvalid(await api(admin, 'DELETE', '/v1/secrets/openai-v2?force=true&force=false'), 'query.force');
    expectInvalid(await api(admin, 'DELETE', '/v1/secrets/openai-v2?forse=true'), 'forse');
    expectProblem(await api(admin, 'POST', '/v1/secrets/openai-v2/usages'), 405, 'method_not_allowed');
    expect(await stored()).toEqual(['openai-v2', 'stripe-new']);
    expect(seen.filter((r) => r.status >= 500)).toEqual([]);
  });

  it('never returns or logs a secret value', () => {
    const texts = [...seen.map((r) => r.text), t.logs()];
    for (const value of Object.values(VALUES)) for (const text of texts) expect(text.includes(value)).toBe(false);
  });
});

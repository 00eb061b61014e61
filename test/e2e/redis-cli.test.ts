/**
 * The user's view of Redis mode, as black boxes: two `keygate serve` processes started
 * with KEYGATE_REDIS_URL (the only change from the embedded store) and the `keys` CLI
 * against the same Redis, with the same flags as ever.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseJsonOutput, runKeygate, spawnKeygate, tempDir, type KeygateProcess, type TempDir } from '../helpers/process.ts';
import { freePort, startRedisServer, waitFor, type RedisServer } from '../helpers/redis-server.ts';
import { startUpstream, type TestUpstream } from '../helpers/upstream.ts';

let redis: RedisServer;
let upstream: TestUpstream;
let dir: TempDir;
let configFile: string;
let instances: KeygateProcess[] = [];
let env: NodeJS.ProcessEnv;

async function call(instance: KeygateProcess, key: string): Promise<{ status: number; code?: string }> {
  const res = await fetch(`${instance.url}/api/thing`, { headers: { 'x-api-key': key } });
  const text = await res.text();
  return { status: res.status, code: res.status === 200 ? undefined : (JSON.parse(text) as { code: string }).code };
}

async function cli(args: string[], extraEnv: NodeJS.ProcessEnv = {}) {
  const started = Date.now();
  const result = await runKeygate([...args, '--config', configFile], { env: { ...env, ...extraEnv }, timeoutMs: 15_000 });
  return { ...result, ms: Date.now() - started };
}

async function metric(instance: KeygateProcess, name: string): Promise<number> {
  const text = await (await fetch(`${instance.adminUrl}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? NaN : Number(line.split(' ')[1]);
}

beforeAll(async () => {
  redis = await startRedisServer();
  upstream = await startUpstream();
  dir = tempDir();
  env = { KEYGATE_REDIS_URL: redis.url };
  configFile = dir.writeYaml('keygate.yaml', {
    listen: { host: '127.0.0.1', port: 0 },
    admin: { host: '127.0.0.1', port: 0 },
    routes: [{ name: 'api', pathPrefix: '/api', upstream: upstream.url }],
    log: { level: 'info', access: false },
  });
  instances = await Promise.all([spawnKeygate(configFile, { env }), spawnKeygate(configFile, { env })]);
}, 30_000);

afterAll(async () => {
  await Promise.all(instances.map((i) => i.stop()));
  await upstream?.close();
  await redis?.stop();
  dir?.remove();
});

describe('keygate serve with KEYGATE_REDIS_URL, and the keys CLI', () => {
  it('both instances are on Redis and subscribed', async () => {
    for (const instance of instances) {
      const res = await fetch(`${instance.adminUrl}/readyz`);
      expect(await res.json()).toMatchObject({ status: 'ready', checks: { store: 'ok', revocationFeed: 'ok' } });
      expect(instance.logLines().find((l) => l.msg === 'keygate listening')).toMatchObject({ store: 'redis' });
    }
  });

  it('a key created with the CLI works on both; revoked with the CLI, both refuse it', async () => {
    const created = await cli(['keys', 'create', '--tenant', 'acme', '--name', 'from the cli', '--permissions', 'read', '--json']);
    const { id, key, tenant } = parseJsonOutput<{ id: string; key: string; tenant: string }>(created);
    expect(tenant).toBe('acme');
    expect(created.ms).toBeLessThan(5000);
    for (const instance of instances) expect((await call(instance, key)).status).toBe(200);

    const revoked = await cli(['keys', 'revoke', id]);
    expect(revoked.code).toBe(0);
    expect(revoked.stdout).toContain(`Revoked ${id}`);
    // The CLI exits promptly: it holds no subscription and closes its connection.
    expect(revoked.ms).toBeLessThan(5000);
    for (const instance of instances) {
      // Pushed before the CLI even exited; polled only to be fair to a busy machine.
      await waitFor('the revocation to reach the instance', async () => (await call(instance, key)).status === 401, 1000, 5);
      expect(await call(instance, key)).toEqual({ status: 401, code: 'key_revoked' });
      expect(await metric(instance, 'keygate_revocations_received_total')).toBeGreaterThanOrEqual(1);
    }

    const listed = await cli(['keys', 'list', '--tenant', 'acme', '--revoked', '--json']);
    const records = parseJsonOutput<Record<string, unknown>[]>(listed);
    expect(records.find((r) => r.id === id)).toMatchObject({ status: 'revoked', name: 'from the cli', permissions: ['read'] });
    expect(listed.stdout).not.toContain(key);
    expect(records.every((r) => !('hash' in r) && !('key' in r))).toBe(true);
    const active = parseJsonOutput<Record<string, unknown>[]>(await cli(['keys', 'list', '--tenant', 'acme', '--json']));
    expect(active.find((r) => r.id === id)).toBeUndefined();
  });

  it('keys revoke --all --tenant T: every instance refuses every key of the tenant', async () => {
    const keys = await Promise.all(
      [1, 2].map(async (i) => parseJsonOutput<{ key: string }>(await cli(['keys', 'create', '--tenant', 'doomed', '--name', `k${i}`, '--json'])).key),
    );
    for (const key of keys) for (const instance of instances) expect((await call(instance, key)).status).toBe(200);
    const result = await cli(['keys', 'revoke', '--all', '--tenant', 'doomed']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('Revoked 2 keys of tenant "doomed"');
    for (const key of keys) {
      for (const instance of instances) {
        await waitFor('the revoke-all to reach the instance', async () => (await call(instance, key)).status === 401, 1000, 5);
      }
    }
  });

  it('without KEYGATE_PEPPER, Redis mode refuses to start with a clear message', async () => {
    const result = await cli(['keys', 'list'], { KEYGATE_PEPPER: '' });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/KEYGATE_PEPPER: is required with the Redis store/);
  });

  it('with Redis unreachable, the CLI fails fast (exit 1) naming the server', async () => {
    const port = await freePort();
    const result = await cli(['keys', 'list'], { KEYGATE_REDIS_URL: `redis://127.0.0.1:${port}` });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(new RegExp(`keygate: cannot reach Redis at redis://127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`));
    expect(result.ms).toBeLessThan(5000);
  });
});

/**
 * Redis Cluster: three real cluster-mode redis-servers (no replicas). Every key keygate
 * writes carries the `{kg}` hash tag, so each script touches one slot; revocations are
 * pushed across the cluster to every instance. keygate connects as the Redis user that
 * docs/redis.md gives for a cluster, and no node's ACL LOG records a refusal.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster } from 'ioredis';
import { Pool } from 'undici';
import { startTestKeygate, type TestKeygate } from '../helpers/keygate.ts';
import { aclRefusals, documentedAcl, redisDoc } from '../helpers/redis-acl.ts';
import { onRedis } from '../helpers/redis-fixture.ts';
import { freePort, redisServerAvailable, startRedisServer, waitFor, type RedisServer } from '../helpers/redis-server.ts';
import { startUpstream, type TestUpstream } from '../helpers/upstream.ts';

const nodes: RedisServer[] = [];
let upstream: TestUpstream;
let a: TestKeygate, b: TestKeygate;
const pools: Pool[] = [];

function caller(instance: TestKeygate): (key: string) => Promise<number> {
  const pool = new Pool(instance.url, { connections: 4 });
  pools.push(pool);
  return async (key) => {
    const res = await pool.request({ path: '/api/x', method: 'GET', headers: { 'x-api-key': key } });
    await res.body.dump();
    return res.statusCode;
  };
}

const redisCliAvailable = spawnSync('redis-cli', ['--version']).status === 0;
const PASSWORD = randomBytes(12).toString('hex');

/** docs/redis.md's `user keygate …` line for a cluster: the `{kg}` prefix and the two CLUSTER subcommands it names. */
function clusterAcl(): string[] {
  const extra = '+cluster|slots +cluster|info +spublish +ssubscribe';
  expect(redisDoc()).toContain(`\`${extra}\``);
  return [...documentedAcl(PASSWORD, '{kg}:'), ...extra.split(' ')];
}

async function aclLogs(): Promise<string[]> {
  const refusals: string[] = [];
  for (const node of nodes) for (const line of await onRedis(node.port, aclRefusals)) refusals.push(`${node.port}: ${line}`);
  return refusals;
}

describe.skipIf(!redisServerAvailable() || !redisCliAvailable)('Redis Cluster', () => {
  beforeAll(async () => {
    for (let i = 0; i < 3; i++) {
      nodes.push(
        await startRedisServer({
          port: await freePort(true),
          args: ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '2000'],
        }),
      );
    }
    const created = spawnSync('redis-cli', ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', '0', '--cluster-yes'], {
      encoding: 'utf8',
      timeout: 20_000,
    });
    if (created.status !== 0) throw new Error(`redis-cli --cluster create failed:\n${created.stdout}\n${created.stderr}`);
    for (const node of nodes) {
      await waitFor(
        `node ${node.port} to report cluster_state:ok`,
        async () => onRedis(node.port, async (r) => String(await r.call('CLUSTER', 'INFO')).includes('cluster_state:ok')),
        10_000,
        100,
      );
    }
    for (const node of nodes) await onRedis(node.port, (r) => r.call('ACL', 'SETUSER', 'keygate', 'reset', ...clusterAcl()));
    upstream = await startUpstream();
    const config = {
      store: { kind: 'redis' as const, redis: { cluster: nodes.map((n) => ({ host: '127.0.0.1', port: n.port })), redisOptions: { username: 'keygate', password: PASSWORD }, commandTimeoutMs: 500 } },
      routes: [{ name: 'api', pathPrefix: '/api', upstream: upstream.url }],
      log: { level: 'warn' as const, access: false },
    };
    [a, b] = await Promise.all([startTestKeygate(config), startTestKeygate(config)]);
  }, 40_000);

  afterAll(async () => {
    await Promise.all(pools.map((p) => p.close()));
    await Promise.all([a?.stop(), b?.stop()]);
    await upstream?.close();
    for (const node of nodes) await node.stop();
  });

  it('keeps all keys in one hash slot and pushes revocations to every instance', async () => {
    const callA = caller(a);
    const callB = caller(b);
    expect(a.keygate.store.feedHealthy).toBe(true);
    expect(b.keygate.store.feedHealthy).toBe(true);
    const created = await Promise.all(Array.from({ length: 5 }, (_, i) => a.keys.create({ tenant: 'acme', name: `c${i}` })));
    for (const { key } of created) {
      expect(await callA(key)).toBe(200);
      expect(await callB(key)).toBe(200);
    }
    const cluster = new Cluster(nodes.map((n) => ({ host: '127.0.0.1', port: n.port })));
    try {
      expect(await cluster.get(`{kg}:id:${created[0]!.record.id}`)).toMatch(/.+/);
      expect(await cluster.exists('kg:keys')).toBe(0);
      expect(await cluster.zcard('{kg}:tenant:acme')).toBe(5);
    } finally {
      cluster.disconnect();
    }
    const first = created[0]!;
    await a.keys.revoke(first.record.id);
    expect(await callA(first.key)).toBe(401);
    await waitFor('instance B to refuse the revoked key', async () => (await callB(first.key)) === 401, 2000, 2);
    expect((await b.keys.revokeTenant('acme')).length).toBe(4);
    for (const { key } of created) {
      await waitFor('instance A to refuse every key of the tenant', async () => (await callA(key)) === 401, 2000, 2);
    }
    expect((await b.keys.list({ tenant: 'acme', includeRevoked: true })).map((r) => r.status)).toEqual(Array(5).fill('revoked'));
  });

  it('did all of it as the documented Redis user, refused nothing', async () => {
    const clients = String(await onRedis(nodes[0]!.port, (r) => r.call('CLIENT', 'LIST'))).split('\n').filter((l) => l.includes('name=keygate'));
    expect(clients.length).toBeGreaterThan(0);
    expect(clients.every((l) => l.includes('user=keygate'))).toBe(true);
    expect(await aclLogs()).toEqual([]);
  });
});

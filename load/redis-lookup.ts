/**
 * What one key lookup costs in ioredis, by reply shape: keygate's cache-miss path is one
 * Redis command, and most of what a miss adds over a hit is ioredis's work per command and
 * per bulk string of the reply. `node load/redis-lookup.ts [OPS]` starts its own
 * redis-server, stores one record shaped like a real key (10 fields), and runs OPS commands
 * of each shape, 64 in flight, auto-pipelined like the Redis store, printing the client's
 * CPU time per command (this process, /proc via process.cpuUsage) and Redis's (INFO cpu).
 * Rounds alternate the shapes; compare them within one run.
 */
import { Redis } from 'ioredis';
import { startRedisServer } from '../test/helpers/redis-server.ts';

const ops = Number(process.argv[2] ?? 100_000);
const server = await startRedisServer();
const fields = [
  'id', 'key_312a39fb41ad3332904d', 'tenant', 'bench', 'name', 'bench-1', 'role', 'api-user', 'permissions', '[]',
  'status', 'active', 'prefix', 'kg_bench_1234abcd', 'createdAt', '1764640000000', 'expiresAt', '1764640000000', 'lastUsedAt', '1764640000000',
];
const all = ['id', 'tenant', 'name', 'role', 'permissions', 'status', 'prefix', 'createdAt', 'group', 'user', 'client', 'expiresAt', 'revokedAt', 'lastUsedAt'];
const admin = new Redis(server.url);
await admin.call('HSET', 'h', ...fields);
// The same record plus its never-changing fields as one JSON string: a value over
// hash-max-listpack-value (64 bytes) turns the hash from a listpack into a hashtable.
const fixed = { id: fields[1], tenant: 'bench', role: 'api-user', permissions: [], prefix: 'kg_bench_1234abcd', createdAt: 1764640000000, expiresAt: 1764640000000, group: null, user: null, client: null };
await admin.call('HSET', 'hv', ...fields, 'v', JSON.stringify(fixed));
await admin.set('s', JSON.stringify(Object.fromEntries(Array.from({ length: fields.length / 2 }, (_, i) => [fields[2 * i], fields[2 * i + 1]]))));
const sha = (await admin.call('SCRIPT', 'LOAD', "return cjson.encode(redis.call('HGETALL', KEYS[1]))")) as string;

const redisCpuUs = async (): Promise<number> => {
  const info = (await admin.call('INFO', 'cpu')) as string;
  const sys = Number(/used_cpu_sys:([\d.]+)/.exec(info)?.[1] ?? 0);
  const user = Number(/used_cpu_user:([\d.]+)/.exec(info)?.[1] ?? 0);
  return (sys + user) * 1e6;
};

async function measure(client: Redis, fn: (r: Redis) => Promise<unknown>): Promise<{ client: number; redis: number }> {
  const redisBefore = await redisCpuUs();
  const before = process.cpuUsage();
  let sent = 0;
  let done = 0;
  await new Promise<void>((resolve, reject) => {
    const pump = (): void => {
      while (sent - done < 64 && sent < ops) {
        sent++;
        fn(client).then(() => {
          if (++done === ops) resolve();
          else pump();
        }, reject);
      }
    };
    pump();
  });
  const cpu = process.cpuUsage(before);
  const redis = (await redisCpuUs()) - redisBefore;
  return { client: (cpu.user + cpu.system) / ops, redis: redis / ops };
}

const withTimeout = new Redis({ port: server.port, enableAutoPipelining: true, enableOfflineQueue: false, lazyConnect: true, commandTimeout: 500 });
const noTimeout = new Redis({ port: server.port, enableAutoPipelining: true, enableOfflineQueue: false, lazyConnect: true });
const noPipelining = new Redis({ port: server.port, enableOfflineQueue: false, lazyConnect: true, commandTimeout: 500 });
await Promise.all([withTimeout.connect(), noTimeout.connect(), noPipelining.connect()]);
const shapes: [string, Redis, (r: Redis) => Promise<unknown>][] = [
  ['PING', withTimeout, (r) => r.call('PING')],
  ['PING, no commandTimeout', noTimeout, (r) => r.call('PING')],
  ['HGETALL (what keygate does)', withTimeout, (r) => r.call('HGETALL', 'h')],
  ['HGETALL, no commandTimeout', noTimeout, (r) => r.call('HGETALL', 'h')],
  ['HGETALL, no auto-pipelining', noPipelining, (r) => r.call('HGETALL', 'h')],
  ['HMGET of a JSON field `v` + 4 fields that change, JSON.parse', withTimeout, (r) => r.call('HMGET', 'hv', 'v', 'name', 'status', 'revokedAt', 'lastUsedAt').then((a) => JSON.parse((a as string[])[0]!))],
  ['HMGET of all 14 fields', withTimeout, (r) => r.call('HMGET', 'h', ...all)],
  ['GET of the record as JSON + JSON.parse', withTimeout, (r) => r.call('GET', 's').then((s) => JSON.parse(s as string))],
  ['EVALSHA cjson.encode(HGETALL) + JSON.parse', withTimeout, (r) => r.call('EVALSHA', sha, 1, 'h').then((s) => JSON.parse(s as string))],
];
const rows = new Map<string, { client: number[]; redis: number[] }>();
try {
  for (const [, client, fn] of shapes) await measure(client, fn); // warm-up (JIT)
  for (let round = 0; round < 3; round++) {
    for (const [name, client, fn] of round % 2 === 0 ? shapes : [...shapes].reverse()) {
      const m = await measure(client, fn);
      const row = rows.get(name) ?? { client: [], redis: [] };
      row.client.push(m.client);
      row.redis.push(m.redis);
      rows.set(name, row);
    }
  }
  const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;
  process.stdout.write(`ioredis lookup cost, ${ops} commands per shape and round, 3 rounds (median), Node ${process.version}\n\n`);
  process.stdout.write('| command | client CPU µs/command | Redis CPU µs/command |\n| --- | ---: | ---: |\n');
  for (const [name, row] of rows) process.stdout.write(`| ${name} | ${median(row.client).toFixed(1)} | ${median(row.redis).toFixed(1)} |\n`);
  for (const key of ['h', 'hv']) {
    process.stdout.write(`\nMEMORY USAGE ${key}: ${String(await admin.call('MEMORY', 'USAGE', key))} bytes (${String(await admin.call('OBJECT', 'ENCODING', key))})`);
  }
  process.stdout.write('\n');
} finally {
  withTimeout.disconnect();
  noTimeout.disconnect();
  noPipelining.disconnect();
  admin.disconnect();
  await server.stop();
}

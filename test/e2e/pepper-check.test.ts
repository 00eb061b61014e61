/**
 * A pepper mismatch is impossible to miss (issue 23, friction 2): the first process to use a
 * store records its pepper's fingerprint there; the CLI and `serve` with another pepper stop
 * with exit 2 and a message naming both fingerprints (never the peppers), on the embedded
 * store and on Redis.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pepperFingerprint } from '../../src/keys/pepper.ts';
import { runKeygate, spawnKeygate, tempDir, type TempDir, freePorts } from '../helpers/process.ts';
import { startTestKeygate } from '../helpers/keygate.ts';
import { redisStore, startRedis, type RedisWithClient } from '../helpers/redis-fixture.ts';

const FIRST = 'first-pepper-0123456789abcdef';
const OTHER = 'other-pepper-0123456789abcdef';

describe('the embedded store and the CLI', () => {
  let dir: TempDir;
  let config: string;

  beforeAll(async () => {
    dir = tempDir('keygate-pepper-');
    const [listen, admin] = (await freePorts(2)) as [number, number];
    config = dir.writeYaml('keygate.yaml', { listen: { host: '127.0.0.1', port: listen }, admin: { host: '127.0.0.1', port: admin }, store: { path: `${dir.path}/data/keygate.db` } });
  });
  afterAll(() => dir?.remove());

  it('keys made with one pepper; the CLI with another stops with exit 2 naming both fingerprints', async () => {
    const made = await runKeygate(['keys', 'create', '--config', config, '--tenant', 'acme', '--name', 'k'], { env: { ...process.env, KEYGATE_PEPPER: FIRST } });
    expect(made.code, made.stderr).toBe(0);
    const again = await runKeygate(['keys', 'list', '--config', config], { env: { ...process.env, KEYGATE_PEPPER: FIRST } });
    expect(again.code).toBe(0);
    const other = await runKeygate(['keys', 'create', '--config', config, '--tenant', 'acme', '--name', 'k2'], { env: { ...process.env, KEYGATE_PEPPER: OTHER } });
    expect(other.code).toBe(2);
    expect(other.stderr).toContain("is not the one this store's keys were made with");
    expect(other.stderr).toContain(pepperFingerprint(OTHER));
    expect(other.stderr).toContain(pepperFingerprint(FIRST));
    expect(other.stderr + other.stdout).not.toContain(OTHER);
    expect(other.stderr + other.stdout).not.toContain(FIRST);
    expect(other.stdout).toBe('');
  });

  it('serve with another pepper does not start (exit 2)', async () => {
    const serve = await spawnKeygate(config, { env: { ...process.env, KEYGATE_PEPPER: OTHER }, timeoutMs: 20_000 }).then(
      () => null,
      (error: unknown) => error as Error,
    );
    expect(serve).toBeInstanceOf(Error);
    const run = await runKeygate(['serve', '--config', config], { env: { ...process.env, KEYGATE_PEPPER: OTHER }, timeoutMs: 20_000 });
    expect(run.code).toBe(2);
    expect(run.stderr + run.stdout).toContain(pepperFingerprint(FIRST));
  });
});

describe('two instances on Redis', () => {
  let redis: RedisWithClient;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => redis?.stop());

  it('an instance with another pepper than the first one refuses to start', async () => {
    const first = await startTestKeygate({ store: redisStore(redis.redis), log: { level: 'warn' } }, { KEYGATE_PEPPER: FIRST });
    try {
      await expect(startTestKeygate({ store: redisStore(redis.redis), log: { level: 'warn' } }, { KEYGATE_PEPPER: OTHER })).rejects.toThrow(/not the one this store's keys were made with/);
      const same = await startTestKeygate({ store: redisStore(redis.redis), log: { level: 'warn' } }, { KEYGATE_PEPPER: FIRST });
      await same.stop();
      expect(await redis.raw.get('kg:pepper-fingerprint')).toBe(pepperFingerprint(FIRST));
    } finally {
      await first.stop();
    }
  });
});

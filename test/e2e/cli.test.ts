/**
 * The `keygate` command as a user runs it: `keygate serve` in the background on the shipped
 * example config (config/keygate.yaml, moved to free ports and a temporary data directory),
 * `keys create|list|revoke` from another process against the same embedded store, requests
 * through the built-in echo upstream, `config check`, bad usage, and SIGTERM.
 */
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { parse as parseYaml } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rawRequest, type RawResponse } from '../helpers/http.ts';
import { parseJsonOutput, runKeygate, shippedConfig, shippedPorts, spawnKeygate, tempDir, type CliResult, type KeygateProcess, type TempDir } from '../helpers/process.ts';
import { TEST_PEPPER } from '../helpers/pepper.ts';

interface CreatedKey {
  id: string;
  key: string;
  prefix: string;
  tenant: string;
  name: string;
  role: string;
  permissions: string[];
  user: string | null;
  status: string;
  expiresAt: string | null;
}

let dir: TempDir;
let configFile: string;
let serve: KeygateProcess;
let ports: { listen: number; admin: number; echo: number };
/** Every full key created, to check that none ever appears in serve's output. */
const allKeys: string[] = [];
/** Revocation latencies (CLI exit → first refusal), reported after the run. */
const latencies: number[] = [];

function keygate(...args: string[]): Promise<CliResult> {
  return runKeygate([...args, '--config', configFile]);
}

async function createKey(...args: string[]): Promise<CreatedKey> {
  const created = parseJsonOutput<CreatedKey>(await keygate('keys', 'create', ...args, '--json'));
  allKeys.push(created.key);
  return created;
}

function through(path: string, key: string | null, headers: Record<string, string> = {}): Promise<RawResponse> {
  return rawRequest(serve.url, { path, headers: key === null ? headers : { 'x-api-key': key, ...headers } });
}

/** Polls until the running server refuses `key`; returns how long that took (ms). */
async function refusedWithin(key: string, limitMs: number): Promise<{ ms: number; res: RawResponse }> {
  const started = performance.now();
  for (;;) {
    const res = await through('/echo/poll', key);
    if (res.status !== 200) return { ms: performance.now() - started, res };
    if (performance.now() - started > limitMs) throw new Error(`the server still accepted the key after ${limitMs} ms`);
    await sleep(25);
  }
}

beforeAll(async () => {
  dir = tempDir('keygate-e2e-');
  ports = await shippedPorts();
  const { listen, admin, echo } = ports;
  // The example config as shipped, moved to free loopback ports and a temporary store.
  const example = shippedConfig();
  const exampleEcho = `http://127.0.0.1:${example.echo.port}`;
  const config = {
    ...example,
    listen: { ...example.listen, host: '127.0.0.1', port: listen },
    admin: { ...example.admin, host: '127.0.0.1', port: admin },
    store: { ...example.store, path: join(dir.path, 'data', 'keygate.db') },
    echo: { ...example.echo, host: '127.0.0.1', port: echo },
    routes: (example.routes as Record<string, any>[]).map((route) => (route.upstream === exampleEcho ? { ...route, upstream: `http://127.0.0.1:${echo}` } : route)),
  };
  expect(config.routes.map((route) => route.name)).toContain('echo');
  configFile = dir.writeYaml('keygate.yaml', config);
  serve = await spawnKeygate(configFile);
}, 20_000);

afterAll(async () => {
  try {
    await serve?.stop('SIGKILL');
  } finally {
    dir?.remove();
  }
  console.log(`revocation reached the running server in: ${latencies.map((ms) => `${Math.round(ms)} ms`).join(', ')} (store.pollMs 250)`);
});

describe('keygate CLI end to end', () => {
  let key: CreatedKey;

  it('serve listens where the config says', () => {
    expect(serve.url).toBe(`http://127.0.0.1:${ports.listen}`);
    expect(serve.adminUrl).toBe(`http://127.0.0.1:${ports.admin}`);
  });

  it('keys create --json prints the record and the full key', async () => {
    key = await createKey('--tenant', 'acme', '--name', 'e2e', '--permissions', 'echo:read,echo:write', '--user', 'alice');
    expect(key).toMatchObject({ tenant: 'acme', name: 'e2e', role: 'api-user', permissions: ['echo:read', 'echo:write'], user: 'alice', status: 'active', expiresAt: null });
    expect(key.id).toMatch(/^key_[0-9a-f]+$/);
    expect(key.key).toMatch(/^kg_acme_[0-9a-f]{64}$/);
    expect(key.prefix.startsWith('kg_acme_')).toBe(true);
    expect(key.key.startsWith(key.prefix.replace('…', ''))).toBe(true);
    expect(key.prefix.length).toBeLessThan(key.key.length);

    const expiring = await createKey('--tenant', 'acme', '--name', 'expiring', '--expires', '30d');
    expect(Date.parse(expiring.expiresAt!) - Date.now()).toBeGreaterThan(29 * 86_400_000);
    expect(Date.parse(expiring.expiresAt!) - Date.now()).toBeLessThanOrEqual(30 * 86_400_000);
  });

  it('a request with the key reaches the echo upstream with identity headers and without the key', async () => {
    const res = await through('/echo/hello?x=1', key.key);
    expect(res.status).toBe(200);
    expect(res.json.path).toBe('/echo/hello?x=1');
    expect(res.json.headers).toMatchObject({
      'x-tenant-id': 'acme',
      'x-api-key-id': key.id,
      'x-auth-role': 'api-user',
      'x-auth-permissions': 'echo:read,echo:write',
      'x-auth-user': 'alice',
      'x-forwarded-for': '127.0.0.1',
    });
    expect(res.json.headers['x-api-key']).toBeUndefined();
    expect(res.body).not.toContain(key.key);

    // As a Bearer token: accepted, and the Authorization header is not forwarded either.
    const bearer = await through('/echo/bearer', null, { authorization: `Bearer ${key.key}` });
    expect(bearer.status).toBe(200);
    expect(bearer.json.headers['x-tenant-id']).toBe('acme');
    expect(bearer.json.headers.authorization).toBeUndefined();

    // A client cannot forge the identity headers.
    const forged = await through('/echo/forged', key.key, { 'x-tenant-id': 'globex', 'x-auth-role': 'admin' });
    expect(forged.json.headers['x-tenant-id']).toBe('acme');
    expect(forged.json.headers['x-auth-role']).toBe('api-user');
  });

  it('refuses requests without a valid key', async () => {
    const missing = await through('/echo/x', null);
    expect(missing.status).toBe(401);
    expect(missing.headers['www-authenticate']).toMatch(/^Bearer realm="keygate"/);
    expect(missing.json).toMatchObject({ code: 'missing_credentials' });
    // Never from the query string.
    const query = await through(`/echo/x?api_key=${key.key}`, null);
    expect(query.status).toBe(401);
    expect(query.json).toMatchObject({ code: 'missing_credentials' });
    // A mistyped key.
    const last = key.key.at(-1) === 'a' ? 'b' : 'a';
    const typo = await through('/echo/x', key.key.slice(0, -1) + last);
    expect(typo.status).toBe(401);
    expect(typo.json).toMatchObject({ code: 'invalid_key' });
  });

  it('keys list --json lists the keys without the key or any hash', async () => {
    const result = await keygate('keys', 'list', '--json');
    const records = parseJsonOutput<Record<string, unknown>[]>(result);
    const record = records.find((r) => r.id === key.id);
    expect(record).toMatchObject({ id: key.id, tenant: 'acme', name: 'e2e', prefix: key.prefix, status: 'active' });
    for (const r of records) {
      expect(Object.keys(r)).not.toContain('key');
      expect(Object.keys(r).filter((name) => /hash/i.test(name))).toEqual([]);
    }
    const hmac = createHmac('sha256', TEST_PEPPER).update(key.key).digest();
    for (const secret of [key.key, key.key.slice(-64), hmac.toString('base64url'), hmac.toString('hex'), hmac.toString('base64')]) {
      expect(result.stdout).not.toContain(secret);
    }
  });

  it('keys revoke <id>: the running server refuses the key within a second', async () => {
    // Cached as valid in the server first, so the revocation must reach it.
    expect((await through('/echo/cached', key.key)).status).toBe(200);
    const result = await keygate('keys', 'revoke', key.id);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(key.id);
    const { ms, res } = await refusedWithin(key.key, 1000);
    latencies.push(ms);
    expect(res.status).toBe(401);
    expect(res.json).toMatchObject({ code: 'key_revoked' });
    expect(ms).toBeLessThan(1000);
    // Permanent: revoking again changes nothing, and the key stays refused.
    const again = await keygate('keys', 'revoke', key.id);
    expect(again.code).toBe(0);
    expect((await through('/echo/x', key.key)).json).toMatchObject({ code: 'key_revoked' });
  });

  it('keys revoke --all --tenant T revokes every key of that tenant and no other', async () => {
    const [a, b, other] = await Promise.all([
      createKey('--tenant', 'acme', '--name', 'all-a'),
      createKey('--tenant', 'acme', '--name', 'all-b'),
      createKey('--tenant', 'globex', '--name', 'other'),
    ]);
    for (const k of [a, b, other]) expect((await through('/echo/cached', k.key)).status).toBe(200);

    const result = await keygate('keys', 'revoke', '--all', '--tenant', 'acme', '--json');
    expect(result.code).toBe(0);
    const out = JSON.parse(result.stdout) as { tenant: string; revoked: string[] };
    expect(out.tenant).toBe('acme');
    expect(out.revoked).toEqual(expect.arrayContaining([a.id, b.id]));
    expect(out.revoked).not.toContain(other.id);

    for (const k of [a, b]) {
      const { ms, res } = await refusedWithin(k.key, 1000);
      latencies.push(ms);
      expect(res.json).toMatchObject({ code: 'key_revoked' });
      expect(ms).toBeLessThan(1000);
    }
    expect((await through('/echo/x', other.key)).status).toBe(200);

    const [active, revoked] = await Promise.all([keygate('keys', 'list', '--tenant', 'acme', '--json'), keygate('keys', 'list', '--tenant', 'acme', '--revoked', '--json')]);
    expect(parseJsonOutput<unknown[]>(active)).toEqual([]);
    const revokedIds = parseJsonOutput<{ id: string; status: string }[]>(revoked).map((r) => [r.id, r.status]);
    expect(revokedIds).toEqual(expect.arrayContaining([[a.id, 'revoked'], [b.id, 'revoked'], [key.id, 'revoked']]));
  });

  it('keys rotate <id> --overlap: both keys work during the overlap, and the running server refuses the old one from its end', async () => {
    const old = await createKey('--tenant', 'initech', '--name', 'rotate-me', '--expires', '30d');
    expect((await through('/echo/cached', old.key)).status).toBe(200); // cached by the server first
    // Long enough for three CLI runs (each loads TypeScript) on a busy two-core machine.
    const result = await keygate('keys', 'rotate', old.id, '--overlap', '12s', '--json');
    expect(result.code, result.stderr).toBe(0);
    const rotated = parseJsonOutput<CreatedKey & { createdAt: string; previous: { id: string; status: string; revokesAt: string } }>(result);
    allKeys.push(rotated.key);
    expect(rotated).toMatchObject({ tenant: 'initech', name: 'rotate-me', expiresAt: old.expiresAt, status: 'active' });
    expect(rotated.key).not.toBe(old.key);
    expect(rotated.previous).toMatchObject({ id: old.id, status: 'active' });
    const revokesAt = Date.parse(rotated.previous.revokesAt);
    expect(revokesAt - Date.parse(rotated.createdAt)).toBe(12_000);
    expect((await through('/echo/x', rotated.key)).status).toBe(200);
    expect((await through('/echo/x', old.key)).status).toBe(200);
    // Too long an overlap is named as the flag; nothing is written.
    const [listed, tooLong] = await Promise.all([keygate('keys', 'list', '--tenant', 'initech'), keygate('keys', 'rotate', old.id, '--overlap', '31d')]);
    expect(listed.stdout).toMatch(new RegExp(`^${old.id} .* active until ${rotated.previous.revokesAt.slice(0, 16).replace('T', ' ')} `, 'm'));
    expect(tooLong.code).toBe(2);
    expect(tooLong.stderr).toContain('--overlap');
    expect(Date.now()).toBeLessThan(revokesAt); // all of the above inside the overlap

    await sleep(Math.max(0, revokesAt + 5 - Date.now()));
    expect((await through('/echo/x', old.key)).json).toMatchObject({ code: 'key_revoked' });
    expect((await through('/echo/x', rotated.key)).status).toBe(200);
    // Listed as the server treats it: revoked (shown only with --revoked), before any sweep.
    const [keys, all] = await Promise.all([keygate('keys', 'list', '--tenant', 'initech', '--json'), keygate('keys', 'list', '--tenant', 'initech', '--revoked', '--json')]);
    expect(parseJsonOutput<{ id: string }[]>(keys).map((k) => k.id)).toEqual([rotated.id]);
    expect(parseJsonOutput<{ id: string; status: string }[]>(all).map((k) => [k.id, k.status]).sort()).toEqual([[old.id, 'revoked'], [rotated.id, 'active']].sort());
  });

  it('bad usage exits 2 and names the flag', async () => {
    const [noName, unknown, badExpiry, badRole] = await Promise.all([
      keygate('keys', 'create', '--tenant', 'acme'),
      keygate('keys', 'create', '--tenant', 'acme', '--name', 'x', '--colour', 'red'),
      keygate('keys', 'create', '--tenant', 'acme', '--name', 'x', '--expires', '7x'),
      keygate('keys', 'create', '--tenant', 'acme', '--name', 'x', '--role', 'root'),
    ]);
    for (const [result, flag] of [
      [noName, '--name'],
      [unknown, '--colour'],
      [badExpiry, '--expires'],
      [badRole, '--role'],
    ] as const) {
      expect(result.code, `${flag}: ${result.stderr}`).toBe(2);
      expect(result.stderr).toContain(flag);
      expect(result.stdout).not.toMatch(/kg_acme_[0-9a-f]{64}/);
    }
    const [noOverlap, badOverlap, unknownId] = await Promise.all([
      keygate('keys', 'rotate', 'key_0000'),
      keygate('keys', 'rotate', 'key_0000', '--overlap', '1w'),
      keygate('keys', 'rotate', 'key_0000', '--overlap', '1h'),
    ]);
    for (const result of [noOverlap, badOverlap]) {
      expect(result.code, result.stderr).toBe(2);
      expect(result.stderr).toContain('--overlap');
    }
    expect(unknownId.code).toBe(1);
    expect(unknownId.stderr).toContain('no key with id "key_0000"');
    const unknownCommand = await runKeygate(['frobnicate']);
    expect(unknownCommand.code).toBe(2);
    expect(unknownCommand.stderr).toContain('frobnicate');
  });

  it('--help on any command prints its usage and exits 0; the top-level help names rotate', async () => {
    const [create, serve, top] = await Promise.all([keygate('keys', 'create', '--help'), runKeygate(['serve', '--help']), runKeygate(['--help'])]);
    expect(create.code, create.stderr).toBe(0);
    expect(create.stdout).toContain('keygate keys create --tenant T --name N');
    expect(serve.code, serve.stderr).toBe(0);
    expect(serve.stdout).toContain('serve [--config FILE]');
    expect(top.stdout).toContain('keys create|list|revoke|rotate');
  });

  it('config check accepts the config, and rejects a broken one with exit 2 naming the field', async () => {
    const broken = parseYaml(readFileSync(configFile, 'utf8')) as Record<string, any>;
    broken.routes[0].upstream = 'ftp://127.0.0.1/files';
    const brokenFile = dir.writeYaml('broken.yaml', broken);
    const [good, bad, missing] = await Promise.all([
      keygate('config', 'check'),
      runKeygate(['config', 'check', '--config', brokenFile]),
      runKeygate(['config', 'check', '--config', join(dir.path, 'nope.yaml')]),
    ]);
    expect(good.code, good.stderr).toBe(0);
    expect(good.stdout).toContain('OK');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('routes[0].upstream: must be an http(s) URL');
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('nope.yaml');
  });

  it('config check refuses what serve would refuse (a notification secret not set), and a malformed master key stops keys commands too', async () => {
    const notifying = parseYaml(readFileSync(configFile, 'utf8')) as Record<string, any>;
    notifying.notifications = { webhooks: [{ url: 'https://hooks.example.com/keygate', secretEnv: 'KG_E2E_UNSET_HOOK_SECRET' }] };
    const notifyingFile = dir.writeYaml('notifying.yaml', notifying);
    const [check, list] = await Promise.all([
      runKeygate(['config', 'check', '--config', notifyingFile]),
      runKeygate(['keys', 'list', '--config', configFile], { env: { KEYGATE_MASTER_KEY: 'not-base64-32-bytes' } }),
    ]);
    expect(check.code, check.stderr).toBe(2);
    expect(check.stderr).toContain('notifications.webhooks[0].secretEnv');
    expect(check.stderr).toContain('KG_E2E_UNSET_HOOK_SECRET');
    expect(list.code, list.stderr).toBe(2);
    expect(list.stderr).toContain('KEYGATE_MASTER_KEY');
    expect(list.stderr).not.toContain('not-base64-32-bytes');
  });

  it('SIGTERM makes serve exit 0; its output never contained a key', async () => {
    const exit = await serve.stop('SIGTERM', 8000);
    expect(exit).toEqual({ code: 0, signal: null });
    const output = serve.stdout() + serve.stderr();
    expect(serve.logLines().some((l) => l.msg === 'keygate stopped')).toBe(true);
    // The requests above were logged (so the check below looks at real traffic)...
    expect(serve.logLines().filter((l) => l.msg === 'request').length).toBeGreaterThan(10);
    // ...and no key, whole or its secret part, is anywhere in it.
    expect(allKeys.length).toBeGreaterThanOrEqual(5);
    for (const k of allKeys) {
      expect(output).not.toContain(k);
      expect(output).not.toContain(k.slice(-64));
    }
  }, 15_000);
});

/**
 * `keygate secrets …` and `keygate config check` as a user runs them, next to a running
 * `keygate serve` on the same embedded store: the value goes in on stdin only, is injected
 * by the server, and is never printed; changes made by the CLI reach the server through the
 * store's change log; a master-key rotation with `secrets rewrap` lets the old key go.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rawRequest } from '../helpers/http.ts';
import { freePorts, parseJsonOutput, runKeygate, spawnKeygate, tempDir, type CliResult, type KeygateProcess, type TempDir } from '../helpers/process.ts';
import { startUpstream, type TestUpstream } from '../helpers/upstream.ts';

const KEY_1 = randomBytes(32).toString('base64');
const KEY_2 = randomBytes(32).toString('base64');
const VALUE = `sk-e2e-${randomBytes(20).toString('hex')}`;
const OTHER = `other-${randomBytes(20).toString('hex')}`;

let dir: TempDir;
let configFile: string;
let serve: KeygateProcess;
let up: TestUpstream;
let userKey: string;
/** Every CLI run and every server, to check that no value was ever printed. */
const outputs: CliResult[] = [];
const servers: KeygateProcess[] = [];

async function keygate(args: string[], env: NodeJS.ProcessEnv = { KEYGATE_MASTER_KEY: KEY_1 }, input?: string): Promise<CliResult> {
  const result = await runKeygate([...args, '--config', configFile], { env, input });
  outputs.push(result);
  return result;
}

async function start(env: NodeJS.ProcessEnv): Promise<KeygateProcess> {
  const server = await spawnKeygate(configFile, { env });
  servers.push(server);
  return server;
}

/** What the upstream got in Authorization, or the status keygate answered itself. */
async function injected(path = '/llm/x'): Promise<string | number> {
  const before = up.received.length;
  const res = await rawRequest(serve.url, { path, headers: { 'x-api-key': userKey } });
  if (res.status !== 200) return res.status;
  return String(up.received[before]!.headers.authorization);
}

async function eventually(expected: string | number, limitMs = 2000): Promise<void> {
  const deadline = Date.now() + limitMs;
  let last: string | number = '';
  while (Date.now() < deadline) {
    last = await injected();
    if (last === expected) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  expect(last).toBe(expected);
}

beforeAll(async () => {
  dir = tempDir('keygate-secrets-e2e-');
  up = await startUpstream((req, res) => {
    req.resume();
    req.on('end', () => res.end('ok'));
  });
  const [listen, admin] = (await freePorts(2)) as [number, number];
  configFile = dir.writeYaml('keygate.yaml', {
    listen: { host: '127.0.0.1', port: listen },
    admin: { host: '127.0.0.1', port: admin },
    store: { path: join(dir.path, 'data', 'keygate.db'), pollMs: 50 },
    log: { level: 'info' },
    routes: [{ name: 'llm', pathPrefix: '/llm', upstream: up.url, secret: { id: 'openai', header: 'authorization', template: 'Bearer {value}' } }],
  });
  serve = await start({ KEYGATE_MASTER_KEY: KEY_1 });
  userKey = parseJsonOutput<{ key: string }>(await keygate(['keys', 'create', '--tenant', 'acme', '--name', 'agent', '--json'])).key;
});

afterAll(async () => {
  await Promise.all(servers.map((s) => s.stop()));
  await up?.close();
  dir?.remove();
});

describe('keygate secrets', () => {
  it('config check warns about a route whose secret is not stored, and about a missing master key', async () => {
    const without = await keygate(['config', 'check'], {});
    expect(without.code, without.stderr).toBe(0);
    expect(without.stdout).toMatch(/^warning: KEYGATE_MASTER_KEY is not set: routes\[0\] \(llm\) inject an upstream secret and will answer 502 upstream_unavailable$/m);
    expect(without.stdout).toMatch(/^warning: routes\[0\] \(llm\) injects secret "openai", which is not stored/m);
    const withKey = await keygate(['config', 'check']);
    expect(withKey.code).toBe(0);
    expect(withKey.stdout).not.toContain('KEYGATE_MASTER_KEY is not set');
    expect(withKey.stdout).toContain('injects secret "openai", which is not stored');
    expect(await injected()).toBe(502);
  });

  it('refuses a value anywhere but stdin, an empty value, and a missing or malformed master key (exit 2), never echoing the value', async () => {
    const flag = await keygate(['secrets', 'add', '--id', 'openai', '--name', 'OpenAI', `--value=${VALUE}`]);
    expect(flag.code).toBe(2);
    expect(flag.stderr).toMatch(/--value is not accepted/);
    const positional = await keygate(['secrets', 'add', '--id', 'openai', '--name', 'OpenAI', VALUE]);
    expect(positional.code).toBe(2);
    expect(positional.stderr).toMatch(/the value is read from stdin/);
    const empty = await keygate(['secrets', 'add', '--id', 'openai', '--name', 'OpenAI'], { KEYGATE_MASTER_KEY: KEY_1 }, '');
    expect(empty.code).toBe(2);
    expect(empty.stderr).toMatch(/no value on stdin/);
    const noKey = await keygate(['secrets', 'add', '--id', 'openai', '--name', 'OpenAI'], {}, VALUE);
    expect(noKey.code).toBe(2);
    expect(noKey.stderr).toMatch(/^keygate: KEYGATE_MASTER_KEY: is not set/);
    const badKey = await keygate(['secrets', 'add', '--id', 'openai', '--name', 'OpenAI'], { KEYGATE_MASTER_KEY: 'too-short' }, VALUE);
    expect(badKey.code).toBe(2);
    expect(badKey.stderr).toMatch(/^keygate: KEYGATE_MASTER_KEY: must decode to 32 bytes/);
    expect(badKey.stderr).not.toContain('too-short');
    const crlf = await keygate(['secrets', 'add', '--id', 'openai', '--name', 'OpenAI'], { KEYGATE_MASTER_KEY: KEY_1 }, `${VALUE}\r\nx-evil: 1`);
    expect(crlf.code).toBe(2);
    expect(crlf.stderr).toMatch(/the value on stdin must be printable ASCII/);
    // Nothing was stored by any of them.
    expect(parseJsonOutput<unknown[]>(await keygate(['secrets', 'list', '--json']))).toEqual([]);
  });

  it('adds from stdin (one trailing line break dropped); the running server injects it within pollMs', async () => {
    const added = await keygate(['secrets', 'add', '--id', 'openai', '--name', 'OpenAI production'], { KEYGATE_MASTER_KEY: KEY_1 }, `${VALUE}\n`);
    expect(added.code, added.stderr).toBe(0);
    expect(added.stdout).toMatch(/^Stored secret "openai" \(OpenAI production\), encrypted under master key version [0-9a-f]{8}\./);
    await eventually(`Bearer ${VALUE}`);
    const again = await keygate(['secrets', 'add', '--id', 'openai', '--name', 'again'], { KEYGATE_MASTER_KEY: KEY_1 }, OTHER);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/exists; its value cannot be replaced/);
    expect(await injected()).toBe(`Bearer ${VALUE}`);
  });

  it('lists id, name, times and key version, as a table and as JSON', async () => {
    const table = await keygate(['secrets', 'list']);
    expect(table.code).toBe(0);
    expect(table.stdout.split('\n')[0]).toMatch(/^ID\s+NAME\s+CREATED\s+LAST USED\s+KEY VERSION$/);
    expect(table.stdout).toMatch(/^openai\s+OpenAI production\s+\d{4}-\d\d-\d\d \d\d:\d\d/m);
    const json = parseJsonOutput<Record<string, unknown>[]>(await keygate(['secrets', 'list', '--json']));
    expect(json).toEqual([{ id: 'openai', name: 'OpenAI production', createdAt: expect.any(String), lastUsedAt: null, keyVersion: expect.stringMatching(/^[0-9a-f]{8}$/) }]);
    const check = await keygate(['config', 'check']);
    expect(check.stdout).not.toContain('warning: routes[0]');
  });

  it('renames; a move to a new id stops injection under the old one (and config check says so); moving back restores it', async () => {
    const renamed = await keygate(['secrets', 'rename', 'openai', '--name', 'OpenAI (prod)']);
    expect(renamed.code, renamed.stderr).toBe(0);
    expect(renamed.stdout).toBe('Renamed secret "openai" to "OpenAI (prod)".\n');
    const noChange = await keygate(['secrets', 'rename', 'openai']);
    expect(noChange.code).toBe(2);
    const moved = await keygate(['secrets', 'rename', 'openai', '--id', 'openai-v2']);
    expect(moved.code, moved.stderr).toBe(0);
    await eventually(502);
    const check = await keygate(['config', 'check']);
    expect(check.code).toBe(0);
    expect(check.stdout).toContain('warning: routes[0] (llm) injects secret "openai", which is not stored');
    expect((await keygate(['secrets', 'rename', 'openai-v2', '--id', 'openai'])).code).toBe(0);
    await eventually(`Bearer ${VALUE}`);
  });

  it('rewrap after a rotation: every secret readable by a server that has only the new key', async () => {
    await serve.stop();
    const rewrap = await keygate(['secrets', 'rewrap'], { KEYGATE_MASTER_KEY: KEY_2, KEYGATE_MASTER_KEY_PREVIOUS: KEY_1 });
    expect(rewrap.code, rewrap.stderr).toBe(0);
    expect(rewrap.stdout).toMatch(/^Re-encrypted 1 secret under master key version ([0-9a-f]{8}) \(0 already were\)\./);
    const listed = parseJsonOutput<{ keyVersion: string }[]>(await keygate(['secrets', 'list', '--json'], { KEYGATE_MASTER_KEY: KEY_2 }));
    expect(listed.map((s) => s.keyVersion)).toEqual([/version ([0-9a-f]{8})/.exec(rewrap.stdout)![1]]);
    serve = await start({ KEYGATE_MASTER_KEY: KEY_2 });
    expect(await injected()).toBe(`Bearer ${VALUE}`);
    // The old key alone can no longer read it: config check names the problem.
    const check = await keygate(['config', 'check'], { KEYGATE_MASTER_KEY: KEY_1 });
    expect(check.stdout).toMatch(/injects secret "openai", encrypted under master key version [0-9a-f]{8}, which is neither KEYGATE_MASTER_KEY nor KEYGATE_MASTER_KEY_PREVIOUS/);
  });

  it('removes: the running server stops injecting within pollMs; removing again is exit 1', async () => {
    // The config's route llm names it: --force (the refusal: secret-usages-cli.test.ts).
    const removed = await keygate(['secrets', 'remove', 'openai', '--force'], { KEYGATE_MASTER_KEY: KEY_2 });
    expect(removed.code, removed.stderr).toBe(0);
    expect(removed.stdout).toMatch(/^Removed secret "openai"/);
    await eventually(502, 1000);
    const res = await rawRequest(serve.url, { path: '/llm/x', headers: { 'x-api-key': userKey } });
    expect(res.json).toMatchObject({ code: 'upstream_unavailable', detail: expect.stringContaining('"openai"') });
    const again = await keygate(['secrets', 'remove', 'openai'], { KEYGATE_MASTER_KEY: KEY_2 });
    expect(again.code).toBe(1);
    expect(again.stderr).toBe('keygate: no secret with id "openai"\n');
  });

  it('never printed a value: not in any command output, nor in the servers\' logs', async () => {
    await serve.stop();
    expect(outputs.length).toBeGreaterThan(15);
    const texts = [...outputs.flatMap((o) => [o.stdout, o.stderr]), ...servers.flatMap((s) => [s.stdout(), s.stderr()])];
    for (const text of texts) {
      expect(text.includes(VALUE)).toBe(false);
      expect(text.includes(VALUE.slice(-16))).toBe(false);
      expect(text.includes(OTHER)).toBe(false);
    }
    // The servers logged the 502s with the secret id.
    expect(servers.some((s) => /"secretId":"openai"/.test(s.stdout()))).toBe(true);
  });
});

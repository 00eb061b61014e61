/**
 * `keygate secrets usages` and `keygate secrets remove [--force]` as a user runs them, beside
 * a running `keygate serve` on the same embedded store (issue 19): the CLI reads the config
 * file it was given, the server answers for the configuration in force, which follows SIGHUP.
 * The last test walks docs/secrets.md's rotation procedure with the same commands: add the
 * new value, repoint the route in the file, config check, reload (SIGHUP), usages of the old
 * id empty on both sides, remove without --force.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { rawRequest } from '../helpers/http.ts';
import { freePorts, parseJsonOutput, runKeygate, spawnKeygate, tempDir, type CliResult, type KeygateProcess, type TempDir } from '../helpers/process.ts';
import { startUpstream, type TestUpstream } from '../helpers/upstream.ts';

const MASTER_KEY = randomBytes(32).toString('base64');
const VALUES = {
  openai: `sk-usage-e2e-${randomBytes(16).toString('hex')}`,
  'openai-2': `sk-usage-e2e-new-${randomBytes(16).toString('hex')}`,
  'stripe-signing': `whsec_${randomBytes(24).toString('base64')}`,
  spare: `spare-e2e-${randomBytes(16).toString('hex')}`,
};

// Each CLI run loads TypeScript (about a second of CPU); a test runs up to eight of them on a shared machine.
vi.setConfig({ testTimeout: 90_000 });

let dir: TempDir;
let configFile: string;
let ports: [number, number];
let serve: KeygateProcess;
let up: TestUpstream;
let adminKey: string;
let userKey: string;
const outputs: CliResult[] = [];

/** The config file, with the llm route injecting `llmSecret`. */
function writeConfig(llmSecret: string): string {
  return dir.writeYaml('keygate.yaml', {
    listen: { host: '127.0.0.1', port: ports[0] },
    admin: { host: '127.0.0.1', port: ports[1] },
    store: { path: join(dir.path, 'data', 'keygate.db'), pollMs: 50 },
    log: { level: 'info' },
    routes: [
      { name: 'llm', pathPrefix: '/llm', upstream: up.url, secret: { id: llmSecret, header: 'authorization', template: 'Bearer {value}' } },
      { name: 'stripe', pathPrefix: '/hooks/stripe', upstream: up.url, auth: { required: false }, webhook: { scheme: 'stripe', secrets: ['stripe-signing'] } },
      { name: 'ghost', pathPrefix: '/ghost', upstream: up.url, secret: { id: 'ghost', header: 'authorization' } },
    ],
  });
}

async function keygate(args: string[], input?: string): Promise<CliResult> {
  const result = await runKeygate([...args, '--config', configFile], { env: { KEYGATE_MASTER_KEY: MASTER_KEY }, input });
  outputs.push(result);
  return result;
}

/** The running server's admin API, as the platform admin. */
async function admin(method: string, path: string): Promise<{ status: number; json: any; text: string }> {
  const res = await fetch(serve.adminUrl + path, { method, headers: { 'x-api-key': adminKey } });
  const text = await res.text();
  outputs.push({ code: res.status, signal: null, stdout: text, stderr: '' });
  return { status: res.status, json: JSON.parse(text), text };
}

/** Polls `check` until it holds (the server's log is written asynchronously), for up to 10 s. */
async function until(check: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not within 10 s: ${check.toString()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function injected(): Promise<string | number> {
  const before = up.received.length;
  const res = await rawRequest(serve.url, { path: '/llm/x', headers: { 'x-api-key': userKey } });
  return res.status === 200 ? String(up.received[before]!.headers.authorization) : res.status;
}

beforeAll(async () => {
  dir = tempDir('keygate-usages-e2e-');
  up = await startUpstream((req, res) => {
    req.resume();
    req.on('end', () => res.end('ok'));
  });
  ports = (await freePorts(2)) as [number, number];
  configFile = writeConfig('openai');
  serve = await spawnKeygate(configFile, { env: { KEYGATE_MASTER_KEY: MASTER_KEY } });
  adminKey = parseJsonOutput<{ key: string }>(await keygate(['keys', 'create', '--tenant', 'system', '--role', 'admin', '--name', 'root', '--json'])).key;
  userKey = parseJsonOutput<{ key: string }>(await keygate(['keys', 'create', '--tenant', 'acme', '--name', 'agent', '--json'])).key;
  for (const id of ['openai', 'stripe-signing', 'spare'] as const) {
    const added = await keygate(['secrets', 'add', '--id', id, '--name', `${id} token`], VALUES[id]);
    expect(added.code, added.stderr).toBe(0);
  }
}, 120_000);

afterAll(async () => {
  await serve?.stop();
  await up?.close();
  dir?.remove();
});

describe('keygate secrets usages / remove', () => {
  it('usages: each place the config file names it, as text and JSON; not used; dangling; unknown; bad id', async () => {
    const text = await keygate(['secrets', 'usages', 'openai']);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toBe(`Secret "openai" (openai token) is used by ${configFile}:\n  route llm (routes[0].secret.id)\n`);
    const json = await keygate(['secrets', 'usages', 'stripe-signing', '--json']);
    expect(parseJsonOutput(json)).toEqual({ id: 'stripe-signing', name: 'stripe-signing token', stored: true, usages: [{ kind: 'webhook_verifier', route: 'stripe', path: 'routes[1].webhook.secrets[0]' }] });
    const unused = await keygate(['secrets', 'usages', 'spare']);
    expect(unused.code).toBe(0);
    expect(unused.stdout).toBe(`Secret "spare" (spare token) is not used: ${configFile} does not name it.\n`);
    const dangling = await keygate(['secrets', 'usages', 'ghost']);
    expect(dangling.code).toBe(0);
    expect(dangling.stdout).toMatch(/^Secret "ghost" is not stored, but .* names it .*\n {2}route ghost \(routes\[2\]\.secret\.id\)\n$/);
    const unknown = await keygate(['secrets', 'usages', 'nope']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toBe(`keygate: no secret with id "nope", and ${configFile} names none\n`);
    const bad = await keygate(['secrets', 'usages', 'NOT/AN/ID']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^keygate: <id>: must be 1-64 lower-case/);
    expect(bad.stderr).not.toContain('NOT/AN/ID');
    expect((await keygate(['secrets', 'usages'])).code).toBe(2);
  });

  it('remove refuses a secret the config names (exit 1, every usage and --force named), and the server refuses too (409)', async () => {
    const refused = await keygate(['secrets', 'remove', 'openai']);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toBe('');
    expect(refused.stderr).toContain(`keygate: secret "openai" was not removed: ${configFile} names it\n  route llm (routes[0].secret.id)\n`);
    expect(refused.stderr).toContain('--force');
    const api = await admin('DELETE', '/v1/secrets/openai');
    expect(api.status).toBe(409);
    expect(api.json).toMatchObject({ code: 'conflict', detail: expect.stringContaining('route llm (routes[0].secret.id)') });
    expect(parseJsonOutput<{ id: string }[]>(await keygate(['secrets', 'list', '--json'])).map((s) => s.id).sort()).toEqual(['openai', 'spare', 'stripe-signing']);
    expect(await injected()).toBe(`Bearer ${VALUES.openai}`);
    // A secret nothing names goes without --force.
    const spare = await keygate(['secrets', 'remove', 'spare']);
    expect(spare.code, spare.stderr).toBe(0);
    expect(spare.stdout).toBe(`Removed secret "spare" (spare token). ${configFile} does not name it.\n`);
  });

  it('remove --force removes a used secret, says what it broke (--json too), and the removal is audited with it', async () => {
    const forced = await keygate(['secrets', 'remove', 'stripe-signing', '--force', '--json']);
    expect(forced.code, forced.stderr).toBe(0);
    expect(JSON.parse(forced.stdout)).toMatchObject({ id: 'stripe-signing', removed: true, usages: [{ kind: 'webhook_verifier', route: 'stripe', path: 'routes[1].webhook.secrets[0]' }] });
    const audit = await admin('GET', '/v1/audit?limit=20');
    expect(audit.json.entries.find((e: { action: string; target: string }) => e.action === 'secret.remove' && e.target === 'stripe-signing')).toMatchObject({
      actor: 'cli',
      detail: { forced: true, brokenUsages: 'webhook verifier of route stripe (routes[1].webhook.secrets[0])' },
    });
    // Still named by the file: a dangling reference now, on both sides.
    expect(parseJsonOutput(await keygate(['secrets', 'usages', 'stripe-signing', '--json']))).toMatchObject({ stored: false });
    expect((await admin('GET', '/v1/secrets/stripe-signing/usages')).json).toMatchObject({ stored: false, usages: [{ route: 'stripe' }] });
    expect((await keygate(['secrets', 'remove', 'stripe-signing', '--force'])).code).toBe(1);
  });

  it('the rotation of docs/secrets.md: add, repoint, config check, SIGHUP, usages empty, remove without --force', async () => {
    // 1. The new value as a new secret.
    const added = await keygate(['secrets', 'add', '--id', 'openai-2', '--name', 'OpenAI production (new)'], VALUES['openai-2']);
    expect(added.code, added.stderr).toBe(0);
    // 2. Repoint the route in the file; config check finds the new secret stored.
    writeConfig('openai-2');
    const check = await keygate(['config', 'check']);
    expect(check.code, check.stderr).toBe(0);
    expect(check.stdout).not.toContain('"openai-2", which is not stored');
    // The file no longer names the old one, but the server still runs the old configuration.
    expect((await keygate(['secrets', 'usages', 'openai'])).stdout).toContain('is not used');
    expect((await admin('GET', '/v1/secrets/openai/usages')).json.usages).toEqual([{ kind: 'route_secret', route: 'llm', path: 'routes[0].secret.id' }]);
    expect((await admin('DELETE', '/v1/secrets/openai')).status).toBe(409);
    // 3. Reload with SIGHUP.
    serve.child.kill('SIGHUP');
    await until(async () => (await admin('GET', '/v1/secrets/openai/usages')).json.usages.length === 0);
    await until(() => serve.logLines().some((l) => l.msg === 'configuration reloaded'));
    // 4. Nothing uses the old one, in the file or in force; the new one is what the route injects.
    expect((await admin('GET', '/v1/secrets/openai/usages')).json).toEqual({ id: 'openai', name: 'openai token', stored: true, usages: [] });
    expect((await admin('GET', '/v1/secrets/openai-2/usages')).json.usages).toEqual([{ kind: 'route_secret', route: 'llm', path: 'routes[0].secret.id' }]);
    expect(await injected()).toBe(`Bearer ${VALUES['openai-2']}`);
    // 5. Removed without --force; the new one is now the protected one.
    const removed = await keygate(['secrets', 'remove', 'openai']);
    expect(removed.code, removed.stderr).toBe(0);
    expect(removed.stdout).toMatch(/^Removed secret "openai" \(openai token\)\./);
    expect((await keygate(['secrets', 'remove', 'openai-2'])).code).toBe(1);
    expect((await admin('DELETE', '/v1/secrets/openai-2')).status).toBe(409);
    expect(await injected()).toBe(`Bearer ${VALUES['openai-2']}`);
  });

  it('never printed a value: not in any command output or API answer, nor in the server\'s log', async () => {
    await serve.stop();
    const texts = [...outputs.flatMap((o) => [o.stdout, o.stderr]), serve.stdout(), serve.stderr()];
    for (const value of Object.values(VALUES)) for (const text of texts) expect(text.includes(value)).toBe(false);
  });
});

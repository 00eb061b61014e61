/**
 * Sandbox keys from the `keygate` command, as a user runs it: `keys create --environment
 * sandbox` makes a `kg_sandbox_<tenant>_…` key, `keys list` shows every key's environment
 * (table and --json) and filters by it, bad values exit 2 naming the flag; the running
 * `keygate serve` sends the new key to the route's sandbox upstream only and refuses it on a
 * route without one.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectProblem, rawRequest } from '../helpers/http.ts';
import { freePorts, parseJsonOutput, runKeygate, spawnKeygate, tempDir, type CliResult, type KeygateProcess, type TempDir } from '../helpers/process.ts';
import { startUpstream, type TestUpstream } from '../helpers/upstream.ts';

interface Listed {
  id: string;
  name: string;
  prefix: string;
  environment: 'live' | 'sandbox';
  key?: string;
}

let dir: TempDir;
let configFile: string;
let serve: KeygateProcess;
let live: TestUpstream;
let sandbox: TestUpstream;

function keygate(...args: string[]): Promise<CliResult> {
  return runKeygate([...args, '--config', configFile]);
}

beforeAll(async () => {
  dir = tempDir('keygate-sandbox-cli-');
  [live, sandbox] = await Promise.all([startUpstream(), startUpstream()]);
  const [listen, admin] = (await freePorts(2)) as [number, number];
  configFile = dir.writeYaml('keygate.yaml', {
    listen: { host: '127.0.0.1', port: listen },
    admin: { host: '127.0.0.1', port: admin },
    store: { path: join(dir.path, 'data', 'keygate.db') },
    routes: [
      { name: 'api', pathPrefix: '/api', upstream: live.url, sandbox: { upstream: sandbox.url } },
      { name: 'live-only', pathPrefix: '/live', upstream: live.url },
    ],
  });
  serve = await spawnKeygate(configFile);
}, 30_000);

afterAll(async () => {
  await serve?.stop('SIGTERM', 5000);
  await Promise.all([live?.close(), sandbox?.close()]);
  dir?.remove();
});

describe('keygate keys --environment', () => {
  let sandboxKey: Listed;
  let liveKey: Listed;

  it('keys create --environment sandbox --json: a kg_sandbox_ key whose record says sandbox; without the flag, live', async () => {
    sandboxKey = parseJsonOutput<Listed>(await keygate('keys', 'create', '--tenant', 'acme', '--name', 'try-out', '--environment', 'sandbox', '--json'));
    expect(sandboxKey.key).toMatch(/^kg_sandbox_acme_[0-9a-f]{64}$/);
    expect(sandboxKey.environment).toBe('sandbox');
    expect(sandboxKey.prefix.startsWith('kg_sandbox_acme_')).toBe(true);
    liveKey = parseJsonOutput<Listed>(await keygate('keys', 'create', '--tenant', 'acme', '--name', 'production', '--json'));
    expect(liveKey.key).toMatch(/^kg_acme_[0-9a-f]{64}$/);
    expect(liveKey.environment).toBe('live');
  });

  it('the text answer of create says it is a sandbox key', async () => {
    const res = await keygate('keys', 'create', '--tenant', 'acme', '--name', 'try-out-2', '--environment', 'sandbox');
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/sandbox/);
    expect(res.stdout).toMatch(/kg_sandbox_acme_[0-9a-f]{64}/);
  });

  it('keys list shows the environment of every key, and --environment filters', async () => {
    const table = await keygate('keys', 'list', '--tenant', 'acme');
    expect(table.code, table.stderr).toBe(0);
    const [header, ...rows] = table.stdout.trim().split('\n');
    expect(header).toMatch(/\bENV\b/);
    expect(rows.find((r) => r.includes(sandboxKey.id))).toMatch(/\bsandbox\b/);
    expect(rows.find((r) => r.includes(liveKey.id))).toMatch(/\blive\b/);

    const all = parseJsonOutput<Listed[]>(await keygate('keys', 'list', '--tenant', 'acme', '--json'));
    expect(Object.fromEntries(all.map((r) => [r.id, r.environment]))).toMatchObject({ [sandboxKey.id]: 'sandbox', [liveKey.id]: 'live' });
    expect(all.every((r) => r.key === undefined)).toBe(true);

    const sandboxes = parseJsonOutput<Listed[]>(await keygate('keys', 'list', '--environment', 'sandbox', '--json'));
    expect(sandboxes.map((r) => r.name).sort()).toEqual(['try-out', 'try-out-2']);
    const lives = parseJsonOutput<Listed[]>(await keygate('keys', 'list', '--environment', 'live', '--json'));
    expect(lives.map((r) => r.id)).toEqual([liveKey.id]);
  });

  it('a bad environment is bad usage (exit 2), naming the flag; --help documents it', async () => {
    for (const args of [
      ['keys', 'create', '--tenant', 'acme', '--name', 'x', '--environment', 'staging'],
      ['keys', 'list', '--environment', 'prod'],
    ]) {
      const res = await keygate(...args);
      expect(res.code, args.join(' ')).toBe(2);
      expect(res.stderr).toMatch(/--environment must be "live" or "sandbox"/);
    }
    const help = await keygate('keys', 'create', '--help');
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('--environment live|sandbox');
  });

  it('the running server sends the sandbox key to the sandbox upstream only, and refuses it where there is none', async () => {
    let res = await rawRequest(serve.url, { path: '/api/cli-sandbox', headers: { 'x-api-key': sandboxKey.key! } });
    expect(res.status, res.body).toBe(200);
    expect(sandbox.received.map((r) => [r.url, r.headers['x-auth-environment']])).toEqual([['/api/cli-sandbox', 'sandbox']]);
    res = await rawRequest(serve.url, { path: '/api/cli-live', headers: { 'x-api-key': liveKey.key! } });
    expect(res.status).toBe(200);
    expect(live.received.map((r) => [r.url, r.headers['x-auth-environment']])).toEqual([['/api/cli-live', 'live']]);
    res = await rawRequest(serve.url, { path: '/live/cli', headers: { 'x-api-key': sandboxKey.key! } });
    expectProblem(res, 403, 'forbidden_environment');
    expect(live.received).toHaveLength(1);
    expect(sandbox.received).toHaveLength(1);
  });
});

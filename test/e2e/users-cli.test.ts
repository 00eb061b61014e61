/**
 * `keygate users` and `keygate groups` as a user runs them, beside a running `keygate serve`
 * on the shipped example config (config/keygate.yaml on free ports, a temporary embedded
 * store, the built-in echo upstream as in the README's quick start): a tenant group, a user
 * in it, a key for the user (`keys create --user`), list and show; the running server gives
 * the key its user's group, follows a change of group, refuses the key (401 user_disabled)
 * while the user is disabled and accepts it again once enabled — every change written by
 * another process, the CLI. Bad input exits 2 with a message naming the flag or argument,
 * an unknown user or a group in use exits 1; never a stack trace.
 */
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { expectProblem, rawRequest, type RawResponse } from '../helpers/http.ts';
import { parseJsonOutput, runKeygate, shippedConfig, shippedPorts, spawnKeygate, tempDir, type CliResult, type KeygateProcess, type TempDir } from '../helpers/process.ts';

interface PublicUser {
  tenant: string;
  name: string;
  displayName: string;
  group: string;
  disabled: boolean;
  disabledAt: string | null;
}

// Each CLI run loads TypeScript (about a second of CPU), and a test here runs up to a dozen.
vi.setConfig({ testTimeout: 90_000 });

let dir: TempDir;
let configFile: string;
let serve: KeygateProcess;
let key: { id: string; key: string; user: string | null; permissionsFrom: string; permissions: string[]; group: string | null };

function keygate(...args: string[]): Promise<CliResult> {
  return runKeygate([...args, '--config', configFile]);
}

function echo(path = '/echo/users'): Promise<RawResponse> {
  return rawRequest(serve.url, { path, headers: { 'x-api-key': key.key } });
}

/** Polls the running server until `accept` holds for its answer (the CLI's write reaches it through the store's feed). */
async function until(accept: (res: RawResponse) => boolean, limitMs = 10_000): Promise<RawResponse> {
  const started = performance.now();
  for (;;) {
    const res = await echo();
    if (accept(res)) return res;
    if (performance.now() - started > limitMs) throw new Error(`the server still answered ${res.status} ${res.body} after ${limitMs} ms`);
    await sleep(25);
  }
}

/** A failed command: its exit status, its one-line message, and no stack trace. */
function expectFailure(res: CliResult, code: 1 | 2, message: RegExp): void {
  expect(res.code, res.stderr).toBe(code);
  expect(res.stderr).toMatch(message);
  expect(res.stderr.startsWith('keygate: ')).toBe(true);
  expect(res.stderr).not.toMatch(/^\s+at /m);
  expect(res.stdout).toBe('');
}

beforeAll(async () => {
  dir = tempDir('keygate-users-cli-');
  const { listen, admin, echo: echoPort } = await shippedPorts();
  const example = shippedConfig();
  const exampleEcho = `http://127.0.0.1:${example.echo.port}`;
  configFile = dir.writeYaml('keygate.yaml', {
    ...example,
    listen: { ...example.listen, host: '127.0.0.1', port: listen },
    admin: { ...example.admin, host: '127.0.0.1', port: admin },
    store: { ...example.store, path: join(dir.path, 'data', 'keygate.db') },
    echo: { ...example.echo, host: '127.0.0.1', port: echoPort },
    routes: (example.routes as Record<string, any>[]).map((route) => (route.upstream === exampleEcho ? { ...route, upstream: `http://127.0.0.1:${echoPort}` } : route)),
  });
  // The example's config group, which a user can be moved to.
  expect(example.permissionGroups).toEqual({ readers: ['echo:read'] });
  serve = await spawnKeygate(configFile);
}, 30_000);

afterAll(async () => {
  try {
    await serve?.stop('SIGTERM', 5000);
  } finally {
    dir?.remove();
  }
});

describe('keygate users and groups beside a running keygate serve', () => {
  it('groups create makes a tenant group; groups list shows it beside the config group', async () => {
    const created = parseJsonOutput(await keygate('groups', 'create', '--tenant', 'acme', '--name', 'writers', '--permissions', 'echo:write,echo:read', '--json'));
    expect(created).toMatchObject({ tenant: 'acme', name: 'writers', permissions: ['echo:read', 'echo:write'], source: 'tenant' });
    const listed = parseJsonOutput<{ tenant: string | null; name: string; source: string }[]>(await keygate('groups', 'list', '--json'));
    expect(listed.map((g) => [g.tenant, g.name, g.source])).toEqual([
      [null, 'readers', 'config'],
      ['acme', 'writers', 'tenant'],
    ]);
    const table = await keygate('groups', 'list', '--tenant', 'acme');
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toMatch(/^TENANT\s+NAME\s+SOURCE\s+PERMISSIONS$/m);
    expect(table.stdout).toMatch(/^acme\s+writers\s+tenant\s+echo:read,echo:write$/m);
  });

  it('users create puts a user in the group; keys create --user makes a key that acts as it', async () => {
    const user = parseJsonOutput<PublicUser>(await keygate('users', 'create', '--tenant', 'acme', '--name', 'alice', '--group', 'writers', '--display-name', 'Alice Liddell', '--json'));
    expect(user).toMatchObject({ tenant: 'acme', name: 'alice', displayName: 'Alice Liddell', group: 'writers', disabled: false, disabledAt: null });
    key = parseJsonOutput(await keygate('keys', 'create', '--tenant', 'acme', '--name', 'alice-laptop', '--user', 'alice', '--json'));
    expect(key).toMatchObject({ user: 'alice', permissionsFrom: 'user', permissions: [], group: null });
    // The running server gives it the user's group, and tells the upstream who it acts as.
    const res = await until((r) => r.status === 200);
    expect(res.json.headers['x-auth-user']).toBe('alice');
    expect(res.json.headers['x-auth-permissions']).toBe('echo:read,echo:write');
  });

  it('users list and users show (with the keys acting as the user), as tables and --json', async () => {
    const table = await keygate('users', 'list');
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toMatch(/^TENANT\s+NAME\s+DISPLAY NAME\s+GROUP\s+STATUS\s+CREATED$/m);
    expect(table.stdout).toMatch(/^acme\s+alice\s+Alice Liddell\s+writers\s+enabled\s/m);
    expect(parseJsonOutput<PublicUser[]>(await keygate('users', 'list', '--tenant', 'acme', '--json')).map((u) => u.name)).toEqual(['alice']);
    expect(parseJsonOutput<PublicUser[]>(await keygate('users', 'list', '--tenant', 'globex', '--json'))).toEqual([]);

    const shown = await keygate('users', 'show', 'acme', 'alice');
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toMatch(/group\s+writers \(echo:read, echo:write\)/);
    expect(shown.stdout).toContain('1 working key acting as it');
    expect(shown.stdout).toMatch(new RegExp(`^${key.id}\\s+alice-laptop\\s.*\\bactive\\s+the user's group`, 'm'));
    const json = parseJsonOutput<PublicUser & { keys: { id: string; permissionsFrom: string; key?: string }[] }>(await keygate('users', 'show', 'acme', 'alice', '--json'));
    expect(json).toMatchObject({ name: 'alice', group: 'writers', disabled: false });
    expect(json.keys.map((k) => [k.id, k.permissionsFrom])).toEqual([[key.id, 'user']]);
    expect(JSON.stringify(json)).not.toContain(key.key);
  });

  it('a group in use is not deleted (exit 1, naming the user)', async () => {
    expectFailure(await keygate('groups', 'delete', 'acme', 'writers'), 1, /group "writers" is used by users alice/);
  });

  it('users update --group moves the user: the running server gives its key the new group', async () => {
    const res = await keygate('users', 'update', 'acme', 'alice', '--group', 'readers');
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toContain('group writers → readers');
    const answer = await until((r) => r.status === 200 && r.json.headers['x-auth-permissions'] === 'echo:read');
    expect(answer.json.headers['x-auth-user']).toBe('alice');
    // Nothing uses the tenant group now: it can go.
    const deleted = await keygate('groups', 'delete', 'acme', 'writers');
    expect(deleted.code, deleted.stderr).toBe(0);
    expect(parseJsonOutput<{ name: string }[]>(await keygate('groups', 'list', '--tenant', 'acme', '--json')).map((g) => g.name)).toEqual(['readers']);
  });

  it('users disable: the running server refuses the key with 401 user_disabled; users enable: it works again', async () => {
    const disabled = await keygate('users', 'disable', 'acme', 'alice');
    expect(disabled.code, disabled.stderr).toBe(0);
    expect(disabled.stdout).toContain('401 user_disabled');
    const refused = await until((r) => r.status !== 200);
    expectProblem(refused, 401, 'user_disabled');
    expect(refused.headers['www-authenticate']).toMatch(/^Bearer realm="keygate"/);
    expect((await keygate('users', 'list', '--tenant', 'acme')).stdout).toMatch(/^acme\s+alice\s+Alice Liddell\s+readers\s+disabled since /m);
    expect(parseJsonOutput<PublicUser>(await keygate('users', 'show', 'acme', 'alice', '--json'))).toMatchObject({ disabled: true, disabledAt: expect.any(String) });
    // A disabled user gets no new keys either.
    expectFailure(await keygate('keys', 'create', '--tenant', 'acme', '--name', 'another', '--user', 'alice'), 1, /disabled/);

    const enabled = parseJsonOutput<PublicUser>(await keygate('users', 'enable', 'acme', 'alice', '--json'));
    expect(enabled).toMatchObject({ disabled: false, disabledAt: null, group: 'readers' });
    const back = await until((r) => r.status === 200);
    expect(back.json.headers['x-auth-permissions']).toBe('echo:read');
  });

  it('bad input exits 2 with a message that names the flag or argument', async () => {
    expectFailure(await keygate('users', 'create', '--tenant', 'acme', '--name', 'bob'), 2, /^keygate: --group is required$/m);
    expectFailure(await keygate('users', 'create', '--tenant', 'acme', '--name', 'bob', '--group', 'nope'), 2, /--group: "nope" is neither a group of tenant "acme" nor defined in permissionGroups/);
    expectFailure(await keygate('users', 'create', '--tenant', 'Acme', '--name', 'bob', '--group', 'readers'), 2, /--tenant: must match/);
    expectFailure(await keygate('users', 'create', '--tenant', 'acme', '--name', 'bob', '--group', 'readers', '--colour', 'red'), 2, /--colour/);
    expectFailure(await keygate('users', 'show', 'ACME', 'alice'), 2, /<tenant>: must match/);
    expectFailure(await keygate('users', 'show', 'acme'), 2, /users show needs <tenant> <name>/);
    expectFailure(await keygate('users', 'update', 'acme', 'alice'), 2, /--group G, --display-name D/);
    expectFailure(await keygate('users', 'update', 'acme', 'alice', '--group', 'gone'), 2, /--group: "gone" is neither/);
    expectFailure(await keygate('users', 'frobnicate'), 2, /unknown command "users frobnicate"/);
    expectFailure(await keygate('groups', 'create', '--tenant', 'acme', '--name', 'ops', '--permissions', 'echo:read,not a permission'), 2, /--permissions: "not a permission" is not a valid permission name/);
    expectFailure(await keygate('groups', 'create', '--tenant', 'acme', '--name', 'bad name', '--permissions', 'echo:read'), 2, /--name: must be 1-64 letters/);
    expectFailure(await keygate('groups', 'update', 'acme', 'ops'), 2, /--permissions is required/);
    // Nothing was written by any of them.
    expect(parseJsonOutput<PublicUser[]>(await keygate('users', 'list', '--json')).map((u) => u.name)).toEqual(['alice']);
    expect(parseJsonOutput<{ name: string }[]>(await keygate('groups', 'list', '--json')).map((g) => g.name)).toEqual(['readers']);
  });

  it('an unknown user or group, a taken name or a config group exits 1 with a clear message', async () => {
    expectFailure(await keygate('users', 'show', 'acme', 'nobody'), 1, /^keygate: tenant "acme" has no user "nobody"$/m);
    expectFailure(await keygate('users', 'disable', 'globex', 'alice'), 1, /tenant "globex" has no user "alice"/);
    expectFailure(await keygate('users', 'create', '--tenant', 'acme', '--name', 'alice', '--group', 'readers'), 1, /tenant "acme" already has a user "alice"/);
    expectFailure(await keygate('groups', 'delete', 'acme', 'nothing'), 1, /tenant "acme" has no group "nothing"/);
    expectFailure(await keygate('groups', 'update', 'acme', 'readers', '--permissions', 'echo:write'), 1, /"readers" is a group of the configuration/);
    expectFailure(await keygate('groups', 'create', '--tenant', 'acme', '--name', 'readers', '--permissions', 'echo:write'), 1, /"readers" is a group of the configuration/);
  });

  it('--help prints each group\'s usage (exit 0); the top-level help lists users and groups', async () => {
    for (const args of [['users', '--help'], ['users', 'create', '--help'], ['groups', '--help'], ['groups', 'delete', '-h']]) {
      const res = await keygate(...args);
      expect(res.code, args.join(' ')).toBe(0);
      expect(res.stdout).toContain(`keygate ${args[0]} list [--tenant T] [--json]`);
    }
    const top = await runKeygate(['--help']);
    expect(top.code).toBe(0);
    expect(top.stdout).toMatch(/^ {2}users list\|create\|show\|update\|disable\|enable/m);
    expect(top.stdout).toMatch(/^ {2}groups list\|create\|update\|delete/m);
  });
});

/**
 * Rate limits and quotas from the `keygate` command, as an operator runs it, beside a running
 * `keygate serve` on the embedded store (another process: every change reaches the server
 * through the database file): `keys create --rate-limit` (429 rate_limited on the request
 * past the limit), `--quota` (429 quota_exhausted once spent; `keys quota` shows what is
 * left; `--top-up` lets more through), `keys limits --set|--clear` followed by the running
 * server, `keys create --user` saying the key acts as the user and takes its group, group
 * and tenant limits (`groups create --rate-limits`, `tenants limits|quota`), `--json`
 * answers, `--help`, and bad values exiting 2 naming the flag (unknown keys, top-ups of no
 * quota: 1); never a stack trace.
 */
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { expectProblem, rawRequest, type RawResponse } from '../helpers/http.ts';
import { freePorts, parseJsonOutput, runKeygate, spawnKeygate, tempDir, type CliResult, type KeygateProcess, type TempDir } from '../helpers/process.ts';
import { startUpstream, type TestUpstream } from '../helpers/upstream.ts';

interface Created {
  id: string;
  key: string;
  tenant: string;
  rateLimits: string[];
  quota: string | null;
  user: string | null;
  permissionsFrom: 'key' | 'user';
}
interface QuotaStatus {
  scope: 'key' | 'tenant';
  quota: string;
  used: number;
  remaining: number;
  resetsAt: string | null;
}

// Each CLI run loads TypeScript (about a second of CPU); a test here runs several.
vi.setConfig({ testTimeout: 90_000 });

let dir: TempDir;
let configFile: string;
let serve: KeygateProcess;
let upstream: TestUpstream;

function keygate(...args: string[]): Promise<CliResult> {
  return runKeygate([...args, '--config', configFile]);
}

function call(key: string, path = '/api/limits'): Promise<RawResponse> {
  return rawRequest(serve.url, { path, headers: { 'x-api-key': key } });
}

/** Polls the running server until `accept` holds (a CLI change reaches it through the file). */
async function until(key: string, accept: (res: RawResponse) => boolean, limitMs = 10_000): Promise<RawResponse> {
  const started = performance.now();
  for (;;) {
    const res = await call(key);
    if (accept(res)) return res;
    if (performance.now() - started > limitMs) throw new Error(`the server still answered ${res.status} ${res.body} after ${limitMs} ms`);
    await sleep(50);
  }
}

/** A command that worked: exit 0, nothing on stderr. */
function ok(res: CliResult): string {
  expect(res.code, res.stderr).toBe(0);
  expect(res.stderr).toBe('');
  return res.stdout;
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
  dir = tempDir('keygate-limits-cli-');
  upstream = await startUpstream();
  const [listen, admin] = (await freePorts(2)) as [number, number];
  configFile = dir.writeYaml('keygate.yaml', {
    listen: { host: '127.0.0.1', port: listen },
    admin: { host: '127.0.0.1', port: admin },
    store: { path: join(dir.path, 'data', 'keygate.db') },
    limits: { failedAuth: { max: 0 } },
    routes: [{ name: 'api', pathPrefix: '/api', upstream: upstream.url }],
  });
  serve = await spawnKeygate(configFile);
}, 30_000);

afterAll(async () => {
  await serve?.stop('SIGTERM', 5000);
  await upstream?.close();
  dir?.remove();
});

describe('keygate keys create --rate-limit / --quota beside a running keygate serve', () => {
  it('a key created with --rate-limit 2/10s gets 429 rate_limited on its third request; the upstream sees two', async () => {
    const key = parseJsonOutput<Created>(await keygate('keys', 'create', '--tenant', 'acme', '--name', 'rated', '--rate-limit', '2/10s', '--json'));
    expect(key.rateLimits).toEqual(['2/10s']);
    const before = upstream.received.length;
    expect((await call(key.key)).status).toBe(200);
    expect((await call(key.key)).status).toBe(200);
    const third = await call(key.key);
    expectProblem(third, 429, 'rate_limited');
    expect(Number(third.headers['retry-after'])).toBeGreaterThan(0);
    expect(third.headers['ratelimit']).toMatch(/"key:2\/10s";r=0/);
    expect(upstream.received.length - before).toBe(2);
  });

  it('--rate-limit repeats; the text answer names the limits and the quota', async () => {
    const out = ok(await keygate('keys', 'create', '--tenant', 'acme', '--name', 'both', '--rate-limit', '20/s', '--rate-limit', '50000/1d', '--quota', '10000/day'));
    expect(out).toMatch(/^Rate limits: 20\/s, 50000\/1d; quota: 10000\/day\.$/m);
    expect(out).toMatch(/^ {2}kg_acme_[0-9a-f]{64}$/m);
  });

  it('--quota 3/day: three requests, then 429 quota_exhausted; keys quota shows it spent; --top-up 1 lets one more through', async () => {
    const key = parseJsonOutput<Created>(await keygate('keys', 'create', '--tenant', 'acme', '--name', 'budget', '--quota', '3/day', '--json'));
    expect(key.quota).toBe('3/day');
    for (let i = 0; i < 3; i++) expect((await call(key.key)).status).toBe(200);
    const refused = await call(key.key);
    expectProblem(refused, 429, 'quota_exhausted');
    const midnight = new Date();
    midnight.setUTCHours(24, 0, 0, 0);
    expect(parseJsonOutput(await keygate('keys', 'quota', key.id, '--json'))).toEqual({ id: key.id, quotas: [{ scope: 'key', quota: '3/day', used: 3, remaining: 0, resetsAt: midnight.toISOString() }] });
    expect(ok(await keygate('keys', 'quota', key.id))).toMatch(/^ {2}key\s+3\/day: 3 used, 0 left; starts afresh /m);

    const topped = parseJsonOutput<QuotaStatus>(await keygate('keys', 'quota', key.id, '--top-up', '1', '--json'));
    expect(topped).toMatchObject({ scope: 'key', quota: '3/day', remaining: 1 });
    expect((await call(key.key)).status).toBe(200);
    expectProblem(await call(key.key), 429, 'quota_exhausted');
    expect(ok(await keygate('keys', 'quota', key.id, '--top-up', '2'))).toMatch(/^Topped up the quota of key key_\w+ \("budget", tenant "acme"\) by 2\. Now 3\/day: .*, 2 left; starts afresh /);
  });

  it('keys quota --set and --clear change the budget the running server charges', async () => {
    const key = parseJsonOutput<Created>(await keygate('keys', 'create', '--tenant', 'acme', '--name', 'later-budget', '--json'));
    expect((await call(key.key)).status).toBe(200);
    expect(ok(await keygate('keys', 'quota', key.id))).toMatch(/key\s+none \(set one: keygate keys quota key_\w+ --set 10000\/day\)/);
    const set = parseJsonOutput<Created>(await keygate('keys', 'quota', key.id, '--set', '2 credits', '--json'));
    expect(set.quota).toBe('2 credits');
    // The server drops its cached identity on the record change, then charges the new budget.
    await until(key.key, (res) => res.status === 429);
    expectProblem(await call(key.key), 429, 'quota_exhausted');
    expect(ok(await keygate('keys', 'quota', key.id, '--clear'))).toMatch(/^Removed the quota of key key_\w+ \("later-budget", tenant "acme"\) \(was 2 credits\)/);
    await until(key.key, (res) => res.status === 200);
  });

  it('keys limits --set reaches the running server; --clear removes the limit; without flags it shows every limit that applies', async () => {
    const key = parseJsonOutput<Created>(await keygate('keys', 'create', '--tenant', 'acme', '--name', 'tightened', '--json'));
    expect((await call(key.key)).status).toBe(200);
    const limited = parseJsonOutput<Created>(await keygate('keys', 'limits', key.id, '--set', '1/10s', '--json'));
    expect(limited.rateLimits).toEqual(['1/10s']);
    expectProblem(await until(key.key, (res) => res.status === 429), 429, 'rate_limited');
    const shown = ok(await keygate('keys', 'limits', key.id));
    expect(shown).toMatch(/^Rate limits of key key_\w+ \("tightened", tenant "acme"\):$/m);
    expect(shown).toMatch(/^ {2}key\s+1\/10s$/m);
    expect(shown).toMatch(/^ {2}group\s+none$/m);
    expect(ok(await keygate('keys', 'limits', key.id, '--clear'))).toMatch(/now has no rate limits of its own \(was 1\/10s\)/);
    await until(key.key, (res) => res.status === 200);
    expect((await call(key.key)).status).toBe(200);
  });
});

describe('keys acting as users, group and tenant limits', () => {
  it('groups create --rate-limits; keys create --user says the key acts as the user and takes its group; keys limits shows the group’s', async () => {
    const group = parseJsonOutput<{ rateLimits: string[] }>(await keygate('groups', 'create', '--tenant', 'globex', '--name', 'agents', '--permissions', 'echo:read', '--rate-limits', '2/10s,100/1d', '--json'));
    expect(group.rateLimits).toEqual(['2/10s', '100/1d']);
    ok(await keygate('users', 'create', '--tenant', 'globex', '--name', 'ada', '--group', 'agents'));
    const created = ok(await keygate('keys', 'create', '--tenant', 'globex', '--name', 'ada-laptop', '--user', 'ada'));
    expect(created).toMatch(/^It acts as user "ada" of tenant "globex": it has no permissions of its own but those of the user's group \(now "agents"\), as it is at each request \(permissionsFrom: user\)\.$/m);
    const label = ok(await keygate('keys', 'create', '--tenant', 'globex', '--name', 'labelled', '--user', 'nobody'));
    expect(label).toMatch(/^"nobody" is not a user of tenant "globex": it is only sent upstream as the user's name; the key's permissions are its own\.$/m);

    const key = created.match(/kg_globex_[0-9a-f]{64}/)![0];
    const id = created.match(/key_\w+/)![0];
    // The group's limit counts each of its keys: the third request is refused.
    expect((await call(key)).status).toBe(200);
    expect((await call(key)).status).toBe(200);
    expectProblem(await call(key), 429, 'rate_limited');
    expect(ok(await keygate('keys', 'limits', id))).toMatch(/^ {2}group\s+agents: 2\/10s, 100\/1d \(each key of the group\)$/m);
    expect(ok(await keygate('groups', 'list', '--tenant', 'globex'))).toMatch(/^globex\s+agents\s+tenant\s+echo:read\s+2\/10s,100\/1d$/m);
    const updated = parseJsonOutput<{ permissions: string[]; rateLimits: string[] }>(await keygate('groups', 'update', 'globex', 'agents', '--rate-limits', 'none', '--json'));
    expect(updated).toMatchObject({ permissions: ['echo:read'], rateLimits: [] });
  });

  it('tenants limits sets a tenant budget the server charges across its keys; tenants quota shows and tops it up', async () => {
    expect(parseJsonOutput(await keygate('tenants', 'limits', 'initech', '--json'))).toEqual({ tenant: 'initech', rateLimits: [], quota: null, updatedAt: null, quotaStatus: null });
    const set = parseJsonOutput<{ tenant: string; rateLimits: string[]; quota: string | null }>(await keygate('tenants', 'limits', 'initech', '--rate-limits', '100/s', '--quota', '2/day', '--json'));
    expect(set).toMatchObject({ tenant: 'initech', rateLimits: ['100/s'], quota: '2/day' });
    const [a, b] = await Promise.all([keygate('keys', 'create', '--tenant', 'initech', '--name', 'a', '--json'), keygate('keys', 'create', '--tenant', 'initech', '--name', 'b', '--json')]).then((r) => r.map((x) => parseJsonOutput<Created>(x)));
    expect((await call(a!.key)).status).toBe(200);
    expect((await call(b!.key)).status).toBe(200);
    expectProblem(await call(a!.key), 429, 'quota_exhausted');
    expect(ok(await keygate('tenants', 'quota', 'initech'))).toMatch(/^Quota of tenant "initech", all its keys together: 2\/day: 2 used, 0 left; starts afresh /);
    expect(ok(await keygate('keys', 'quota', b!.id))).toMatch(/^ {2}tenant\s+2\/day: 2 used, 0 left; .*\(all its keys together\)$/m);
    const topped = parseJsonOutput<QuotaStatus>(await keygate('tenants', 'quota', 'initech', '--top-up', '1', '--json'));
    expect(topped).toMatchObject({ scope: 'tenant', quota: '2/day', remaining: 1 });
    expect((await call(b!.key)).status).toBe(200);
    expectProblem(await call(a!.key), 429, 'quota_exhausted');

    // Only the quota changes: the rate limits stay; --clear-quota removes the budget.
    const text = ok(await keygate('tenants', 'limits', 'initech', '--clear-quota'));
    expect(text).toMatch(/^Tenant "initech" now has no quota \(was 2\/day\)/);
    expect(text).toMatch(/^ {2}rate limits\s+100\/s$/m);
    await until(a!.key, (res) => res.status === 200);
  });
});

describe('bad input, unknown keys, help', () => {
  it('bad values exit 2 naming the flag; nothing is created', async () => {
    const cases: [string[], RegExp][] = [
      [['keys', 'create', '--tenant', 'acme', '--name', 'bad', '--rate-limit', '2/x'], /^keygate: --rate-limit: "2\/x": must be <count>\/<period>/],
      [['keys', 'create', '--tenant', 'acme', '--name', 'bad', '--rate-limit', '5/45d'], /^keygate: --rate-limit: "5\/45d": the period must be at most 31d/],
      [['keys', 'create', '--tenant', 'acme', '--name', 'bad', '--quota', '3/week'], /^keygate: --quota: "3\/week": must be <count>\/day/],
      [['keys', 'limits', 'key_0000', '--set', '0/s'], /^keygate: --set: "0\/s": the count must be a whole number/],
      [['keys', 'limits', 'key_0000', '--set', '1/s', '--clear'], /^keygate: give either --set or --clear, not both/],
      [['keys', 'quota', 'key_0000', '--set', '3/fortnight'], /^keygate: --set: "3\/fortnight": must be/],
      [['keys', 'quota', 'key_0000', '--top-up', '0'], /^keygate: --top-up must be a whole number/],
      [['keys', 'quota', 'key_0000', '--top-up', 'lots'], /^keygate: --top-up must be a whole number/],
      [['keys', 'quota', 'key_0000', '--set', '3/day', '--top-up', '1'], /^keygate: give one of --set Q, --clear or --top-up N/],
      [['tenants', 'limits', 'acme', '--rate-limits', 'fast'], /^keygate: --rate-limits: "fast": must be/],
      [['tenants', 'limits', 'acme', '--quota', 'plenty'], /^keygate: --quota: "plenty": must be/],
      [['tenants', 'limits', 'acme', '--quota', '3/day', '--clear-quota'], /^keygate: give either --quota or --clear-quota/],
      [['tenants', 'limits', 'ACME'], /^keygate: <tenant>: must match/],
      [['tenants', 'quota', 'acme', '--top-up', '-1'], /--top-up/],
      [['groups', 'create', '--tenant', 'acme', '--name', 'bad', '--permissions', 'echo:read', '--rate-limits', '1/y'], /^keygate: --rate-limits: "1\/y": must be/],
    ];
    const results = await Promise.all(cases.map(([args]) => keygate(...args)));
    results.forEach((res, i) => expectFailure(res, 2, cases[i]![1]));
    const listed = parseJsonOutput<{ name: string }[]>(await keygate('keys', 'list', '--tenant', 'acme', '--json'));
    expect(listed.some((k) => k.name === 'bad')).toBe(false);
    const groups = parseJsonOutput<{ name: string }[]>(await keygate('groups', 'list', '--tenant', 'acme', '--json'));
    expect(groups.some((g) => g.name === 'bad')).toBe(false);
  });

  it('an unknown key, or a top-up of what has no quota, exits 1', async () => {
    const plain = parseJsonOutput<Created>(await keygate('keys', 'create', '--tenant', 'acme', '--name', 'no-budget', '--json'));
    const [unknownLimits, unknownQuota, noKeyQuota, noTenantQuota] = await Promise.all([
      keygate('keys', 'limits', 'key_0000'),
      keygate('keys', 'quota', 'key_0000', '--top-up', '5'),
      keygate('keys', 'quota', plain.id, '--top-up', '5'),
      keygate('tenants', 'quota', 'nobody-here', '--top-up', '5'),
    ]);
    expectFailure(unknownLimits, 1, /^keygate: no key with id "key_0000"$/m);
    expectFailure(unknownQuota, 1, /^keygate: no key with id "key_0000"$/m);
    expectFailure(noKeyQuota, 1, /^keygate: the key has no quota to top up$/m);
    expectFailure(noTenantQuota, 1, /^keygate: the tenant has no quota to top up$/m);
  });

  it('--help on each command documents the flags; the top-level help names them', async () => {
    const [keysHelp, limitsHelp, tenantsHelp, tenantQuotaHelp, groupsHelp, top] = await Promise.all([
      keygate('keys', 'create', '--help'),
      keygate('keys', 'limits', '--help'),
      keygate('tenants', '--help'),
      keygate('tenants', 'quota', '--help'),
      keygate('groups', 'update', '--help'),
      runKeygate(['--help']),
    ]);
    for (const res of [keysHelp, limitsHelp, tenantsHelp, tenantQuotaHelp, groupsHelp, top]) expect(res.code, res.stderr).toBe(0);
    expect(keysHelp.stdout).toContain('[--rate-limit 20/s]… [--quota 10000/day]');
    expect(limitsHelp.stdout).toContain('keygate keys limits <key-id> [--set 20/s,50000/1d | --clear] [--json]');
    expect(limitsHelp.stdout).toContain('keygate keys quota <key-id> [--set Q | --clear | --top-up N] [--json]');
    expect(tenantsHelp.stdout).toContain('keygate tenants limits <tenant> [--rate-limits');
    expect(tenantQuotaHelp.stdout).toContain('keygate tenants quota <tenant> [--top-up N] [--json]');
    expect(groupsHelp.stdout).toContain('--rate-limits 2/s,100/1d');
    expect(top.stdout).toMatch(/keys create\|list\|revoke\|rotate\|usage\|limits\|quota/);
    expect(top.stdout).toMatch(/^ {2}tenants limits\|quota/m);
  });
});

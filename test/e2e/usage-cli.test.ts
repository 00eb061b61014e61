/**
 * Per-key usage from the `keygate` command, as a user runs it beside a real `keygate serve`:
 * requests through the proxy are counted in the server's memory (nothing written yet), the
 * server writes them when it stops (SIGTERM), and `keys usage <id>` shows them — a table per
 * day, or --json as the admin API answers; `keys list --unused-days N` lists keys not used
 * for N days; bad values exit 2 naming the flag, an unknown id exits 1.
 */
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseJsonOutput, runKeygate, spawnKeygate, tempDir, type CliResult, type KeygateProcess, type TempDir } from '../helpers/process.ts';
import { startUpstream, type TestUpstream } from '../helpers/upstream.ts';

type Day = { date: string; total: number; byRoute: Record<string, Record<string, number>> };

let dir: TempDir;
let configFile: string;
let serve: KeygateProcess;
let upstream: TestUpstream;
let used: { id: string; key: string };
let idle: { id: string; key: string };
const today = () => new Date().toISOString().slice(0, 10);

function keygate(...args: string[]): Promise<CliResult> {
  return runKeygate([...args, '--config', configFile]);
}

beforeAll(async () => {
  dir = tempDir('keygate-usage-cli-');
  upstream = await startUpstream();
  configFile = dir.writeYaml('keygate.yaml', {
    listen: { host: '127.0.0.1', port: 0 },
    admin: { host: '127.0.0.1', port: 0 },
    store: { path: join(dir.path, 'data', 'keygate.db') },
    // Only shutdown writes during this test: what the CLI shows before it is what was written, nothing.
    lifecycle: { usageFlushMs: 3_600_000 },
    routes: [
      { name: 'api', pathPrefix: '/api', upstream: upstream.url },
      { name: 'billing', pathPrefix: '/billing', upstream: upstream.url, auth: { permissions: ['billing:read'] } },
    ],
  });
  serve = await spawnKeygate(configFile);
  used = parseJsonOutput(await keygate('keys', 'create', '--tenant', 'acme', '--name', 'busy', '--json'));
  idle = parseJsonOutput(await keygate('keys', 'create', '--tenant', 'acme', '--name', 'forgotten', '--json'));
}, 60_000);

afterAll(async () => {
  await serve?.stop('SIGTERM', 5000);
  await upstream?.close();
  dir?.remove();
});

describe('keygate keys usage', () => {
  it('shows nothing while the server holds the counts, and what it served once it has stopped (written at shutdown)', async () => {
    for (let i = 0; i < 3; i++) expect((await fetch(`${serve.url}/api/x`, { headers: { 'x-api-key': used.key } })).status).toBe(200);
    expect((await fetch(`${serve.url}/billing/x`, { headers: { 'x-api-key': used.key } })).status).toBe(403);

    const before = parseJsonOutput<{ id: string; days: Day[] }>(await keygate('keys', 'usage', used.id, '--json'));
    expect(before.days).toHaveLength(30);
    expect(before.days.every((d) => d.total === 0)).toBe(true);

    expect(await serve.stop('SIGTERM', 10_000)).toEqual({ code: 0, signal: null });
    const after = parseJsonOutput<{ id: string; tenant: string; days: Day[] }>(await keygate('keys', 'usage', used.id, '--json'));
    expect(after).toMatchObject({ id: used.id, tenant: 'acme' });
    expect(after.days).toHaveLength(30);
    expect(after.days[29]).toEqual({ date: today(), total: 4, byRoute: { api: { '2xx': 3 }, billing: { '403': 1 } } });
    expect(after.days.slice(0, 29).every((d) => d.total === 0)).toBe(true);
  });

  it('prints a table: one line per day, oldest first, with the counts by route, and the total', async () => {
    const res = await keygate('keys', 'usage', used.id, '--days', '3');
    expect(res.code, res.stderr).toBe(0);
    const lines = res.stdout.trim().split('\n');
    expect(lines[0]).toContain(used.id);
    const header = lines.findIndex((l) => /^DATE\s+TOTAL\s+BY ROUTE$/.test(l));
    expect(header).toBeGreaterThan(0);
    const rows = lines.slice(header + 1);
    expect(rows).toHaveLength(4);
    expect(rows[0]).toMatch(/^\d{4}-\d{2}-\d{2}\s+0\s+-$/);
    expect(rows[2]).toMatch(new RegExp(`^${today()}\\s+4\\s+api: 2xx 3; billing: 403 1$`));
    expect(rows[3]).toMatch(/^TOTAL\s+4$/);
  });

  it('refuses bad values with exit 2 naming the flag, and an unknown key with exit 1', async () => {
    for (const days of ['0', '36', 'x']) {
      const res = await keygate('keys', 'usage', used.id, '--days', days);
      expect(res.code).toBe(2);
      expect(res.stderr).toContain('--days');
      expect(res.stderr).not.toMatch(/\n\s+at /);
    }
    const missing = await keygate('keys', 'usage');
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('<key-id>');
    const unknown = await keygate('keys', 'usage', 'key_00000000000000000000');
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('no key with id "key_00000000000000000000"');
  });
});

describe('keygate keys list --unused-days', () => {
  it('lists the keys not used for N days: last used before then, or never used and created before then', async () => {
    // "forgotten" was made 40 days ago (the file is written directly: nothing makes a key in the past).
    const db = new DatabaseSync(join(dir.path, 'data', 'keygate.db'));
    db.prepare('UPDATE keys SET created_at = ? WHERE id = ?').run(Date.now() - 40 * 86_400_000, idle.id);
    db.close();
    const listed = (n: string) => keygate('keys', 'list', '--tenant', 'acme', '--unused-days', n, '--json').then((r) => parseJsonOutput<{ name: string }[]>(r).map((k) => k.name));
    expect(await listed('30')).toEqual(['forgotten']);
    expect(await listed('41')).toEqual([]);
    const table = await keygate('keys', 'list', '--tenant', 'acme', '--unused-days', '30');
    expect(table.stdout).toContain(idle.id);
    expect(table.stdout).not.toContain(used.id);
    expect((await keygate('keys', 'list', '--tenant', 'acme', '--unused-days', '41')).stdout.trim()).toBe('No active keys unused for 41 days.');
    for (const n of ['0', '-1', 'soon']) {
      const res = await keygate('keys', 'list', '--unused-days', n);
      expect(res.code).toBe(2);
      expect(res.stderr).toContain('--unused-days');
    }
  });
});

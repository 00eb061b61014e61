/**
 * The secret scan that runs after the whole suite (global-setup.ts) is only worth something
 * if it finds leaks: here a keygate is captured into a directory of its own, made to relay
 * planted leaks (an upstream that echoes a key, its hash and a secret value back through
 * keygate), and the scan must report each of them — and must not report the one place a key
 * may appear, its creation response from the admin API.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rawRequest } from '../helpers/http.ts';
import { startUpstream, type TestUpstream } from '../helpers/upstream.ts';
import { startHostileKeygate, type HostileKeygate } from './helpers/capture.ts';
import { readCaptures, scan } from './helpers/secret-scan.ts';
import { testHasher } from '../helpers/pepper.ts';

const dir = mkdtempSync(join(tmpdir(), 'keygate-hostile-plant-'));
const planted = { key: '', hash: '', secret: 'planted-upstream-secret-0123456789' };
let upstream: TestUpstream;
let kg: HostileKeygate;

beforeAll(async () => {
  // A misbehaving upstream: it answers with whatever it is told to leak.
  upstream = await startUpstream((req, res) => {
    req.resume();
    const leak = new URL(req.url ?? '/', 'http://x').searchParams.get('leak') ?? '';
    res.setHeader('x-leak', leak);
    res.end(`{"leaked":"${leak}"}`);
  });
  kg = await startHostileKeygate('plant', { routes: [{ name: 'leaky', pathPrefix: '/leaky', upstream: upstream.url }] }, { dir, notifications: true });
});

afterAll(async () => {
  await kg?.stop();
  await upstream?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('the secret scanner', () => {
  it('finds a key, a key hash and a secret value that keygate relayed, and allows the key in its creation response', async () => {
    const admin = await kg.keys.create({ tenant: 'system', role: 'admin', name: 'root' });
    const viaApi = await kg.createKeyViaApi(admin.key, { tenant: 'acme', name: 'api-created' });
    await kg.addSecret('planted', planted.secret);
    planted.key = viaApi.key;
    planted.hash = testHasher(viaApi.key);
    // Before anything leaks: the creation response alone is not a finding.
    expect(scan(readCaptures(dir))).toEqual([]);
    for (const leak of [planted.key.toUpperCase(), planted.hash, planted.secret]) {
      const res = await rawRequest(kg.url, { path: `/leaky/x?leak=${encodeURIComponent(leak)}`, headers: { 'x-api-key': admin.key } });
      expect(res.status).toBe(200);
    }
    await kg.stop();
    const findings = scan(readCaptures(dir));
    const kinds = findings.map((f) => f.kind);
    // Each leak is in a response header and in the body: twice.
    expect(kinds.filter((k) => k === 'key')).toHaveLength(2);
    expect(kinds.filter((k) => k === 'hash')).toHaveLength(2);
    expect(kinds.filter((k) => k === 'secret')).toHaveLength(2);
    expect(findings.every((f) => f.file.endsWith('.responses'))).toBe(true);
    // The report names the kind and where, never the whole secret.
    expect(JSON.stringify(findings.map((f) => f.hint))).not.toContain(planted.secret);
  });

  it('captured the audit log and the notifications, and they hold nothing secret', () => {
    const { files } = readCaptures(dir);
    const audit = [...files].find(([name]) => name.endsWith('.audit'))![1];
    const notifications = [...files].find(([name]) => name.endsWith('.notifications'))![1];
    expect(audit).toContain('key.create');
    expect(audit).toContain('secret.create');
    expect(notifications).toContain('key.created');
    expect(notifications).toContain('secret.created');
    for (const text of [audit, notifications]) {
      expect(text.toLowerCase()).not.toContain(planted.key.slice(-64, -8));
      expect(text).not.toContain(planted.hash);
      expect(text).not.toContain(planted.secret);
    }
  });
});

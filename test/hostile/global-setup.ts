/**
 * vitest global setup: gives the hostile suite one capture directory for the whole run,
 * and when every test file is done — whatever order they ran in, in whichever worker —
 * scans everything the hostile keygates wrote (helpers/capture.ts) for keys, key hashes
 * and secret values. A leak fails the run (vitest exits 1 when a teardown throws).
 *
 * Before that it proves the scanner still finds what it is looking for: a planted capture
 * holds a key, a hash and a secret, and the scan must report each of them.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { generateKey } from '../../src/keys/format.ts';
import type { LedgerEntry } from './helpers/capture.ts';
import { scanDir } from './helpers/secret-scan.ts';

/**
 * Plants a key (in its creation response, allowed, and echoed upper-cased later, a leak), a
 * hash and a secret in a capture of their own, and scans it the way the run is scanned —
 * in pieces small enough that every planted value crosses a piece boundary somewhere.
 */
function selfCheck(): void {
  const key = generateKey('kg', 'plant');
  const ledger: LedgerEntry[] = [
    { kind: 'key', value: key, responsesAfter: 10 },
    { kind: 'hash', value: 'PlantedHashPlantedHashPlantedHashPlantedHas' },
    { kind: 'secret', value: 'planted-secret-value' },
  ];
  const response = `${key}HTTP/1.1 200 OK\r\n\r\n{"echo":"${key.toUpperCase()}"}`;
  const log = `${'{"msg":"filler"}\n'.repeat(7)}{"msg":"x","h":"PlantedHashPlantedHashPlantedHashPlantedHas"} planted-secret-value`;
  const dir = mkdtempSync(join(tmpdir(), 'keygate-hostile-selfcheck-'));
  try {
    writeFileSync(join(dir, 'plant-1.responses'), response, 'latin1');
    writeFileSync(join(dir, 'plant-1.log'), log, 'latin1');
    writeFileSync(join(dir, 'plant-1.secrets.json'), JSON.stringify(ledger));
    const expected = [
      `hash@plant-1.log:${log.indexOf('Planted')}`,
      `key@plant-1.responses:${response.lastIndexOf(key.slice(-64, -8).toUpperCase())}`,
      `secret@plant-1.log:${log.indexOf('planted-secret')}`,
    ].sort();
    for (const [piece, overlap] of [[16 * 1024 * 1024, 16 * 1024], [81, 80], [100, 80], [157, 90]] as const) {
      const got = scanDir(dir, piece, overlap).findings.map((f) => `${f.kind}@${f.file}:${f.offset}`).sort();
      if (JSON.stringify(got) !== JSON.stringify(expected)) throw new Error(`the secret scanner is broken (pieces of ${piece}): planted leaks found as ${JSON.stringify(got)}, expected ${JSON.stringify(expected)}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export default function setup(project: TestProject): () => void {
  const dir = mkdtempSync(join(tmpdir(), 'keygate-hostile-capture-'));
  project.provide('hostileCaptureDir', dir);
  return () => {
    selfCheck();
    const { findings, files, bytes, keygates, secrets } = scanDir(dir);
    console.log(`[hostile secret scan] ${keygates} keygates, ${files} files, ${(bytes / 1024 / 1024).toFixed(1)} MB scanned for ${secrets} secrets: ${findings.length} found`);
    if (findings.length) {
      const report = findings.slice(0, 20).map((f) => `  ${f.kind} ${f.hint} in ${f.file} at byte ${f.offset}, after ${f.context}`).join('\n');
      throw new Error(`keygate wrote ${findings.length} secret(s) it must never write (capture kept in ${dir}):\n${report}`);
    }
    rmSync(dir, { recursive: true, force: true });
  };
}

/** scripts/check-imports.ts, which `npm test` runs on src/: it must find what it is there to find. */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';

const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

function check(tree: Record<string, string>): { status: number | null; stderr: string } {
  const dir = mkdtempSync(join(tmpdir(), 'keygate-imports-'));
  dirs.push(dir);
  for (const [path, text] of Object.entries(tree)) {
    mkdirSync(join(dir, path, '..'), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  const run = spawnSync(process.execPath, ['scripts/check-imports.ts', dir], { encoding: 'utf8' });
  return { status: run.status, stderr: run.stderr };
}

describe('scripts/check-imports.ts', () => {
  it('passes src/ as it is', () => {
    const run = spawnSync(process.execPath, ['scripts/check-imports.ts', 'src'], { encoding: 'utf8' });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
  });

  it('finds a cycle, and ignores one made only of type imports', () => {
    const cycle = check({ 'a/x.ts': "import { y } from '../b/y.ts';\n", 'b/y.ts': "export { x } from '../a/x.ts';\n" });
    expect(cycle.status).toBe(1);
    expect(cycle.stderr).toContain('import cycle: a/x.ts → b/y.ts → a/x.ts');
    expect(check({ 'a/x.ts': "import type { Y } from '../b/y.ts';\n", 'b/y.ts': "import { x } from '../a/x.ts';\n" }).status).toBe(0);
  });

  it('finds config/ loading the data path, even through another module', () => {
    const run = check({ 'config/s.ts': "import { p } from '../keys/k.ts';\n", 'keys/k.ts': "import {\n  q,\n} from '../pipeline/q.ts';\n", 'pipeline/q.ts': 'export const q = 1;\n' });
    expect(run.status).toBe(1);
    expect(run.stderr).toContain('config/s.ts → keys/k.ts → pipeline/q.ts (config/ must not load');
  });
});

/**
 * Test child processes outlive a test worker that vitest kills (a timed-out file, a crash):
 * a process's 'exit' handlers do not run on SIGKILL, so the `keygate serve` children it
 * started would keep running — and keep ports and CPU — long after the suite. Every helper
 * that spawns one records its pid here (`recordChild`); this global setup's teardown, which
 * runs in vitest's main process once every file is done, kills whatever is still alive.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';

const ENV = 'KEYGATE_TEST_CHILDREN';

/** Notes a spawned child until it exits (a no-op outside a vitest run with this setup). */
export function recordChild(child: ChildProcess): void {
  const dir = process.env[ENV];
  if (dir === undefined || child.pid === undefined) return;
  const file = join(dir, String(child.pid));
  writeFileSync(file, '');
  child.once('exit', () => {
    try {
      unlinkSync(file);
    } catch {
      // already gone
    }
  });
}

function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return '';
  }
}

export default function setup(): () => void {
  const dir = mkdtempSync(join(tmpdir(), 'keygate-test-children-'));
  mkdirSync(dir, { recursive: true });
  // Forked test workers inherit it.
  process.env[ENV] = dir;
  return () => {
    const left: number[] = [];
    for (const name of readdirSync(dir)) {
      const pid = Number(name);
      // A pid can be reused once its process is gone: only a keygate of this repository is killed.
      if (!commandLine(pid).includes('keygate.js')) continue;
      try {
        process.kill(pid, 'SIGKILL');
        left.push(pid);
      } catch {
        // exited meanwhile
      }
    }
    rmSync(dir, { recursive: true, force: true });
    if (left.length) console.warn(`[child reaper] killed ${left.length} keygate process(es) left behind by killed test workers: ${left.join(', ')}`);
  };
}

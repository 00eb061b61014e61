/**
 * deploy/prometheus/keygate-rules.yml: `promtool check rules` accepts it, the promtool unit
 * tests beside it (keygate-rules.test.yml: revocation lag over budget, store errors, limit
 * store errors) pass, and they fail when the rule they test is broken (so they test it).
 * promtool comes from Debian's prometheus package, which .ci/run installs: without it this
 * fails, it does not skip. That every metric the rules name exists is
 * test/integration/deploy-metrics.test.ts's job.
 */
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { rules, RULES_FILE, RULES_TEST_FILE, runTool } from '../../helpers/deploy.ts';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** The rules and their unit tests copied to a temporary directory, the rules changed by `edit`. */
function mutated(edit: (rulesText: string) => string): string {
  const dir = mkdtempSync(join(tmpdir(), 'keygate-rules-'));
  dirs.push(dir);
  const original = readFileSync(RULES_FILE, 'utf8');
  const changed = edit(original);
  expect(changed, 'the edit changed something').not.toBe(original);
  writeFileSync(join(dir, 'keygate-rules.yml'), changed);
  copyFileSync(RULES_TEST_FILE, join(dir, 'keygate-rules.test.yml'));
  return dir;
}

describe('the Prometheus rules', () => {
  it('pass promtool check rules', () => {
    const result = runTool('promtool', ['check', 'rules', RULES_FILE]);
    expect(result.stderr + result.stdout).toMatch(/SUCCESS: \d+ rules found/);
    expect(result.status).toBe(0);
  });

  it('pass their promtool unit tests', () => {
    const result = runTool('promtool', ['test', 'rules', 'keygate-rules.test.yml'], { cwd: join(RULES_FILE, '..') });
    expect(result.stdout + result.stderr).toContain('SUCCESS');
    expect(result.status).toBe(0);
  });

  it.each([
    ['the revocation-lag budget raised', (s: string) => s.replace('keygate_revocation_lag_seconds_bucket[10m]))) > 0.25', 'keygate_revocation_lag_seconds_bucket[10m]))) > 1'), 'KeygateRevocationLagHigh'],
    ['store errors no longer selected', (s: string) => s.replace('keygate_store_lookup_duration_seconds_count{result="error"}', 'keygate_store_lookup_duration_seconds_count{result="timeout"}'), 'KeygateStoreErrors'],
    ['closed limit-store errors waited on for 10 minutes', (s: string) => s.replace(/(policy="closed"\}\[5m\]\)\) > 0\n\s+for: )1m/, '$110m'), 'KeygateLimitStoreErrorsClosed'],
  ])('fail their unit tests with %s', (_what, edit, alert) => {
    const dir = mutated(edit);
    const result = runTool('promtool', ['test', 'rules', 'keygate-rules.test.yml'], { cwd: dir });
    expect(result.status).not.toBe(0);
    expect(result.stdout + result.stderr).toContain(`alertname: ${alert}`);
  });

  it('every alert has a severity (critical, warning or info), a summary and a description', () => {
    const alerts = rules().filter((r) => r.alert !== undefined);
    expect(alerts.length).toBeGreaterThanOrEqual(10);
    for (const a of alerts) {
      expect(['critical', 'warning', 'info'], a.alert).toContain(a.labels?.severity);
      expect(a.annotations?.summary, a.alert).toBeTruthy();
      expect(a.annotations?.description, a.alert).toBeTruthy();
    }
    expect(new Set(alerts.map((a) => a.alert)).size).toBe(alerts.length);
  });

  it('cover what issue 23 asks for', () => {
    const text = rules().map((r) => r.expr).join('\n');
    for (const metric of ['keygate_revocation_lag_seconds_bucket', 'keygate_requests_total', 'keygate_upstream_errors_total', 'keygate_rate_limited_total', 'keygate_limit_store_errors_total', 'keygate_mcp_calls_total', 'keygate_store_lookup_duration_seconds_count', 'keygate_cache_hits_total']) {
      expect(text, metric).toContain(metric);
    }
  });
});

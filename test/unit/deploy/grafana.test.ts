/**
 * deploy/grafana/keygate.json: a dashboard Grafana can import as it is — every query on the
 * chosen Prometheus data source, unique panel ids, panels laid out without overlap in the
 * 24-column grid — with a panel for each thing issue 23 asks to see. That its queries name
 * only what keygate exports is test/integration/deploy-metrics.test.ts's job.
 */
import { describe, expect, it } from 'vitest';
import { dashboard, dashboardExpressions } from '../../helpers/deploy.ts';

type Panel = { id: number; type: string; title: string; gridPos: { x: number; y: number; w: number; h: number }; datasource?: { type: string; uid: string }; targets?: { expr: string; datasource?: { uid: string } }[] };
const d = dashboard() as unknown as { uid: string; title: string; panels: Panel[]; templating: { list: { name: string; type: string; query?: unknown }[] } };

describe('the Grafana dashboard', () => {
  it('has a uid, a title and a Prometheus data source variable every query uses', () => {
    expect(d.uid).toBe('keygate');
    expect(d.title).toBeTruthy();
    const ds = d.templating.list.find((v) => v.type === 'datasource');
    expect(ds?.query).toBe('prometheus');
    for (const p of d.panels.filter((p) => p.type !== 'row')) {
      expect(p.datasource, p.title).toEqual({ type: 'prometheus', uid: `\${${ds!.name}}` });
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
      for (const t of p.targets!) expect(t.datasource?.uid, p.title).toBe(`\${${ds!.name}}`);
    }
  });

  it('has unique panel ids and a layout without overlaps', () => {
    const ids = d.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    const cells = new Set<string>();
    for (const p of d.panels) {
      const { x, y, w, h } = p.gridPos;
      expect(x + w, p.title).toBeLessThanOrEqual(24);
      for (let i = x; i < x + w; i++) for (let j = y; j < y + h; j++) {
        expect(cells.has(`${i},${j}`), `${p.title} overlaps at ${i},${j}`).toBe(false);
        cells.add(`${i},${j}`);
      }
    }
  });

  it('filters every query by the job and instance variables', () => {
    let selectors = 0;
    for (const { where, expr, label } of dashboardExpressions()) {
      if (label !== undefined) continue;
      for (const selector of expr.match(/\b(keygate_\w+|nodejs_\w+|up)\{[^}]*\}|\b(keygate_\w+|nodejs_\w+)\b(?!\{)/g) ?? []) {
        selectors++;
        expect(selector, where).toContain('job="$job"');
        expect(selector, where).toContain('instance=~"$instance"');
      }
    }
    expect(selectors).toBeGreaterThan(20);
  });

  it('shows what issue 23 asks for', () => {
    const byMetric = (m: string) => d.panels.filter((p) => p.targets?.some((t) => t.expr.includes(m))).map((p) => p.title);
    expect(byMetric('keygate_revocation_lag_seconds_bucket')).not.toEqual([]);
    expect(d.panels.some((p) => p.targets?.some((t) => /keygate_requests_total\{[^}]*outcome=~"[^"]*revoked/.test(t.expr) && /by \(outcome\)/.test(t.expr)))).toBe(true);
    expect(byMetric('keygate_upstream_errors_total')).not.toEqual([]);
    expect(byMetric('keygate_rate_limited_total')).not.toEqual([]);
    expect(byMetric('keygate_limit_store_errors_total')).not.toEqual([]);
    expect(d.panels.some((p) => p.targets?.some((t) => t.expr.includes('keygate_mcp_calls_total') && t.expr.includes('decision="refused"')))).toBe(true);
    expect(byMetric('keygate_store_lookup_duration_seconds')).not.toEqual([]);
    expect(d.panels.some((p) => p.targets?.some((t) => t.expr.includes('keygate_cache_hits_total') && t.expr.includes('keygate_cache_misses_total')))).toBe(true);
    expect(byMetric('keygate_open_streams')).not.toEqual([]);
    expect(byMetric('up{')).not.toEqual([]);
  });
});

/**
 * The PromQL reader behind test/integration/deploy-metrics.test.ts: what it takes for a
 * series name, a matcher and a grouping label, so that a name it missed cannot pass unseen.
 */
import { describe, expect, it } from 'vitest';
import { checkExpression, expressionParts, parseExposition } from '../../helpers/promql.ts';

describe('expressionParts', () => {
  it('reads selectors with matchers, skipping functions, aggregations, keywords, numbers and ranges', () => {
    const parts = expressionParts(
      'histogram_quantile(0.99, sum by (instance, le) (rate(keygate_revocation_lag_seconds_bucket{job="$job", instance=~"$instance"}[$__rate_interval]))) > 0.25 and on (instance) sum(rate(x_total[5m] offset 1h)) without (route) > bool 1e-3',
    );
    expect(parts.selectors).toEqual([
      { metric: 'keygate_revocation_lag_seconds_bucket', matchers: [{ label: 'job', op: '=', value: '$job' }, { label: 'instance', op: '=~', value: '$instance' }] },
      { metric: 'x_total', matchers: [] },
    ]);
    expect(parts.groupingLabels).toEqual(['instance', 'le', 'instance', 'route']);
  });

  it('takes a bare name as a selector and `max(...) - on() group_right() ...` apart', () => {
    const parts = expressionParts('max(increase(a_total[10m])) - on() group_right() increase(a_total[10m]) >= 1');
    expect(parts.selectors.map((s) => s.metric)).toEqual(['a_total', 'a_total']);
    expect(expressionParts('up{job="keygate"} == 0').selectors).toEqual([{ metric: 'up', matchers: [{ label: 'job', op: '=', value: 'keygate' }] }]);
  });

  it('refuses what it cannot read rather than passing it', () => {
    expect(() => expressionParts('{__name__="x"}')).toThrow(/without a metric name/);
    expect(() => expressionParts('x{a=b}')).toThrow(/matchers/);
  });
});

describe('checkExpression', () => {
  const exported = parseExposition(
    [
      '# HELP k_total help',
      '# TYPE k_total counter',
      'k_total{route="api",outcome="ok"} 3',
      'k_total{route="api",outcome="revoked"} 1',
      'k_bucket{le="0.5"} 1',
    ].join('\n'),
  );

  it('accepts known names, labels, literal values and alternations; job and instance are the target labels', () => {
    expect(checkExpression('sum by (route, instance) (rate(k_total{job="keygate", outcome=~"ok|revoked"}[5m]))', exported)).toEqual([]);
    expect(checkExpression('histogram_quantile(0.9, sum by (le) (rate(k_bucket[5m])))', exported)).toEqual([]);
    expect(checkExpression('up{job="keygate"} == 0', exported)).toEqual([]);
  });

  it('reports an unknown name, label, value or grouping label', () => {
    expect(checkExpression('rate(k2_total[5m])', exported)).toEqual(["k2_total is not in keygate's /metrics"]);
    expect(checkExpression('rate(k_total{reason="x"}[5m])', exported)).toEqual(['k_total has no label reason']);
    expect(checkExpression('rate(k_total{outcome="stolen"}[5m])', exported)[0]).toMatch(/outcome="stolen"/);
    expect(checkExpression('sum by (tenant) (k_total)', exported)[0]).toMatch(/grouping label tenant/);
    expect(checkExpression('up{route="api"}', exported)[0]).toMatch(/Prometheus's own/);
  });
});

/**
 * The request path's counters and histograms (hot-metrics.ts) expose exactly what
 * prom-client's own Counter and Histogram would for the same observations, alone and summed
 * across workers by AggregatorRegistry.
 */
import { describe, expect, it } from 'vitest';
import { AggregatorRegistry, Counter, Histogram, Registry } from 'prom-client';
import { HotCounter, HotHistogram } from '../../../src/observability/hot-metrics.ts';

function record(hot: Registry, reference: Registry, seed: number): void {
  const hc = new HotCounter(hot, { name: 'kg_requests_total', help: 'Requests.', labelNames: ['route', 'outcome'] });
  const hh = new HotHistogram(hot, { name: 'kg_duration_seconds', help: 'Durations.', labelNames: ['route'], buckets: [0.001, 0.01, 0.1, 1] });
  const pc = new Counter({ name: 'kg_requests_total', help: 'Requests.', labelNames: ['route', 'outcome'], registers: [reference] });
  const ph = new Histogram({ name: 'kg_duration_seconds', help: 'Durations.', labelNames: ['route'], buckets: [0.001, 0.01, 0.1, 1], registers: [reference] });
  hc.labels('api', 'missing'); // a label set that never counted shows nowhere, as with prom-client
  hh.labels('idle');
  for (let i = 0; i < 50; i++) {
    const route = i % 3 === 0 ? 'mcp' : 'api';
    const outcome = i % 7 === 0 ? 'invalid' : 'ok';
    const seconds = ((i * seed) % 17) / 10 ** (i % 4);
    hc.labels(route, outcome).inc();
    pc.labels(route, outcome).inc();
    hh.labels(route).observe(seconds);
    ph.labels(route).observe(seconds);
  }
  // Exactly on a bucket bound: counted in that bucket (le is "less than or equal").
  hh.labels('api').observe(0.01);
  ph.labels('api').observe(0.01);
}

describe('HotCounter and HotHistogram', () => {
  it('expose what prom-client would, byte for byte', async () => {
    const hot = new Registry();
    const reference = new Registry();
    record(hot, reference, 3);
    expect(await hot.metrics()).toBe(await reference.metrics());
  });

  it('sum across workers like prom-client metrics', async () => {
    const hot = [new Registry(), new Registry()];
    const reference = [new Registry(), new Registry()];
    record(hot[0]!, reference[0]!, 3);
    record(hot[1]!, reference[1]!, 5);
    const aggregate = async (registries: Registry[]) => AggregatorRegistry.aggregate(await Promise.all(registries.map((r) => r.getMetricsAsJSON()))).metrics();
    expect(await aggregate(hot)).toBe(await aggregate(reference));
  });
});

/**
 * Counters and histograms for the request path, recorded in plain numbers and handed to
 * prom-client only when /metrics is scraped. A prom-client child (`labels(…).inc()`)
 * converts, validates and hashes its labels on every call; three of them per request were
 * ~7 % of keygate's CPU. Here `labels(…)` is called once per route when the route table is
 * built and returns a cell; recording is an add and, for a histogram, a short bucket scan.
 *
 * The metrics register themselves in the prom-client Registry (the `get()` shape of
 * prom-client's own Counter and Histogram), so exposition, cluster aggregation
 * (AggregatorRegistry) and the output format are prom-client's, unchanged.
 *
 * @example
 *   const requests = new HotCounter(registry, { name: 'x_total', help: '…', labelNames: ['route'] });
 *   const cell = requests.labels('api');   // once, when routes are compiled
 *   cell.inc();                            // per request
 */
import type { Metric, Registry } from 'prom-client';

/** What prom-client's Registry reads from a metric's `get()` (the shape its own metrics return). */
interface Exported {
  name: string;
  help: string;
  type: 'counter' | 'histogram';
  values: { labels: Labels; value: number; metricName?: string }[];
  aggregator: 'sum';
}

interface Definition<L extends string> {
  name: string;
  help: string;
  labelNames: readonly L[];
}

type Labels = Record<string, string | number>;

function labelsOf(names: readonly string[], values: readonly string[]): Labels {
  const labels: Labels = {};
  names.forEach((name, i) => (labels[name] = values[i]!));
  return labels;
}

/** A counter's cell: one label set. */
export class CounterCell {
  value = 0;
  inc(by = 1): void {
    this.value += by;
  }
}

/** A histogram's cell: one label set, non-cumulative bucket counts (the last one is +Inf). */
export class HistogramCell {
  readonly #bounds: readonly number[];
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(bounds: readonly number[]) {
    this.#bounds = bounds;
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    const bounds = this.#bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]!) i++;
    this.counts[i]!++;
    this.sum += value;
    this.count++;
  }
}

abstract class HotMetric<L extends string, C> {
  readonly name: string;
  readonly help: string;
  readonly aggregator = 'sum' as const;
  readonly #labelNames: readonly L[];
  /** label values joined → [labels, cell]; created on first use, kept (like prom-client's children). */
  readonly cells = new Map<string, [Labels, C]>();

  constructor(registry: Registry, definition: Definition<L>) {
    this.name = definition.name;
    this.help = definition.help;
    this.#labelNames = definition.labelNames;
    registry.registerMetric(this as unknown as Metric);
  }

  protected abstract create(): C;

  /** The cell of one label set (call it once and keep it; it is not meant for the hot path). */
  labels(...values: string[]): C {
    if (values.length !== this.#labelNames.length) throw new Error(`${this.name}: expected ${this.#labelNames.length} label values`);
    const id = values.join('\u0000');
    let entry = this.cells.get(id);
    if (entry === undefined) this.cells.set(id, (entry = [labelsOf(this.#labelNames, values), this.create()]));
    return entry[1];
  }

  /** prom-client's Registry asks each metric for its values at scrape time. */
  abstract get(): Promise<Exported>;

  reset(): void {
    this.cells.clear();
  }
}

export class HotCounter<L extends string> extends HotMetric<L, CounterCell> {
  protected create(): CounterCell {
    return new CounterCell();
  }

  async get(): Promise<Exported> {
    // Like prom-client's own children, a label set shows once it has counted something.
    const values = [...this.cells.values()].filter(([, cell]) => cell.value > 0).map(([labels, cell]) => ({ labels, value: cell.value }));
    return { name: this.name, help: this.help, type: 'counter', values, aggregator: this.aggregator };
  }
}

export class HotHistogram<L extends string> extends HotMetric<L, HistogramCell> {
  readonly #bounds: readonly number[];

  constructor(registry: Registry, definition: Definition<L> & { buckets: readonly number[] }) {
    super(registry, definition);
    this.#bounds = [...definition.buckets].sort((a, b) => a - b);
  }

  protected create(): HistogramCell {
    return new HistogramCell(this.#bounds);
  }

  async get(): Promise<Exported> {
    const values: Exported['values'] = [];
    for (const [labels, cell] of this.cells.values()) {
      if (cell.count === 0) continue;
      let cumulative = 0;
      this.#bounds.forEach((le, i) => {
        cumulative += cell.counts[i]!;
        values.push({ labels: { le, ...labels }, value: cumulative, metricName: `${this.name}_bucket` });
      });
      values.push({ labels: { le: '+Inf', ...labels }, value: cell.count, metricName: `${this.name}_bucket` });
      values.push({ labels, value: cell.sum, metricName: `${this.name}_sum` });
      values.push({ labels, value: cell.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: 'histogram', values, aggregator: this.aggregator };
  }
}

/**
 * /metrics under `workers: N`: any worker may receive the scrape (they share the admin
 * port), so it asks the primary, which gathers every worker's registry with prom-client's
 * AggregatorRegistry and answers with the sum.
 */
import cluster from 'node:cluster';
import { randomUUID } from 'node:crypto';
import { AggregatorRegistry, type Registry } from 'prom-client';

const REQUEST = 'keygate:metrics-request';
const RESPONSE = 'keygate:metrics-response';
const TIMEOUT_MS = 5000;

interface MetricsMessage {
  type: string;
  id: string;
  text?: string;
  error?: string;
}

export interface MetricsSource {
  contentType: string;
  text(): Promise<string>;
}

/** In a worker: the cluster-wide text, via the primary. Elsewhere: this registry's. */
export function metricsSource(registry: Registry): MetricsSource {
  if (!cluster.isWorker) return { contentType: registry.contentType, text: () => registry.metrics() };
  AggregatorRegistry.setRegistries([registry]);
  new AggregatorRegistry(); // answers the primary's requests for this worker's metrics
  const pending = new Map<string, { resolve(text: string): void; reject(error: Error): void }>();
  process.on('message', (message: MetricsMessage) => {
    if (message?.type !== RESPONSE) return;
    const waiter = pending.get(message.id);
    if (!waiter) return;
    pending.delete(message.id);
    if (message.text !== undefined) waiter.resolve(message.text);
    else waiter.reject(new Error(message.error ?? 'no metrics from the primary'));
  });
  return {
    contentType: registry.contentType,
    text: () =>
      new Promise<string>((resolve, reject) => {
        const id = randomUUID();
        const timer = setTimeout(() => {
          pending.delete(id);
          reject(new Error('the primary did not answer in time'));
        }, TIMEOUT_MS);
        pending.set(id, {
          resolve: (text) => (clearTimeout(timer), resolve(text)),
          reject: (error) => (clearTimeout(timer), reject(error)),
        });
        process.send!({ type: REQUEST, id } satisfies MetricsMessage);
      }),
  };
}

/** In the primary: answer workers' requests with the aggregate of all workers. */
export function serveClusterMetrics(): void {
  const aggregator = new AggregatorRegistry();
  cluster.on('message', (worker, message: MetricsMessage) => {
    if (message?.type !== REQUEST) return;
    aggregator.clusterMetrics().then(
      (text) => worker.send({ type: RESPONSE, id: message.id, text } satisfies MetricsMessage),
      (error: Error) => worker.send({ type: RESPONSE, id: message.id, error: error.message } satisfies MetricsMessage),
    );
  });
}

/**
 * `keygate_webhook_verifications_total{route, result}`: every delivery on a webhook route,
 * by how its verification ended. Every (route, result) child is created when the route is
 * first prepared, so counting is a property read and an `inc`, and every series exists at 0
 * from the start.
 */
import { Counter, type Registry } from 'prom-client';

export const WEBHOOK_RESULTS = ['ok', 'missing', 'invalid', 'expired', 'replayed', 'too_large', 'unavailable', 'aborted'] as const;
export type WebhookResult = (typeof WEBHOOK_RESULTS)[number];

export type WebhookCounters = Readonly<Record<WebhookResult, Counter.Internal>>;

export class WebhookMetrics {
  readonly #counter: Counter<'route' | 'result'>;
  readonly #byRoute = new Map<string, WebhookCounters>();

  constructor(registry: Registry) {
    this.#counter = new Counter({
      name: 'keygate_webhook_verifications_total',
      help: 'Deliveries on webhook routes by result: ok, missing (no signature headers), invalid (malformed or no signature matches), expired (timestamp outside the tolerance), replayed, too_large, unavailable (signing secret or replay store), aborted (client left or went silent mid-body).',
      labelNames: ['route', 'result'],
      registers: [registry],
    });
  }

  forRoute(route: string): WebhookCounters {
    let counters = this.#byRoute.get(route);
    if (counters === undefined) {
      counters = Object.fromEntries(
        WEBHOOK_RESULTS.map((result) => {
          const child = this.#counter.labels(route, result);
          // Written once so the series is scraped at 0 before anything happens to it.
          child.inc(0);
          return [result, child];
        }),
      ) as Record<WebhookResult, Counter.Internal>;
      this.#byRoute.set(route, counters);
    }
    return counters;
  }
}

/**
 * keygate's Prometheus metrics: one Registry per running keygate (so several instances in
 * one process, as in tests, do not share counters), every metric created up front so the
 * request path only calls `inc`/`observe`/`set` on an existing object. Served on the admin
 * listener at `GET /metrics`.
 *
 * Usage:
 *   const metrics = createMetrics();
 *   verifier.onRevocationApplied = (event, appliedAt) => observeRevocation(metrics, event.at, appliedAt);
 *   res.setHeader('content-type', metrics.registry.contentType);
 *   res.end(await metrics.registry.metrics());
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/** Seconds: pushed revocations normally land in the first buckets; the rest shows stalls. */
export const REVOCATION_LAG_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

export interface KeygateMetrics {
  readonly registry: Registry;
  /** Time from a revocation being written to the store to this instance applying it. */
  readonly revocationLag: Histogram;
  /** The same, for the most recent revocation event. */
  readonly revocationLastLag: Gauge;
  /** Revocation events (one per revoke or revoke-all) this instance applied. */
  readonly revocationsReceived: Counter;
}

export interface MetricsOptions {
  /** Node.js process metrics (CPU, memory, event loop lag, GC); default true. */
  defaultMetrics?: boolean;
}

export function createMetrics(options: MetricsOptions = {}): KeygateMetrics {
  const registry = new Registry();
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });
  return {
    registry,
    revocationLag: new Histogram({
      name: 'keygate_revocation_lag_seconds',
      help: 'Time from a revocation being written to the key store to this instance evicting the key from its cache.',
      buckets: REVOCATION_LAG_BUCKETS,
      registers: [registry],
    }),
    revocationLastLag: new Gauge({
      name: 'keygate_revocation_last_lag_seconds',
      help: 'Revocation lag of the most recent revocation event this instance applied.',
      registers: [registry],
    }),
    revocationsReceived: new Counter({
      name: 'keygate_revocations_received_total',
      help: 'Revocation events (one per revoke or revoke-all) this instance applied to its key cache.',
      registers: [registry],
    }),
  };
}

/**
 * Records one applied revocation event. `writtenAt` is the event's time (the store's clock),
 * `appliedAt` this instance's: a negative difference (clock skew) counts as 0.
 */
export function observeRevocation(metrics: KeygateMetrics, writtenAt: number, appliedAt: number): void {
  const seconds = Math.max(0, appliedAt - writtenAt) / 1000;
  metrics.revocationLag.observe(seconds);
  metrics.revocationLastLag.set(seconds);
  metrics.revocationsReceived.inc();
}

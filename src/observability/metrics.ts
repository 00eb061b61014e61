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
import { HotCounter, HotHistogram } from './hot-metrics.ts';

/**
 * Seconds: a pushed revocation is normally applied well under a millisecond after it was
 * written (the event carries Redis's time to the microsecond), so the buckets start at
 * 50 µs; the rest shows stalls and events replayed from the revocation log after a gap.
 */
export const REVOCATION_LAG_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** Seconds: the request path itself is sub-millisecond; upstreams and stores are slower. */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export interface KeygateMetrics {
  readonly registry: Registry;
  /** Recorded on every request: plain numbers read at scrape time (hot-metrics.ts). */
  readonly requests: HotCounter<'route' | 'status_class' | 'outcome'>;
  readonly requestDuration: HotHistogram<'route'>;
  readonly upstreamDuration: HotHistogram<'route'>;
  readonly upstreamErrors: Counter<'route' | 'kind'>;
  readonly openStreams: Gauge<'route' | 'kind'>;
  readonly storeLatency: Histogram<'result'>;
  /** Time from a revocation being written to the store to this instance applying it. */
  readonly revocationLag: Histogram;
  /** The same, for the most recent revocation event. */
  readonly revocationLastLag: Gauge;
  /** Revocation events (one per revoke or revoke-all) this instance applied. */
  readonly revocationsReceived: Counter;
  /** Connections and requests the proxy listener refused before they reached the gateway (transports/listener-limits.ts). */
  readonly listenerRejections: Counter<'reason'>;
  readonly rateLimited: Counter<'route' | 'scope'>;
  readonly mcpCalls: Counter<'route' | 'method' | 'tool' | 'decision'>;
  readonly limitStoreErrors: Counter<'route' | 'policy'>;
}

export interface MetricsOptions {
  /** Node.js process metrics (CPU, memory, event loop lag, GC); default true. */
  defaultMetrics?: boolean;
}

/** Numbers kept by the cache without prom-client on the hot path, read at scrape time. */
export interface CacheStats {
  readonly stats: { hits: number; misses: number; storeCalls: number; evictions: number };
  readonly size: number;
}

/** A counter that mirrors a monotonic number read at scrape time. */
function mirroredCounter(registry: Registry, name: string, help: string, read: () => number | undefined): void {
  let seen = 0;
  new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      const now = read();
      if (now !== undefined && now > seen) {
        this.inc(now - seen);
        seen = now;
      }
    },
  });
}

export function createMetrics(options: MetricsOptions = {}, cache: () => CacheStats | undefined = () => undefined): KeygateMetrics {
  const registry = new Registry();
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });
  mirroredCounter(registry, 'keygate_cache_hits_total', 'Key verifications answered from the in-process cache (positive or negative entries).', () => cache()?.stats.hits);
  mirroredCounter(registry, 'keygate_cache_misses_total', 'Key verifications that had to ask the store.', () => cache()?.stats.misses);
  mirroredCounter(registry, 'keygate_cache_evictions_total', 'Valid-key cache entries evicted because the cache was full.', () => cache()?.stats.evictions);
  mirroredCounter(registry, 'keygate_store_lookups_total', 'Store lookups made (concurrent misses for one key share one).', () => cache()?.stats.storeCalls);
  new Gauge({
    name: 'keygate_cache_entries',
    help: 'Entries in the valid-key cache.',
    registers: [registry],
    collect() {
      this.set(cache()?.size ?? 0);
    },
  });
  return {
    registry,
    requests: new HotCounter(registry, {
      name: 'keygate_requests_total',
      help: 'Requests by route, status class and authentication outcome.',
      labelNames: ['route', 'status_class', 'outcome'],
    }),
    requestDuration: new HotHistogram(registry, {
      name: 'keygate_request_duration_seconds',
      help: 'Time from a request arriving to its response finishing (streams: until they end).',
      labelNames: ['route'],
      buckets: LATENCY_BUCKETS,
    }),
    upstreamDuration: new HotHistogram(registry, {
      name: 'keygate_upstream_duration_seconds',
      help: "Time from dispatching to the upstream to receiving its response headers.",
      labelNames: ['route'],
      buckets: LATENCY_BUCKETS,
    }),
    upstreamErrors: new Counter({
      name: 'keygate_upstream_errors_total',
      help: 'Upstream failures: kind="timeout" (connect, headers or idle body timeout) or "connection" (refused, reset, closed).',
      labelNames: ['route', 'kind'],
      registers: [registry],
    }),
    openStreams: new Gauge({
      name: 'keygate_open_streams',
      help: 'Long-lived responses open now: kind="sse" (text/event-stream).',
      labelNames: ['route', 'kind'],
      registers: [registry],
    }),
    storeLatency: new Histogram({
      name: 'keygate_store_lookup_duration_seconds',
      help: 'Key store lookups by result ("ok" or "error": unreachable, timed out).',
      labelNames: ['result'],
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
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
    rateLimited: new Counter({
      name: 'keygate_rate_limited_total',
      help: 'Requests refused by a rate limit (429 rate_limited), by route and by the scope of the limit that refused: key (its own or its group\'s), tenant, route.',
      labelNames: ['route', 'scope'],
      registers: [registry],
    }),
    mcpCalls: new Counter({
      name: 'keygate_mcp_calls_total',
      help: 'MCP messages judged by a route\'s policy, by method, tool (the name a call acts on; at most 200 per route, then "other") and decision (allowed, refused).',
      labelNames: ['route', 'method', 'tool', 'decision'],
      registers: [registry],
    }),
    limitStoreErrors: new Counter({
      name: 'keygate_limit_store_errors_total',
      help: "Rate-limit decisions the store could not make (Redis unreachable), by what the route's onStoreError did: open (decided by this instance alone) or closed (503).",
      labelNames: ['route', 'policy'],
      registers: [registry],
    }),
    listenerRejections: new Counter({
      name: 'keygate_listener_rejections_total',
      help: 'Refused by the proxy listener itself: reason="connections_per_address", "connections_total", "bad_request" (unparseable request), "headers_too_large", "request_timeout".',
      labelNames: ['reason'],
      registers: [registry],
    }),
  };
}

/**
 * Records one applied revocation event. `writtenAt` is the event's time (the store's clock),
 * `appliedAt` this instance's: a negative difference (clock skew) counts as 0.
 */
export function observeRevocation(metrics: KeygateMetrics, writtenAt: number, appliedAt: number): void {
  // appliedAt comes from Date.now() (whole ms); the same instant to the microsecond is used
  // when it agrees with it, so that sub-millisecond lags are not rounded to 0 or 1 ms.
  const precise = performance.timeOrigin + performance.now();
  const applied = precise >= appliedAt && precise - appliedAt < 1 ? precise : appliedAt;
  const seconds = Math.max(0, applied - writtenAt) / 1000;
  metrics.revocationLag.observe(seconds);
  metrics.revocationLastLag.set(seconds);
  metrics.revocationsReceived.inc();
}

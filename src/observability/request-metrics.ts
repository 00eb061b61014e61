/**
 * The request path's metrics, fed through the gateway's hooks. Label sets are bounded:
 * route name (never a raw path or a key id), status class and auth outcome. Every child is
 * created when the route table is built, so an observation is an array lookup and an `inc`.
 */
import type { Counter, Gauge } from 'prom-client';
import type { CounterCell, HistogramCell } from './hot-metrics.ts';
import type { Exchange, HttpExchange, AuthOutcome } from '../pipeline/exchange.ts';
import type { GatewayHooks } from '../transports/http.ts';
import type { Route } from '../routing/router.ts';
import type { WebSocketHooks } from '../transports/websocket.ts';
import { UPSTREAM_TIMEOUTS } from '../pipeline/forward.ts';
import type { KeygateMetrics } from './metrics.ts';

export const OUTCOMES: readonly AuthOutcome[] = ['ok', 'public', 'missing', 'invalid', 'revoked', 'expired', 'disabled', 'forbidden', 'unavailable', 'bad_request', 'limited', 'no_route'];
const CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'] as const;
const NO_ROUTE = '(none)';

interface RouteChildren {
  /** [outcome index][status class index] */
  requests: CounterCell[][];
  duration: HistogramCell;
  upstream: HistogramCell;
  upstreamTimeouts: Counter.Internal;
  upstreamErrors: Counter.Internal;
  streams: Gauge.Internal<string>;
  tunnels: Gauge.Internal<string>;
}

function childrenFor(metrics: KeygateMetrics, route: string): RouteChildren {
  return {
    requests: OUTCOMES.map((outcome) => CLASSES.map((cls) => metrics.requests.labels(route, cls, outcome))),
    duration: metrics.requestDuration.labels(route),
    upstream: metrics.upstreamDuration.labels(route),
    upstreamTimeouts: metrics.upstreamErrors.labels(route, 'timeout'),
    upstreamErrors: metrics.upstreamErrors.labels(route, 'connection'),
    streams: metrics.openStreams.labels(route, 'sse'),
    tunnels: metrics.openStreams.labels(route, 'websocket'),
  };
}

/** Per-key usage (events/usage.ts): told of every finished request and upgrade. */
export interface UsageSink {
  count(exchange: Exchange, status: number): void;
}

export class RequestMetrics implements GatewayHooks, WebSocketHooks {
  readonly #metrics: KeygateMetrics;
  readonly #usage: UsageSink | null;
  #byRoute = new Map<string, RouteChildren>();
  readonly #outcomeIndex = new Map<AuthOutcome, number>(OUTCOMES.map((o, i) => [o, i]));
  readonly #none: RouteChildren;

  constructor(metrics: KeygateMetrics, routeNames: readonly string[], usage: UsageSink | null = null) {
    this.#metrics = metrics;
    this.#usage = usage;
    this.#none = childrenFor(metrics, NO_ROUTE);
    this.setRoutes(routeNames);
  }

  /** Called when the route table is (re)built. */
  setRoutes(routeNames: readonly string[]): void {
    const next = new Map<string, RouteChildren>();
    for (const name of routeNames) next.set(name, this.#byRoute.get(name) ?? childrenFor(this.#metrics, name));
    this.#byRoute = next;
  }

  #children(exchange: HttpExchange): RouteChildren {
    return this.#forRoute(exchange.route);
  }

  #forRoute(route: Route | null): RouteChildren {
    return (route !== null && this.#byRoute.get(route.name)) || this.#none;
  }

  #count(c: RouteChildren, status: number, outcome: AuthOutcome, durationMs: number): void {
    const cls = Math.min(Math.max(Math.floor(status / 100), 1), 5) - 1;
    c.requests[this.#outcomeIndex.get(outcome) ?? 0]![cls]!.inc();
    c.duration.observe(durationMs / 1000);
  }

  onRequestDone(exchange: HttpExchange, durationMs: number): void {
    const res = exchange.res;
    const status = res.writableFinished ? res.statusCode : 499;
    this.#count(this.#children(exchange), status, exchange.outcome, durationMs);
    this.#usage?.count(exchange, status);
  }

  /** A WebSocket upgrade: counted like a request (101 for an open tunnel), its duration the tunnel's life. */
  onUpgradeDone(route: Route | null, status: number, outcome: AuthOutcome, durationMs: number, exchange?: Exchange): void {
    this.#count(this.#forRoute(route), status, outcome, durationMs);
    if (exchange !== undefined) this.#usage?.count(exchange, status);
  }

  onTunnel(route: Route, open: boolean): void {
    const gauge = this.#forRoute(route).tunnels;
    if (open) gauge.inc();
    else gauge.dec();
  }

  onUpstreamDone(exchange: HttpExchange, error: Error | null): void {
    const c = this.#children(exchange);
    if (exchange.upstreamHeadersAt > 0) c.upstream.observe((exchange.upstreamHeadersAt - exchange.upstreamStart) / 1000);
    // A client that left is not the upstream's failure.
    if (error === null || exchange.res.destroyed) return;
    const code = (error as { code?: string }).code ?? '';
    if (UPSTREAM_TIMEOUTS.has(code)) c.upstreamTimeouts.inc();
    else if (code !== 'payload_too_large' && code !== 'UND_ERR_ABORTED' && exchange.upstreamHeadersAt === 0) c.upstreamErrors.inc();
  }

  onEventStream(exchange: HttpExchange, open: boolean): void {
    const gauge = this.#children(exchange).streams;
    if (open) gauge.inc();
    else gauge.dec();
  }
}

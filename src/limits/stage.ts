/**
 * The limit stage (after admit: who is asking is known): counts the request in every bucket
 * it belongs to (limits/buckets.ts) and refuses it with 429 `rate_limited` when any is full;
 * the upstream never sees a refused request. Routes and keys without limits pass through
 * synchronously, without allocating: the common cache-hit path pays one property read.
 *
 * Answers carry the IETF RateLimit fields (draft-ietf-httpapi-ratelimit-headers): on every
 * response of a request that was counted, `RateLimit-Policy` lists the buckets and `RateLimit`
 * gives the one closest to its limit, `"key:20/s";r=3;t=1` (r: remaining, t: seconds until
 * it is full again); a refusal adds `Retry-After`.
 *
 * When the store cannot decide (Redis unreachable), the route's `onStoreError` says what
 * happens: `open` (default) decides with this instance's own memory, so each instance still
 * holds every limit by itself; `closed` answers 503 `limit_unavailable`.
 *
 * A request the rate limits let through is then charged to its key's and tenant's budgets
 * (limits/quota.ts), all or none; a spent budget answers 429 `quota_exhausted` with the reset
 * time (a request refused by a rate limit costs no budget). A budget the store cannot charge
 * follows `onStoreError` too: open lets the request through uncharged.
 */
import type { Refusal } from '../auth/refusals.ts';
import { clientAddress } from '../http/client-address.ts';
import type { KeygateMetrics } from '../observability/metrics.ts';
import type { Current } from '../pipeline/current.ts';
import type { Exchange, HttpExchange } from '../pipeline/exchange.ts';
import type { Stage, StageOutcome } from '../pipeline/pipeline.ts';
import type { Route } from '../routing/router.ts';
import { compileRouteLimits, requestBuckets, type RouteLimits, type ScopedBucket } from './buckets.ts';
import { MemoryLimiter, type LimitDecision, type RateLimiter } from './limiter.ts';
import type { QuotaDecision, QuotaStore } from '../store/quota-store.ts';
import type { Calendar, QuotaCounter } from './quota.ts';
import type { QuotaSpec } from './buckets.ts';
import type { KeyRecord } from '../keys/record.ts';

export interface LimitStageOptions {
  /** The store's limiter (Redis, or the embedded store's in-memory one, or the primary's via IPC). */
  limiter: RateLimiter;
  /** This instance's own, for `onStoreError: open`. */
  fallback?: MemoryLimiter;
  current: Current;
  metrics?: Pick<KeygateMetrics, 'rateLimited' | 'limitStoreErrors'>;
  /** Told about store failures (logs); must not throw. */
  onStoreError?: (error: unknown) => void;
  /** Where budgets are charged (limits/quota.ts); null: quotas are not enforced. */
  quotas?: { store: QuotaStore; calendar: Calendar; onLow?: (record: KeyRecord, spec: QuotaSpec, used: number, remaining: number) => void } | null;
}

/** The budgets of one request, in the periods in force now. */
function counters(specs: readonly QuotaSpec[], calendar: Calendar, now: number): QuotaCounter[] {
  return specs.map((spec) => ({ id: spec.id, quota: spec.quota, scope: spec.scope, period: spec.quota.unit === null ? null : calendar.period(spec.quota.unit, now) }));
}

function exhausted(spec: QuotaCounter, remaining: number): Refusal {
  const headers: Record<string, string> = {};
  let when = 'ask an admin to top it up';
  if (spec.period !== null) {
    const wait = Math.max(1, Math.ceil((spec.period.endsAt - Date.now()) / 1000));
    headers['retry-after'] = String(wait);
    when = `it resets at ${new Date(spec.period.endsAt).toISOString()}`;
  }
  const whose = spec.scope === 'key' ? "the key's" : "the tenant's";
  return { code: 'quota_exhausted', outcome: 'limited', detail: `${whose} quota ${spec.quota.text} is spent (${remaining} left); ${when}`, headers };
}

const routeLimits = new WeakMap<Route, RouteLimits | null>();

const UNAVAILABLE: Refusal = { code: 'limit_unavailable', outcome: 'unavailable', detail: 'the store that decides rate limits and quotas cannot be reached; try again shortly', headers: { 'retry-after': '1' } };

function limitsOf(route: Route): RouteLimits | null {
  let limits = routeLimits.get(route);
  if (limits === undefined) routeLimits.set(route, (limits = compileRouteLimits(route.name, route.config.limits)));
  return limits;
}

/** A bucket list's RateLimit-Policy value, made once per list (lists are kept per identity and route). */
const policies = new WeakMap<readonly ScopedBucket[], string>();

function policyOf(buckets: readonly ScopedBucket[]): string {
  let policy = policies.get(buckets);
  if (policy === undefined) policies.set(buckets, (policy = buckets.map((b) => b.policy).join(', ')));
  return policy;
}

/**
 * The buckets of a request by a key on a route that does not count by address: the same for
 * every request of that key there, so kept with the (cached) identity instead of made anew.
 */
const prepared = new WeakMap<object, Map<Route, ScopedBucket[]>>();

/** RateLimit-Policy and RateLimit field values for a decision. */
export function rateLimitFields(buckets: readonly ScopedBucket[], decision: LimitDecision): { policy: string; limit: string } {
  let closest = 0;
  let lowest = Infinity;
  const answers = decision.answers;
  for (let i = 0; i < answers.length; i++) {
    const share = answers[i]!.remaining / buckets[i]!.count;
    if (share < lowest) {
      lowest = share;
      closest = i;
    }
  }
  const answer = answers[closest]!;
  const reset = decision.allowed ? answer.resetMs : Math.max(answer.resetMs, decision.retryAfterMs);
  return { policy: policyOf(buckets), limit: `${buckets[closest]!.name};r=${answer.remaining};t=${Math.ceil(reset / 1000)}` };
}

function refusal(buckets: readonly ScopedBucket[], decision: LimitDecision): Refusal {
  const fields = rateLimitFields(buckets, decision);
  const wait = Math.max(1, Math.ceil(decision.retryAfterMs / 1000));
  const full = buckets.filter((_, i) => decision.answers[i]!.remaining === 0).map((b) => b.name.slice(1, -1));
  return {
    code: 'rate_limited',
    outcome: 'limited',
    detail: `rate limit reached (${full.join(', ') || 'limit'}); try again in ${wait} s`,
    headers: { 'retry-after': String(wait), 'ratelimit-policy': fields.policy, ratelimit: fields.limit },
  };
}

export function limitStage(options: LimitStageOptions): Stage<Exchange> {
  const { limiter, current, metrics } = options;
  const fallback = options.fallback ?? new MemoryLimiter();
  const onStoreError = options.onStoreError ?? (() => {});

  const quotas = options.quotas ?? null;

  /** After the rate limits let the request through: charge its budgets, all or none. */
  const charge = (exchange: Exchange): StageOutcome | Promise<StageOutcome> => {
    const specs = exchange.identity?.quotas;
    if (quotas === null || specs === null || specs === undefined) return undefined;
    const list = counters(specs, quotas.calendar, Date.now());
    const weight = limitsOf(exchange.route!)?.weight ?? 1;
    const charged = (decision: QuotaDecision): StageOutcome => {
      decision.answers.forEach((answer, i) => {
        if (answer.crossed80) quotas.onLow?.(exchange.identity!.record, specs[i]!, answer.used, answer.remaining);
      });
      if (decision.exhausted < 0) return undefined;
      metrics?.rateLimited.labels(exchange.route!.name, `quota:${list[decision.exhausted]!.scope}`).inc();
      return exhausted(list[decision.exhausted]!, decision.answers[decision.exhausted]!.remaining);
    };
    return quotas.store.chargeQuotas(list, weight).then(charged, (error: unknown) => {
      // A budget that cannot be charged follows the route's onStoreError, like a rate limit.
      onStoreError(error);
      const policy = limitsOf(exchange.route!)?.onStoreError ?? 'open';
      metrics?.limitStoreErrors.labels(exchange.route!.name, policy).inc();
      return policy === 'closed' ? UNAVAILABLE : undefined;
    });
  };

  const judged = (exchange: Exchange, buckets: ScopedBucket[], decision: LimitDecision): StageOutcome | Promise<StageOutcome> => {
    if (!decision.allowed) {
      const refusing = buckets.find((_, i) => decision.answers[i]!.remaining === 0)?.scope ?? 'route';
      metrics?.rateLimited.labels(exchange.route!.name, refusing).inc();
      return refusal(buckets, decision);
    }
    const res = (exchange as Partial<HttpExchange>).res;
    if (res !== undefined && !res.headersSent) {
      const fields = rateLimitFields(buckets, decision);
      res.setHeader('ratelimit-policy', fields.policy);
      res.setHeader('ratelimit', fields.limit);
      (exchange as HttpExchange).rateLimitFields = true;
    }
    return charge(exchange);
  };

  const failed = (exchange: Exchange, limits: RouteLimits | null, buckets: ScopedBucket[], weight: number, error: unknown): StageOutcome | Promise<StageOutcome> => {
    onStoreError(error);
    const policy = limits?.onStoreError ?? 'open';
    metrics?.limitStoreErrors.labels(exchange.route!.name, policy).inc();
    if (policy === 'closed') return UNAVAILABLE;
    return judged(exchange, buckets, fallback.decide(buckets, weight));
  };

  return {
    name: 'limit',
    // A route without limits of its own still counts keys, groups and tenants that have some.
    applies: (route) => route.authRequired || route.config.limits !== undefined,
    run(exchange) {
      const route = exchange.route!;
      const limits = limitsOf(route);
      const identity = exchange.identity;
      const own = identity?.limits ?? null;
      if (limits === null && own === null && (identity?.quotas ?? null) === null) return undefined;
      const record = identity?.record ?? null;
      let buckets: ScopedBucket[] | undefined;
      const keep = identity !== null && (limits === null || !limits.byAddress);
      if (keep) buckets = prepared.get(identity)?.get(route);
      if (buckets === undefined) {
        buckets = requestBuckets(limits, own, record, () => clientAddress(exchange.req, current.state.headers.trustForwarded), exchange.mcp);
        if (keep) {
          let byRoute = prepared.get(identity);
          if (byRoute === undefined) prepared.set(identity, (byRoute = new Map()));
          byRoute.set(route, buckets);
        }
      }
      if (buckets.length === 0) return charge(exchange);
      const weight = limits?.weight ?? 1;
      let decision: LimitDecision | Promise<LimitDecision>;
      try {
        decision = limiter.decide(buckets, weight);
      } catch (error) {
        return failed(exchange, limits, buckets, weight, error);
      }
      if (!(decision instanceof Promise)) return judged(exchange, buckets, decision);
      const chosen = buckets;
      return decision.then(
        (settled) => judged(exchange, chosen, settled),
        (error: unknown) => failed(exchange, limits, chosen, weight, error),
      );
    },
  };
}

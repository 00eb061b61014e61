/**
 * Which buckets a request is counted in (docs/limits.md, "Buckets"):
 *
 *   key     `k:<key id>:<rate>`               the key's own limits and its group's, on every route
 *   tenant  `t:<tenant>:<rate>`               the tenant's limits, its keys together, on every route
 *   route   `r:<route>:<by>:<who>:<rate>`     a route's limits, per key, tenant or client address
 *
 * A key's and tenant's buckets are worked out once per identity (auth/identity.ts), a route's
 * rates once per route; only the route buckets that name the caller are built per request.
 */
import type { KeyRecord } from '../keys/record.ts';
import type { RouteLimitsConfig } from '../config/rate-limits.ts';
import { isRate, parseRate, type Rate } from './rate.ts';
import type { Bucket } from './limiter.ts';
import { isQuota, parseQuota, type Quota } from './quota.ts';

/** A budget an identity is charged against (limits/quota.ts): its own, or its tenant's. */
export interface QuotaSpec {
  readonly id: string;
  readonly quota: Quota;
  readonly scope: 'key' | 'tenant';
}

/** An identity's budgets, or null when it has none (stored text that cannot be read counts as none). */
export function identityQuotas(record: Pick<KeyRecord, 'id' | 'tenant'>, keyQuota: string | null, tenantQuota: string | null): readonly QuotaSpec[] | null {
  const out: QuotaSpec[] = [];
  const own = keyQuota === null || record.id === '' ? null : parseQuota(keyQuota);
  if (own !== null && isQuota(own)) out.push({ id: `k:${record.id}`, quota: own, scope: 'key' });
  const tenant = tenantQuota === null ? null : parseQuota(tenantQuota);
  if (tenant !== null && isQuota(tenant)) out.push({ id: `t:${record.tenant}`, quota: tenant, scope: 'tenant' });
  return out.length === 0 ? null : out;
}

export type LimitScope = 'key' | 'tenant' | 'route';

export interface ScopedBucket extends Bucket {
  readonly scope: LimitScope;
  /** This bucket as a RateLimit-Policy list member: `"key:20/s";q=20;w=1`. */
  readonly policy: string;
  /** Its name in the RateLimit field: `"key:20/s"`. */
  readonly name: string;
}

function scoped(scope: LimitScope, id: string, label: string, rate: Rate): ScopedBucket {
  const name = `"${label}"`;
  return { id, count: rate.count, periodMs: rate.periodMs, scope, name, policy: `${name};q=${rate.count};w=${Math.max(1, Math.ceil(rate.periodMs / 1000))}` };
}

function rates(texts: readonly string[]): Rate[] {
  const out: Rate[] = [];
  // Stored limits were checked when written; one that cannot be read now is left out.
  for (const text of texts) {
    const rate = parseRate(text);
    if (isRate(rate) && !out.some((r) => r.text === rate.text)) out.push(rate);
  }
  return out;
}

/** A key's own buckets (its and its group's limits, its tenant's), or null when it has none. */
export function identityBuckets(record: Pick<KeyRecord, 'id' | 'tenant'>, limits: { key: readonly string[]; tenant: readonly string[] }): readonly ScopedBucket[] | null {
  if (limits.key.length === 0 && limits.tenant.length === 0) return null;
  const out: ScopedBucket[] = [];
  // An access token has no key id: only its tenant's limits (and the route's) count it.
  if (record.id !== '') for (const rate of rates(limits.key)) out.push(scoped('key', `k:${record.id}:${rate.text}`, `key:${rate.text}`, rate));
  for (const rate of rates(limits.tenant)) out.push(scoped('tenant', `t:${record.tenant}:${rate.text}`, `tenant:${rate.text}`, rate));
  return out.length === 0 ? null : out;
}

/** What may stand in an sf-string (RateLimit fields): printable ASCII without `"` or `\`. */
const SHOWABLE = /^[\x20\x21\x23-\x5b\x5d-\x7e]{1,64}$/;

export interface RouteLimits {
  readonly rates: readonly { by: 'key' | 'tenant' | 'address'; rate: Rate; tool: string | null }[];
  /** Some rate counts client addresses or MCP tools: its buckets differ by request, not only by key. */
  readonly byAddress: boolean;
  readonly weight: number;
  readonly onStoreError: 'open' | 'closed';
  readonly route: string;
}

export function compileRouteLimits(route: string, config: RouteLimitsConfig | undefined): RouteLimits | null {
  if (config === undefined) return null;
  return {
    route,
    weight: config.weight,
    onStoreError: config.onStoreError,
    byAddress: config.rates.some((r) => r.by === 'address' || r.tool !== undefined),
    rates: config.rates.map((r) => ({ by: r.by, rate: parseRate(r.rate) as Rate, tool: r.tool ?? null })),
  };
}

/**
 * The buckets of one request: the identity's own and the route's that name this caller. A
 * route rate by key or tenant does not count a public request (there is no key); by address
 * counts everyone.
 */
export function requestBuckets(limits: RouteLimits | null, own: readonly ScopedBucket[] | null, record: Pick<KeyRecord, 'id' | 'tenant'> | null, address: () => string, call: { method: string; name: string | undefined } | null = null): ScopedBucket[] {
  const out: ScopedBucket[] = own === null ? [] : [...own];
  if (limits === null) return out;
  for (const { by, rate, tool } of limits.rates) {
    // A per-tool rate counts only calls of its tool (`*`: each tool in a bucket of its own).
    let toolPart = '';
    if (tool !== null) {
      if (call === null || call.method !== 'tools/call' || call.name === undefined || (tool !== '*' && tool !== call.name)) continue;
      toolPart = `tool:${call.name}:`;
    }
    // The name goes into a response header: a tool name that is not plain printable ASCII is shown as `tool:*`.
    const shown = toolPart === '' || SHOWABLE.test(call!.name!) ? toolPart : 'tool:*:';
    let who: string | undefined;
    if (by === 'address') who = address();
    else if (record !== null) who = by === 'tenant' ? record.tenant : record.id || undefined;
    if (who === undefined) continue;
    out.push(scoped('route', `r:${limits.route}:${by}:${who}:${toolPart}${rate.text}`, `route:${by}:${shown}${rate.text}`, rate));
  }
  return out;
}

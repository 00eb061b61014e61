/**
 * Hot reload (SIGHUP, POST /v1/reload): a new, already validated config replaces the
 * routes, permission groups and identity-header names of a running keygate. In-flight
 * requests keep the route they were matched to, so nothing is dropped; connection pools
 * are reused for upstreams that stay. Settings bound at start (listeners, store, cache
 * sizes, key prefix, …) are reported as needing a restart and left as they are.
 */
import type { Config } from './config/schema.ts';
import type { AccessTokens } from './auth/access-token.ts';
import type { Verifier } from './auth/verify.ts';
import type { Current } from './pipeline/current.ts';
import { createHeaderPolicy } from './pipeline/rewrite.ts';
import { Router, type DispatcherFor } from './routing/router.ts';
import type { RequestMetrics } from './observability/request-metrics.ts';

/** The parts of the config that other components read live. */
export interface LiveConfig {
  keys: Config['keys'];
  tenants: Config['tenants'];
  permissionGroups: Config['permissionGroups'];
}

export interface ReloadTargets {
  /** The route table and header policy in force: replaced as one. */
  current: Current;
  verifier: Verifier;
  requestMetrics: RequestMetrics;
  dispatcherFor: DispatcherFor;
  live: LiveConfig;
  /** OAuth issuers: unchanged ones keep their JWKS cache, routes are compiled against the new set. */
  accessTokens?: AccessTokens;
}

export interface ReloadResult {
  /** Top-level sections that changed and now apply. */
  applied: string[];
  /** Top-level sections that changed but only take effect after a restart. */
  restartNeeded: string[];
}

const LIVE = new Set(['routes', 'permissionGroups', 'headers', 'forwarded', 'oauth']);

export function applyConfig(targets: ReloadTargets, current: Config, next: Config): ReloadResult {
  const changed = (Object.keys(next) as (keyof Config)[]).filter((k) => JSON.stringify(current[k]) !== JSON.stringify(next[k]));
  const applied = changed.filter((k) => LIVE.has(k));
  const restartNeeded = changed.filter((k) => !LIVE.has(k));
  // Build everything first, then swap: a failure while building leaves the old config whole.
  // (Routes in force hold their own issuer objects, so updating the issuers first is safe.)
  targets.accessTokens?.update(next.oauth);
  const router = new Router(next.routes, targets.dispatcherFor, targets.accessTokens ?? null);
  const headers = createHeaderPolicy({ ...next, keys: current.keys });
  targets.current.replace({ router, headers });
  targets.requestMetrics.setRoutes(next.routes.map((route) => route.name));
  targets.accessTokens?.warm(next.routes);
  if (applied.includes('permissionGroups')) {
    targets.live.permissionGroups = next.permissionGroups;
    targets.verifier.setGroups(next.permissionGroups);
  }
  return { applied, restartNeeded };
}

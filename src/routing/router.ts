/**
 * Route table: segment-wise path-prefix match on the normalised path, optionally by host.
 * Host-specific routes win over host-less ones, then the longest prefix wins.
 */
import type { Dispatcher } from 'undici';
import type { RouteConfig } from '../config/schema.ts';
import type { RoutePolicy } from '../auth/authorize.ts';
import type { AccessTokens } from '../auth/access-token.ts';
import type { Identity } from '../auth/identity.ts';
import { ResourceMetadata } from '../mcp/resource-metadata.ts';
import { compileFeatures, type RouteFeatures } from './route-features.ts';
import { hostName } from './host-name.ts';

export { hostName } from './host-name.ts';

/** One upstream of a route: where a request goes, compiled once with the table. */
export interface UpstreamTarget {
  readonly upstreamOrigin: string;
  /** Path part of the upstream URL without a trailing '/', or ''. */
  readonly upstreamBasePath: string;
  /** Where requests go; created once per upstream when the table is built. */
  readonly dispatcher: Dispatcher;
}

/**
 * A compiled route. The route itself is its live target (`upstreamOrigin`, `upstreamBasePath`,
 * `dispatcher`: where live keys, access tokens and public requests go); `sandbox` is the target
 * of sandbox keys, or null when the route refuses them (authorize.ts). Pick with `targetOf`.
 */
export interface Route extends RoutePolicy, RouteFeatures, UpstreamTarget {
  readonly name: string;
  readonly host: string | undefined;
  readonly config: RouteConfig;
  readonly authRequired: boolean;
  readonly stripPrefix: boolean;
  /** `sandbox.upstream`: where sandbox keys go; null: the route refuses them (403 forbidden_environment). */
  readonly sandbox: UpstreamTarget | null;
}

export type DispatcherFor = (origin: string, config: RouteConfig) => Dispatcher;

function compileTarget(url: string, config: RouteConfig, dispatcherFor: DispatcherFor): UpstreamTarget {
  const upstream = new URL(url);
  return {
    upstreamOrigin: upstream.origin,
    upstreamBasePath: upstream.pathname === '/' ? '' : upstream.pathname.replace(/\/$/, ''),
    dispatcher: dispatcherFor(upstream.origin, config),
  };
}

export function compileRoute(config: RouteConfig, dispatcherFor: DispatcherFor, tokens: AccessTokens | null = null): Route {
  return {
    ...compileFeatures(config, tokens),
    name: config.name,
    host: config.host,
    config,
    pathPrefix: config.pathPrefix,
    authRequired: config.auth.required,
    permissions: config.auth.permissions,
    clients: config.auth.clients ? new Set(config.auth.clients) : null,
    tenantFromPath: config.auth.tenantFromPath,
    sandbox: config.sandbox === undefined ? null : compileTarget(config.sandbox.upstream, config, dispatcherFor),
    ...compileTarget(config.upstream, config, dispatcherFor),
    stripPrefix: config.stripPrefix,
  };
}

/**
 * Where this exchange goes: the sandbox target for a sandbox key, the route (its live target)
 * for anything else. No allocation: one of two objects made with the table. A sandbox key on
 * a route without a sandbox upstream was refused by authorize; should one get here anyway,
 * it throws (the transports answer 500) rather than fall back to the live upstream.
 */
export function targetOf(route: Route, identity: Identity | null): UpstreamTarget {
  if (identity === null || identity.record.environment !== 'sandbox') return route;
  const sandbox = route.sandbox;
  if (sandbox === null) throw new Error(`route ${route.name} has no sandbox upstream for a sandbox key`);
  return sandbox;
}

export function prefixMatches(prefix: string, path: string): boolean {
  if (prefix === '/') return true;
  if (!path.startsWith(prefix)) return false;
  return path.length === prefix.length || path.charCodeAt(prefix.length) === 47;
}

export class Router {
  readonly routes: readonly Route[];
  /** RFC 9728 documents of the routes with `mcp`; null when there are none. */
  readonly metadata: ResourceMetadata | null;

  /** @param tokens the issuers routes may name in `auth.issuers` (null: keys only). */
  constructor(configs: readonly RouteConfig[], dispatcherFor: DispatcherFor, tokens: AccessTokens | null = null) {
    this.routes = configs
      .map((config) => compileRoute(config, dispatcherFor, tokens))
      .sort((a, b) => Number(b.host !== undefined) - Number(a.host !== undefined) || b.pathPrefix.length - a.pathPrefix.length);
    this.metadata = ResourceMetadata.from(this.routes);
  }

  /** The first route for `host` whose prefix `matches` the path (segment-wise by default). */
  match(host: string | undefined, path: string, matches: (prefix: string, path: string) => boolean = prefixMatches): Route | undefined {
    let name: string | undefined;
    for (const route of this.routes) {
      if (route.host !== undefined) {
        name ??= hostName(host) ?? '';
        if (route.host !== name) continue;
      }
      if (matches(route.pathPrefix, path)) return route;
    }
    return undefined;
  }

  /** The path the upstream receives (`target`: the route's live upstream by default, see targetOf). */
  static upstreamPath(route: Route, path: string, target: UpstreamTarget = route): string {
    let rest = path;
    if (route.stripPrefix && route.pathPrefix !== '/') {
      rest = path.slice(route.pathPrefix.length);
      if (rest === '' || rest.charCodeAt(0) !== 47) rest = `/${rest}`;
    }
    return target.upstreamBasePath + rest;
  }
}

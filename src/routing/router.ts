/**
 * Route table: segment-wise path-prefix match on the normalised path, optionally by host.
 * Host-specific routes win over host-less ones, then the longest prefix wins.
 */
import type { Dispatcher } from 'undici';
import type { RouteConfig } from '../config/schema.ts';
import type { RoutePolicy } from '../auth/authorize.ts';
import type { AccessTokens } from '../auth/access-token.ts';
import { ResourceMetadata } from '../mcp/resource-metadata.ts';
import { compileFeatures, type RouteFeatures } from './route-features.ts';
import { hostName } from './host-name.ts';

export { hostName } from './host-name.ts';

export interface Route extends RoutePolicy, RouteFeatures {
  readonly name: string;
  readonly host: string | undefined;
  readonly config: RouteConfig;
  readonly authRequired: boolean;
  readonly upstreamOrigin: string;
  /** Path part of the upstream URL without a trailing '/', or ''. */
  readonly upstreamBasePath: string;
  readonly stripPrefix: boolean;
  /** Where requests go; created once per upstream when the table is built. */
  readonly dispatcher: Dispatcher;
}

export type DispatcherFor = (origin: string, config: RouteConfig) => Dispatcher;

export function compileRoute(config: RouteConfig, dispatcherFor: DispatcherFor, tokens: AccessTokens | null = null): Route {
  const upstream = new URL(config.upstream);
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
    upstreamOrigin: upstream.origin,
    upstreamBasePath: upstream.pathname === '/' ? '' : upstream.pathname.replace(/\/$/, ''),
    stripPrefix: config.stripPrefix,
    dispatcher: dispatcherFor(upstream.origin, config),
  };
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

  /** The path the upstream receives. */
  static upstreamPath(route: Route, path: string): string {
    let rest = path;
    if (route.stripPrefix && route.pathPrefix !== '/') {
      rest = path.slice(route.pathPrefix.length);
      if (rest === '' || rest.charCodeAt(0) !== 47) rest = `/${rest}`;
    }
    return route.upstreamBasePath + rest;
  }
}

/**
 * OAuth 2.0 Protected Resource Metadata (RFC 9728) for routes with `mcp.resource`: keygate
 * answers the well-known GETs itself, on the proxy listener, with no key (clients fetch the
 * document to learn how to get a credential, so it cannot require one). Never forwarded.
 *
 * Where a document is served (RFC 9728 §3.1: the well-known segment goes between host and
 * path, a lone `/` path is dropped):
 *
 *   resource https://mcp.example.com/mcp   → /.well-known/oauth-protected-resource/mcp
 *   resource https://mcp.example.com/mcp/  → /.well-known/oauth-protected-resource/mcp/
 *   resource https://mcp.example.com       → /.well-known/oauth-protected-resource
 *
 * plus the same path without a trailing slash (the MCP SDK strips it when it probes), the
 * route's own `pathPrefix` form when it differs from the resource's path, and the root form
 * `/.well-known/oauth-protected-resource`, which answers only when it is unambiguous: the
 * resource whose path is `/`, else the only protected resource reachable on that host. With
 * several, the root form is 404: handing out one of them would make a client ask for a token
 * with the wrong audience.
 *
 * Routes with a `host` only answer requests for that host, as in routing; host-specific
 * entries win over host-less ones.
 *
 * @example
 *   const metadata = ResourceMetadata.from(router.routes);   // null when no route has mcp
 *   if (metadata?.answer(req, res, path)) return;            // handled
 */
import type { HttpExchange } from '../pipeline/exchange.ts';
import type { Current } from '../pipeline/current.ts';
import { ANSWERED, type Stage } from '../pipeline/pipeline.ts';
import { sendProblem } from '../http/problem.ts';
import { hostName } from '../routing/host-name.ts';
import type { Route } from '../routing/router.ts';
import { metadataUrl, resourceOrigin, servedPaths, WELL_KNOWN } from './resource-url.ts';

export { isResource, metadataPath, metadataUrl, resourceOrigin, servedPaths, WELL_KNOWN } from './resource-url.ts';

/** What a route with `mcp` carries, compiled once with the route table. */
export interface McpResource {
  readonly resource: string;
  readonly metadataUrl: string;
  /** The metadata document, serialised once. */
  readonly document: string;
  /** Origin of the resource: the one Origin an MCP route without `cors` accepts (same-origin pages). */
  readonly origin: string;
}

export interface ResourceDocumentInput {
  resource: string;
  authorizationServers: readonly string[];
  scopesSupported: readonly string[];
  resourceName: string | undefined;
  /** RFC 9728 `resource_documentation`: a page for people (how to get a key, or to sign in). */
  resourceDocumentation?: string | undefined;
  /** The route takes API keys (auth.required): said in KEYGATE_API_KEYS. */
  apiKeys?: boolean;
}

/**
 * The extension member (RFC 9728 §2 allows additional parameters) that says the resource
 * takes keygate API keys and where they go. On a route that takes keys only there is no
 * authorization server to list — the MCP spec's "authorization_servers containing at least
 * one" is for resources that take OAuth tokens — so this, with `resource_documentation` for
 * how to obtain a key, is what tells a client (or its user) how to get in.
 */
export const KEYGATE_API_KEYS = { headers: ['X-Api-Key', 'Authorization: Bearer'] } as const;

export function compileMcpResource(input: ResourceDocumentInput): McpResource {
  const document: Record<string, unknown> = { resource: input.resource };
  if (input.authorizationServers.length) document.authorization_servers = input.authorizationServers;
  if (input.scopesSupported.length) document.scopes_supported = input.scopesSupported;
  // Tokens and keys alike go in a header; keygate never reads them from a body or the query.
  document.bearer_methods_supported = ['header'];
  if (input.resourceName !== undefined) document.resource_name = input.resourceName;
  if (input.resourceDocumentation !== undefined) document.resource_documentation = input.resourceDocumentation;
  if (input.apiKeys === true) document.keygate_api_keys = KEYGATE_API_KEYS;
  return { resource: input.resource, metadataUrl: metadataUrl(input.resource), document: JSON.stringify(document), origin: resourceOrigin(input.resource) };
}

interface Entry {
  readonly route: Route;
  readonly mcp: McpResource;
}

const DOCUMENT_HEADERS = {
  'content-type': 'application/json',
  // Public and identical for everyone; short enough that a config reload shows soon.
  'cache-control': 'public, max-age=300',
  // Readable from any page: it holds no secret and no credential is involved.
  'access-control-allow-origin': '*',
};
const ALLOW = 'GET, HEAD, OPTIONS';

export class ResourceMetadata {
  /** Well-known path → entries, host-specific ones first. */
  readonly #byPath = new Map<string, Entry[]>();
  readonly #all: Entry[] = [];

  private constructor(routes: readonly Route[]) {
    // The router's order already puts host-specific routes first.
    for (const route of routes) {
      if (route.mcp === null) continue;
      const entry = { route, mcp: route.mcp };
      this.#all.push(entry);
      for (const path of servedPaths(route.mcp.resource, route.pathPrefix)) {
        const list = this.#byPath.get(path);
        if (list === undefined) this.#byPath.set(path, [entry]);
        else if (!list.some((e) => e.route.host === route.host)) list.push(entry);
      }
    }
  }

  /** Null when no route has `mcp`, so the gateway's check is a single comparison. */
  static from(routes: readonly Route[]): ResourceMetadata | null {
    return routes.some((r) => r.mcp !== null) ? new ResourceMetadata(routes) : null;
  }

  /** True when the path is in the well-known namespace (cheap pre-check, no allocation). */
  static concerns(path: string): boolean {
    return path.startsWith(WELL_KNOWN) && (path.length === WELL_KNOWN.length || path.charCodeAt(WELL_KNOWN.length) === 47);
  }

  /** The entry for this host and path, or undefined; `ambiguous` for a root form with several candidates. */
  find(host: string | undefined, path: string): Entry | 'ambiguous' | undefined {
    const name = hostName(host) ?? '';
    const pick = (list: readonly Entry[]) => list.find((e) => e.route.host === name) ?? list.find((e) => e.route.host === undefined);
    const exact = this.#byPath.get(path);
    const found = exact === undefined ? undefined : pick(exact);
    if (found !== undefined || path !== WELL_KNOWN) return found;
    const reachable = this.#all.filter((e) => e.route.host === name || e.route.host === undefined);
    const resources = new Set(reachable.map((e) => e.mcp.resource));
    if (resources.size === 1) return reachable[0];
    return resources.size === 0 ? undefined : 'ambiguous';
  }

  /**
   * Answers a well-known request when it is one of ours (true, with `exchange.route` set to
   * the route it describes); false, having written nothing, when it is not, so routing goes
   * on as usual.
   */
  answer(exchange: HttpExchange, path: string): boolean {
    const { req, res } = exchange;
    const found = this.find(req.headers.host, path);
    if (found === undefined) return false;
    if (found === 'ambiguous') {
      exchange.error = 'not_found';
      sendProblem(res, 'not_found', `several protected resources are served on this host; ask for ${WELL_KNOWN}/<path of the resource>`, { 'access-control-allow-origin': '*' });
      return true;
    }
    exchange.route = found.route;
    const method = req.method;
    if (method === 'OPTIONS') {
      // A browser's preflight (the MCP SDK sends MCP-Protocol-Version, which needs one).
      res.writeHead(204, {
        'access-control-allow-origin': '*',
        'access-control-allow-methods': ALLOW,
        'access-control-allow-headers': '*',
        'access-control-max-age': '86400',
      });
      res.end();
    } else if (method === 'GET' || method === 'HEAD') {
      res.writeHead(200, { ...DOCUMENT_HEADERS, 'content-length': Buffer.byteLength(found.mcp.document) });
      res.end(method === 'HEAD' ? undefined : found.mcp.document);
    } else {
      exchange.error = 'method_not_allowed';
      sendProblem(res, 'method_not_allowed', 'the protected resource metadata is read with GET', { allow: ALLOW, 'access-control-allow-origin': '*' }, true);
    }
    return true;
  }
}

/**
 * The pipeline stage before `match`: the RFC 9728 documents of the MCP routes, answered by
 * keygate itself. One field check on deployments without MCP routes, one string comparison
 * on requests that are not for a well-known path.
 */
export function metadataStage(current: Current): Stage<HttpExchange> {
  return {
    name: 'metadata',
    run(exchange) {
      const metadata = current.state.router.metadata;
      if (metadata === null) return undefined;
      const path = exchange.target!.path;
      return ResourceMetadata.concerns(path) && metadata.answer(exchange, path) ? ANSWERED : undefined;
    },
  };
}

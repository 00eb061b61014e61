/**
 * CORS for routes with `cors`, and the Origin check of MCP routes: keygate's policy is the
 * only one on such routes (the upstream's Access-Control-* headers are dropped, forward.ts).
 *
 *  - An Origin on the route's list: real requests get `Access-Control-Allow-Origin: <origin>`,
 *    `Access-Control-Expose-Headers` (Mcp-Session-Id, WWW-Authenticate, …) — on keygate's own
 *    401/403 problems too, so a browser client can read the challenge and find the metadata.
 *    A preflight (`OPTIONS` + `Access-Control-Request-Method`) is answered here with 204 and
 *    needs no key: browsers never send credentials on a preflight. Its
 *    `Access-Control-Allow-Headers` is the fixed MCP set and `allowHeaders`, plus every
 *    requested header named `Mcp-*` — the 2026-07-28 transport's Mcp-Method, Mcp-Name and the
 *    open-ended per-tool Mcp-Param-{name} family — echoed back by pattern, never a fixed list
 *    (at most MAX_ECHOED of them, each a valid header name; anything else requested is not
 *    echoed, so the browser refuses it).
 *  - Any other Origin (including `null`): 403 `forbidden_origin`.
 *  - No Origin (server-side clients, curl, the MCP SDK in Node): no CORS headers, no check.
 *  - Every response of a CORS route carries `Vary: Origin`, so caches keep them apart.
 *
 * MCP routes without `cors` accept no cross-origin browser request at all (the MCP spec asks
 * servers to validate Origin, against DNS rebinding): an Origin other than the resource's own
 * is refused with 403. Other routes without `cors` pass Origin through untouched.
 *
 * Origins are compared as exact strings: the schema only accepts them in the form a browser
 * serialises them (lower-case, no default port, no path), and never `*`.
 */
import type { Refusal } from '../auth/refusals.ts';
import type { Exchange, HttpExchange } from './exchange.ts';
import { ANSWERED, type Stage } from './pipeline.ts';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RouteConfig } from '../config/schema.ts';

/** What MCP clients in a browser must be allowed to send. */
export const CORS_ALLOW_HEADERS = ['Authorization', 'Content-Type', 'Mcp-Session-Id', 'MCP-Protocol-Version', 'Last-Event-ID', 'X-Api-Key'];
/** What they must be able to read. */
export const CORS_EXPOSE_HEADERS = ['Mcp-Session-Id', 'WWW-Authenticate'];
/** Request headers allowed by name pattern (lower case, as browsers send Access-Control-Request-Headers). */
export const MCP_HEADER_PATTERN = /^mcp-[a-z0-9!#$%&'*+.^_`|~-]{1,128}$/;
/** At most this many pattern-matched names are echoed in one preflight answer; a longer request list is read no further. */
const MAX_ECHOED = 64;
const MAX_REQUEST_HEADERS_LENGTH = 8192;

export interface CorsPolicy {
  readonly origins: ReadonlySet<string>;
  readonly credentials: boolean;
  readonly exposeHeaders: string;
  /** The preflight answer's headers other than the origin, built once. */
  readonly preflight: Readonly<Record<string, string>>;
  /** The fixed allowed request headers, lower-cased: not echoed again. */
  readonly allowed: ReadonlySet<string>;
}

export function compileCors(config: RouteConfig): CorsPolicy | null {
  const cors = config.cors;
  if (cors === undefined) return null;
  const preflight: Record<string, string> = {
    'access-control-allow-methods': cors.methods.join(', '),
    'access-control-allow-headers': [...CORS_ALLOW_HEADERS, ...cors.allowHeaders].join(', '),
    'access-control-max-age': String(cors.maxAgeSeconds),
    vary: 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers',
  };
  if (cors.credentials) preflight['access-control-allow-credentials'] = 'true';
  const allowed = new Set([...CORS_ALLOW_HEADERS, ...cors.allowHeaders].map((h) => h.toLowerCase()));
  return { origins: new Set(cors.origins), credentials: cors.credentials, exposeHeaders: [...CORS_EXPOSE_HEADERS, ...cors.exposeHeaders].join(', '), preflight, allowed };
}

/**
 * `Access-Control-Allow-Headers` for one preflight: the fixed list, plus the requested
 * `Mcp-*` names it does not hold already (e.g. mcp-param-region). A name of another shape, or
 * past MAX_ECHOED, is left out: the browser then refuses the request, as it should.
 */
export function allowHeadersFor(policy: CorsPolicy, requested: string | undefined): string {
  const fixed = policy.preflight['access-control-allow-headers']!;
  if (requested === undefined || requested.length > MAX_REQUEST_HEADERS_LENGTH || !requested.toLowerCase().includes('mcp-')) return fixed;
  let out = fixed;
  let echoed = 0;
  const seen = new Set<string>();
  for (const part of requested.split(',')) {
    const name = part.trim().toLowerCase();
    if (!MCP_HEADER_PATTERN.test(name) || policy.allowed.has(name) || seen.has(name)) continue;
    seen.add(name);
    out += `, ${name}`;
    if (++echoed === MAX_ECHOED) break;
  }
  return out;
}

export type OriginVerdict = 'continue' | 'answered' | 'forbidden';

/**
 * Applies a route's CORS policy before authentication: sets the response headers a
 * browser needs (they stay on keygate's own problems and are merged with the upstream's
 * response), answers a preflight, or says the Origin is refused.
 */
export function applyCors(policy: CorsPolicy, req: IncomingMessage, res: ServerResponse): OriginVerdict {
  const origin = req.headers.origin;
  if (origin === undefined) {
    res.setHeader('vary', 'Origin');
    return 'continue';
  }
  if (!policy.origins.has(origin)) return 'forbidden';
  if (req.method === 'OPTIONS' && req.headers['access-control-request-method'] !== undefined) {
    res.writeHead(204, { ...policy.preflight, 'access-control-allow-headers': allowHeadersFor(policy, req.headers['access-control-request-headers']), 'access-control-allow-origin': origin });
    res.end();
    return 'answered';
  }
  res.setHeader('vary', 'Origin');
  res.setHeader('access-control-allow-origin', origin);
  res.setHeader('access-control-expose-headers', policy.exposeHeaders);
  if (policy.credentials) res.setHeader('access-control-allow-credentials', 'true');
  return 'continue';
}

/** An MCP route without `cors`: only the resource's own origin (a same-origin page) may send an Origin. */
export function sameOriginOnly(resourceOrigin: string, req: IncomingMessage): boolean {
  const origin = req.headers.origin;
  return origin === undefined || origin === resourceOrigin;
}

const FORBIDDEN_ORIGIN: Refusal = { code: 'forbidden_origin', outcome: 'forbidden', detail: 'this route does not accept requests from the Origin sent', headers: undefined };
const CROSS_ORIGIN_MCP: Refusal = { code: 'forbidden_origin', outcome: 'forbidden', detail: 'this MCP route accepts no cross-origin requests (routes[].cors lists the origins it would)', headers: undefined };
const FORBIDDEN_UPGRADE: Refusal = { code: 'forbidden_origin', outcome: 'forbidden', detail: 'this route does not accept WebSocket connections from the Origin sent', headers: undefined };

/** Plain requests: CORS (preflights answered here) on routes with `cors`, same-origin only on other MCP routes. */
export const originStage: Stage<HttpExchange> = {
  name: 'origin',
  applies: (route) => route.cors !== null || route.mcp !== null,
  run(exchange) {
    const route = exchange.route!;
    if (route.cors !== null) {
      exchange.cors = true;
      const verdict = applyCors(route.cors, exchange.req, exchange.res);
      return verdict === 'answered' ? ANSWERED : verdict === 'forbidden' ? FORBIDDEN_ORIGIN : undefined;
    }
    return sameOriginOnly(route.mcp!.origin, exchange.req) ? undefined : CROSS_ORIGIN_MCP;
  },
};

/** WebSocket upgrades: a browser's Origin must be one the route's CORS lists (or the MCP resource's own). */
export const upgradeOriginStage: Stage<Exchange> = {
  name: 'origin',
  applies: (route) => route.cors !== null || route.mcp !== null,
  run(exchange) {
    const route = exchange.route!;
    const origin = exchange.req.headers.origin;
    const refused = route.cors !== null ? origin !== undefined && !route.cors.origins.has(origin) : !sameOriginOnly(route.mcp!.origin, exchange.req);
    return refused ? FORBIDDEN_UPGRADE : undefined;
  },
};

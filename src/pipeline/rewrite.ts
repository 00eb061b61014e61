/**
 * rewrite: the headers the upstream receives. Everything the client sent, minus the
 * credential, hop-by-hop headers (RFC 9110 §7.6.1, and whatever `Connection` lists) and
 * every client-sent copy of a header keygate owns; plus the identity headers set from the
 * verified key and X-Forwarded-*. Built as a flat [name, value, …] array straight from
 * `rawHeaders`, which undici takes as is.
 */
import type { IdentitySigner } from '../auth/identity-signer.ts';
import { Router, targetOf } from '../routing/router.ts';
import type { Current } from './current.ts';
import type { Exchange } from './exchange.ts';
import type { Stage } from './pipeline.ts';
import { withAssertion } from './signed-identity.ts';
import type { IncomingMessage } from 'node:http';
import type { Config } from '../config/schema.ts';
import { carriesKey } from '../auth/extract.ts';
import type { Identity } from '../auth/identity.ts';
import { configuredHosts, forwardedHost, forwardedProto } from '../routing/request-host.ts';

const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-authorization', 'proxy-authenticate'];
const FORWARDED = ['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'forwarded'];

export interface HeaderPolicy {
  /** Lower-case names never forwarded from the client. */
  readonly drop: ReadonlySet<string>;
  /** `keys.prefix`: an Authorization header that carries something of our key shape is never forwarded (auth/extract.ts carriesKey). */
  readonly keyPrefix: string;
  readonly names: Config['headers'];
  readonly trustForwarded: boolean;
  /** The hosts X-Forwarded-Host may name when no trusted proxy set it (request-host.ts configuredHosts; null: any). */
  readonly forwardedHosts: ReadonlySet<string> | null;
}

export function createHeaderPolicy(config: Pick<Config, 'headers' | 'forwarded' | 'keys' | 'routes'>): HeaderPolicy {
  // X-Forwarded-* are always rebuilt below (from the connection, or appended to when the
  // client is trusted), so the client's copies never go through as they are.
  const drop = new Set<string>([...HOP_BY_HOP, ...FORWARDED, 'host', 'expect', 'x-api-key', ...Object.values(config.headers)]);
  if (config.forwarded.trustClient) drop.delete('forwarded');
  return { drop, keyPrefix: config.keys.prefix, names: config.headers, trustForwarded: config.forwarded.trustClient, forwardedHosts: configuredHosts(config.routes) };
}

/** Response headers that must not be relayed to the client. */
export const RESPONSE_HOP_BY_HOP: ReadonlySet<string> = new Set(HOP_BY_HOP);

/** `value` equals the lower-case `lower`, ignoring case (no allocation). */
function isToken(value: string, lower: string): boolean {
  if (value.length !== lower.length) return false;
  for (let i = 0; i < lower.length; i++) if ((value.charCodeAt(i) | 0x20) !== lower.charCodeAt(i)) return false;
  return true;
}

/**
 * The header names a `Connection` value lists, beyond those always dropped. Almost every
 * HTTP/1.1 client sends `Connection: keep-alive` (or `close`): those name no header to drop,
 * and cost no Set.
 */
function connectionTokens(value: string | undefined): Set<string> | null {
  if (value === undefined || isToken(value, 'keep-alive') || isToken(value, 'close')) return null;
  const tokens = new Set<string>();
  for (const token of value.split(',')) {
    const t = token.trim().toLowerCase();
    if (t) tokens.add(t);
  }
  return tokens.size ? tokens : null;
}

/** Whether the route sets `name` itself ([name, value, …]; a handful of entries, so a scan beats a Set). */
function setByRoute(extra: readonly string[] | null, name: string): boolean {
  if (extra === null) return false;
  for (let i = 0; i < extra.length; i += 2) if (extra[i] === name) return true;
  return false;
}

/**
 * @param dropAuthorization the `Authorization` header carried the key (Bearer) and goes too.
 * @param extra headers set by the route (e.g. an injected secret) that replace any client copy.
 */
export function upstreamHeaders(
  req: IncomingMessage,
  policy: HeaderPolicy,
  identity: Identity | null,
  dropAuthorization: boolean,
  extra: readonly string[] | null = null,
): string[] {
  const raw = req.rawHeaders;
  const listed = connectionTokens(req.headers.connection);
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (policy.drop.has(name)) continue;
    // CGI-style upstreams (WSGI, Rack, PHP) see `X_Tenant_Id` and `X-Tenant-Id` as one
    // variable, so a client's underscore spelling could stand in for a header keygate owns.
    if (name.includes('_')) {
      const dashed = name.replaceAll('_', '-');
      if (policy.drop.has(dashed) || setByRoute(extra, dashed)) continue;
    }
    // Every copy: node:http keeps only the first Authorization in req.headers, so a key in a
    // second copy would otherwise slip through. Whether a copy carries a key is decided by the
    // same parser that reads the credential (any case, any whitespace, comma-joined lists).
    if (name === 'authorization' && (dropAuthorization || carriesKey(raw[i + 1]!, policy.keyPrefix))) continue;
    if (listed !== null && listed.has(name)) continue;
    if (setByRoute(extra, name)) continue;
    out.push(raw[i]!, raw[i + 1]!);
  }
  if (identity !== null) pushIdentity(out, identity, policy.names);
  const remote = req.socket.remoteAddress ?? '';
  if (policy.trustForwarded) {
    const xff = req.headers['x-forwarded-for'];
    out.push('x-forwarded-for', xff ? `${xff}, ${remote}` : remote);
    out.push('x-forwarded-proto', forwardedProto(req) ?? protocolOf(req));
  } else {
    out.push('x-forwarded-for', remote, 'x-forwarded-proto', protocolOf(req));
  }
  // The client's Host only where it is a configured host, or what a trusted proxy said (request-host.ts).
  const host = forwardedHost(req, policy.trustForwarded, policy.forwardedHosts);
  if (host !== undefined) out.push('x-forwarded-host', host);
  if (extra !== null) for (let i = 0; i < extra.length; i++) out.push(extra[i]!);
  return out;
}

/**
 * Appends the identity headers of `identity` to `out` ([name, value, …]), in the order of
 * `headers.*`. A header without a value is left out — or, with `withEmpty`, sent as '' (the
 * forward-auth answer, forward-auth-stages.ts: a proxy that copies the headers onto
 * the upstream request then overwrites whatever the client sent under those names).
 */
export function pushIdentity(out: string[], identity: Identity, n: Config['headers'], withEmpty = false): void {
  const r = identity.record;
  out.push(n.tenant, r.tenant, n.role, r.role);
  // An OAuth access token has no key id (auth/access-token.ts).
  if (withEmpty || r.id !== '') out.push(n.keyId, r.id);
  if (withEmpty || identity.permissionsHeader !== '') out.push(n.permissions, identity.permissionsHeader);
  if (withEmpty || (r.user !== null && r.user !== '')) out.push(n.user, r.user ?? '');
  if (withEmpty || (r.client !== null && r.client !== '')) out.push(n.client, r.client ?? '');
  // Always: `live` or `sandbox` (an access token's record is live), so an upstream can tell them apart.
  out.push(n.environment, r.environment);
}

function protocolOf(req: IncomingMessage): string {
  return (req.socket as { encrypted?: boolean }).encrypted ? 'https' : 'http';
}

/**
 * The rewrite stage: the upstream request's headers, built once (exchange.headers), with the
 * route's own headers (its secret, its signed identity assertion) replacing client copies.
 * The credential's Authorization header (a key, or an access token) is never forwarded.
 */
export function rewriteStage(current: Current, signer: IdentitySigner | null): Stage<Exchange> {
  return {
    name: 'rewrite',
    run(exchange) {
      const route = exchange.route!;
      const identity = exchange.identity;
      const routeHeaders =
        route.signedIdentity === null
          ? exchange.routeHeaders
          : withAssertion(route.signedIdentity, signer, identity, exchange.req.method ?? 'GET', Router.upstreamPath(route, exchange.target!.path, targetOf(route, identity)), exchange.routeHeaders);
      exchange.headers = upstreamHeaders(exchange.req, current.state.headers, identity, exchange.credential?.inAuthorization ?? false, routeHeaders);
      return undefined;
    },
  };
}

/**
 * The host a request is for, the one routing and `X-Forwarded-Host` use. RFC 9112 §3.2:
 * a request with more than one Host header, or an invalid one, is refused (400) — two
 * parties that pick different copies would route it differently; and §3.2.2: the
 * authority of an absolute-form target (`GET http://a.example/x`) replaces Host.
 */
import type { IncomingMessage } from 'node:http';
import type { NormalizedTarget } from './normalize-path.ts';
import { hostName } from './host-name.ts';

/** reg-name, IPv4 or [IPv6] literal, optional port; or empty. */
const HOST = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~!$&'()*+,;=%-]*)(:[0-9]{0,5})?$/;

/**
 * The request's host: a string, undefined when there is none (HTTP/1.0), or null when the
 * request must be refused: HTTP/1.1 without a Host (node's own check is off so that the
 * answer is a problem, like every other 400), or HTTP/0.9, which has no headers at all. An
 * absolute-form authority is written into `req.headers.host`, so everything after this
 * (routing, X-Forwarded-Host) sees the same host.
 */
export function requestHost(req: IncomingMessage, target: NormalizedTarget): string | undefined | null {
  if (req.httpVersionMajor !== 1) return null;
  const raw = req.rawHeaders;
  let copies = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 4 && name.toLowerCase() === 'host') copies++;
  }
  if (copies > 1) return null;
  if (target.authority !== undefined) {
    req.headers.host = target.authority;
    return target.authority;
  }
  const host = req.headers.host;
  if (host === undefined) return req.httpVersionMinor === 0 ? undefined : null;
  return HOST.test(host) ? host : null;
}

/**
 * What `X-Forwarded-Host` may carry: one DNS name or IP literal with an optional port. Not a
 * list (many frameworks read the header as one, first or last entry winning), and none of
 * the other characters a Host's reg-name may hold (`,;!$&'()*+=%`).
 */
const FORWARDABLE_HOST = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252}))(?::[0-9]{1,5})?$/;

/**
 * The host names this deployment is configured to serve: every `routes[].host` and the host
 * of every `routes[].mcp.resource`, lower-case, without port. Null when the config names
 * none (then every route answers any Host, and keygate has nothing to compare with).
 */
export function configuredHosts(routes: readonly { host?: string | undefined; mcp?: { resource: string } | undefined }[]): ReadonlySet<string> | null {
  const hosts = new Set<string>();
  for (const route of routes) {
    if (route.host !== undefined) hosts.add(route.host.toLowerCase());
    if (route.mcp !== undefined) hosts.add(new URL(route.mcp.resource).hostname.toLowerCase());
  }
  return hosts.size === 0 ? null : hosts;
}

/** The right-most entry of a (possibly comma-joined) forwarded header, trimmed: the one the nearest, trusted proxy wrote. */
function lastEntry(value: string | string[] | undefined): string | undefined {
  if (value === undefined) return undefined;
  const joined = typeof value === 'string' ? value : value.join(',');
  const entry = joined.slice(joined.lastIndexOf(',') + 1).trim();
  return entry === '' ? undefined : entry;
}

/**
 * The `X-Forwarded-Host` to send upstream, or undefined for none:
 *
 *  1. behind a trusted proxy (`forwarded.trustClient`), what it said: the right-most entry of
 *     the `X-Forwarded-Host` it sent, when that is one well-formed host;
 *  2. otherwise the request's host (Host, or the absolute-form authority that replaced it),
 *     when it is well-formed and is one of the configured hosts (configuredHosts; any port);
 *     when the config names no host at all, any well-formed one.
 *
 * A host that fails these is not sent (the upstream then sees only its own Host), never
 * rewritten into one that passes.
 */
export function forwardedHost(req: IncomingMessage, trustClient: boolean, hosts: ReadonlySet<string> | null): string | undefined {
  if (trustClient) {
    const said = lastEntry(req.headers['x-forwarded-host']);
    if (said !== undefined && FORWARDABLE_HOST.test(said)) return said;
  }
  const host = req.headers.host;
  if (host === undefined || !FORWARDABLE_HOST.test(host)) return undefined;
  if (hosts === null) return host;
  return hosts.has(hostName(host)!) ? host : undefined;
}

/** `X-Forwarded-Proto` from a trusted proxy: its right-most entry when that is http or https. */
export function forwardedProto(req: IncomingMessage): string | undefined {
  const said = lastEntry(req.headers['x-forwarded-proto'])?.toLowerCase();
  return said === 'http' || said === 'https' ? said : undefined;
}

/**
 * The request a proxy asks keygate about (forward-auth.ts): its original method, URI and host,
 * read from what each kind of proxy sends, and made into the shape the pipeline's stages read
 * of a request (method, url, headers, rawHeaders, HTTP version, the client's address).
 *
 * Which headers are read is fixed by the path the proxy calls, never guessed from which headers
 * are present: a proxy forwards the client's own headers to the auth service, so a client
 * behind Caddy could send `X-Original-URI: /public` and a client behind nginx
 * `X-Forwarded-Uri: /public`; whichever convention a reader preferred, one of them would get
 * another path's policy. Each path reads one convention, the one its proxy always overwrites:
 *
 *   /nginx       X-Original-Method, X-Original-URI, X-Original-Host (set with proxy_set_header)
 *   /forwarded   X-Forwarded-Method, X-Forwarded-Uri, X-Forwarded-Host (Caddy forward_auth,
 *                Traefik forwardAuth: both set them on every auth request)
 *   /envoy/…     Envoy's HTTP ext_authz: the auth request has the original method and Host, and
 *                the original path (with query) after the `path_prefix` /envoy
 *
 * A header that is missing, repeated, or (X-…-Host) a list is refused with 400 naming it — never
 * defaulted (to `/`, which may well be a public route). The client's address (failed-auth
 * limit, per-address rate limits) is the right-most X-Forwarded-For entry, the one the proxy
 * appended; without one, the proxy's own address.
 *
 * @example
 *   const read = readOriginal(req);
 *   if (isRefusal(read)) answer(read); else pipeline.run(new ForwardAuthExchange(read.request, res, now, read.style));
 */
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { isIPv4, isIPv6 } from 'node:net';
import type { Refusal } from '../auth/refusals.ts';

export type ForwardAuthStyle = 'nginx' | 'forwarded' | 'envoy';

/** Envoy's `http_service.path_prefix`: the original path follows it. */
export const ENVOY_PREFIX = '/envoy';

const HEADERS = {
  nginx: { method: 'x-original-method', uri: 'x-original-uri', host: 'x-original-host' },
  forwarded: { method: 'x-forwarded-method', uri: 'x-forwarded-uri', host: 'x-forwarded-host' },
} as const;

/** The header names each style reads (for the docs and the tests). */
export const ORIGINAL_HEADERS: Readonly<Record<Exclude<ForwardAuthStyle, 'envoy'>, { method: string; uri: string; host: string }>> = HEADERS;

/** RFC 9110 §9.1: a method is a token. */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * What the stages read of a request, for the original one. The stages are written against
 * node's IncomingMessage; they read only these fields (routing/match.ts, request-host.ts,
 * auth/extract.ts, http/client-address.ts), so this stands in for it (`asIncoming`).
 */
export class OriginalRequest {
  readonly httpVersionMajor = 1;
  readonly httpVersionMinor = 1;
  readonly method: string;
  url: string;
  readonly headers: IncomingHttpHeaders;
  readonly rawHeaders: string[];
  readonly socket: { readonly remoteAddress: string };

  constructor(method: string, url: string, host: string, from: IncomingMessage, clientAddress: string) {
    this.method = method;
    this.url = url;
    // The auth request's own Host names keygate (nginx, Traefik); the original host replaces it.
    this.headers = { ...from.headers, host };
    const raw: string[] = [];
    const source = from.rawHeaders;
    for (let i = 0; i < source.length; i += 2) if (source[i]!.toLowerCase() !== 'host') raw.push(source[i]!, source[i + 1]!);
    raw.push('Host', host);
    this.rawHeaders = raw;
    this.socket = { remoteAddress: clientAddress };
  }

  /** The stand-in, typed as what the stages take. */
  asIncoming(): IncomingMessage {
    return this as unknown as IncomingMessage;
  }
}

export interface Original {
  style: ForwardAuthStyle;
  request: OriginalRequest;
}

function badRequest(detail: string): Refusal {
  return { code: 'bad_request', outcome: 'bad_request', detail, headers: undefined };
}

const NOT_FOUND: Refusal = { code: 'not_found', outcome: 'no_route', detail: 'forward-auth answers at /nginx, /forwarded and /envoy/<original path> (docs/forward-auth.md)', headers: undefined };

/** The style the auth request's path asks for, and for Envoy the original target; null: none. */
export function styleOf(url: string): { style: ForwardAuthStyle; rest: string } | null {
  const q = url.indexOf('?');
  const path = q === -1 ? url : url.slice(0, q);
  if (path === '/nginx') return { style: 'nginx', rest: '' };
  if (path === '/forwarded') return { style: 'forwarded', rest: '' };
  if (url.startsWith(`${ENVOY_PREFIX}/`)) return { style: 'envoy', rest: url.slice(ENVOY_PREFIX.length) };
  return null;
}

/** The one value of header `name` (lower-case); undefined when absent, null when sent more than once. */
export function oneHeader(req: IncomingMessage, name: string): string | undefined | null {
  const raw = req.rawHeaders;
  let value: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.length !== name.length || raw[i]!.toLowerCase() !== name) continue;
    if (value !== undefined) return null;
    value = raw[i + 1]!.trim();
  }
  return value;
}

/** The right-most X-Forwarded-For entry when it is an IP address (the one the proxy appended); else the connection's. */
export function clientAddressOf(req: IncomingMessage): string {
  const xff = req.headers['x-forwarded-for'];
  if (xff !== undefined) {
    const text = Array.isArray(xff) ? xff.join(',') : xff;
    const entry = text.slice(text.lastIndexOf(',') + 1).trim();
    if (isIPv4(entry) || isIPv6(entry)) return entry;
  }
  return req.socket.remoteAddress ?? '';
}

function required(req: IncomingMessage, name: string): string | Refusal {
  const value = oneHeader(req, name);
  if (value === undefined || value === '') return badRequest(`${name} is missing: the proxy must send the original request's method, URI and host (docs/forward-auth.md)`);
  if (value === null) return badRequest(`${name} was sent more than once`);
  return value;
}

/** The original request of an auth request, or the refusal to answer with. */
export function readOriginal(req: IncomingMessage): Original | Refusal {
  const found = styleOf(req.url ?? '/');
  if (found === null) return NOT_FOUND;
  const { style } = found;
  let method: string;
  let uri: string;
  let host: string;
  if (style === 'envoy') {
    method = req.method ?? '';
    uri = found.rest;
    const h = oneHeader(req, 'host');
    if (h === undefined || h === '' || h === null) return badRequest('the auth request must carry exactly one Host: the original request\'s');
    host = h;
  } else {
    const names = HEADERS[style];
    const m = required(req, names.method);
    if (typeof m !== 'string') return m;
    const u = required(req, names.uri);
    if (typeof u !== 'string') return u;
    const h = required(req, names.host);
    if (typeof h !== 'string') return h;
    // A proxy that appended to a client's value: which entry is the original is anybody's guess.
    if (h.includes(',')) return badRequest(`${names.host} must name one host, not a list`);
    method = m;
    uri = u;
    host = h;
  }
  if (!TOKEN.test(method)) return badRequest('the original method is not an HTTP method');
  return { style, request: new OriginalRequest(method, uri, host, req, clientAddressOf(req)) };
}

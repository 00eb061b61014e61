/**
 * The host a request is for, the one routing and `X-Forwarded-Host` use. RFC 9112 §3.2:
 * a request with more than one Host header, or an invalid one, is refused (400) — two
 * parties that pick different copies would route it differently; and §3.2.2: the
 * authority of an absolute-form target (`GET http://a.example/x`) replaces Host.
 */
import type { IncomingMessage } from 'node:http';
import type { NormalizedTarget } from './normalize-path.ts';

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

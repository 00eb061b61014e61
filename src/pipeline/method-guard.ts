/**
 * Methods keygate never forwards, on any route: TRACE, and IIS's TRACK. An upstream that
 * implements TRACE echoes the request it received — with the identity headers and the
 * route's injected secret (Authorization of the upstream) that keygate added — back to the
 * caller. Refused with 405 `method_not_allowed` before routing, so no route, key or
 * upstream is involved. (node's parser already refuses TRACK with 400; it is listed in
 * case a lenient parser ever lets it through.) WebSocket upgrades are GETs and never get here.
 *
 * @example
 *   if (refuseTrace(exchange)) return;      // first line of Gateway.#route
 */
import { hasBody, lingeringClose } from '../http/body-limit.ts';
import type { Exchange } from './exchange.ts';
import { sendProblem } from '../http/problem.ts';

/** True when the request was answered (405) and must go no further. */
export function refuseTrace(exchange: Exchange): boolean {
  const method = exchange.req.method;
  if (method !== 'TRACE' && method !== 'TRACK') return false;
  exchange.outcome = 'bad_request';
  exchange.error = 'method_not_allowed';
  const req = exchange.req;
  const body = hasBody(req);
  // As Gateway.#reject: an unread body is not drained, the connection closes after the answer.
  if (body && !req.readableEnded) lingeringClose(req);
  sendProblem(exchange.res, 'method_not_allowed', `${method} is never forwarded: an upstream would echo the headers keygate adds`, undefined, body);
  return true;
}

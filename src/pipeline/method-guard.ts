/**
 * Methods keygate never forwards, on any route: TRACE, and IIS's TRACK. An upstream that
 * implements TRACE echoes the request it received — with the identity headers and the
 * route's injected secret (Authorization of the upstream) that keygate added — back to the
 * caller. Refused with 405 `method_not_allowed` before routing, so no route, key or
 * upstream is involved. (node's parser already refuses TRACK with 400; it is listed in
 * case a lenient parser ever lets it through.) WebSocket upgrades are GETs and never get here.
 *
 * @example
 *   new Pipeline([methodStage, targetStage, …], …)      // the first stage of every request
 */
import type { Refusal } from '../auth/refusals.ts';
import type { Exchange } from './exchange.ts';
import type { Stage } from './pipeline.ts';

const refusal = (method: string): Refusal => ({ code: 'method_not_allowed', outcome: 'bad_request', detail: `${method} is never forwarded: an upstream would echo the headers keygate adds`, headers: undefined });
const TRACE = refusal('TRACE');
const TRACK = refusal('TRACK');

/** The first stage: TRACE and TRACK get 405, everything else goes on. */
export const methodStage: Stage<Exchange> = {
  name: 'method',
  run(exchange) {
    const method = exchange.req.method;
    return method === 'TRACE' ? TRACE : method === 'TRACK' ? TRACK : undefined;
  },
};

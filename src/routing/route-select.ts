/**
 * Which route a request is for — the same answer for plain requests (transports/http.ts) and
 * WebSocket upgrades (websocket.ts): given its one valid Host (request-host.ts; BAD_HOST
 * when it has none), the route table's choice, refused if a reading of the path without `;`
 * parameters or ignoring case would have chosen another route (route-ambiguity.ts).
 * Returns the route or the (preallocated) refusal to answer with.
 */
import type { Refusal } from '../auth/refusals.ts';
import { misleadingPath } from './route-ambiguity.ts';
import type { Route, Router } from './router.ts';

export const BAD_HOST: Refusal = { code: 'bad_request', outcome: 'bad_request', detail: 'the request has more than one Host header, or an invalid one', headers: undefined };
const NO_ROUTE: Refusal = { code: 'no_route', outcome: 'no_route', detail: 'no route matches this host and path', headers: undefined };
const MISLEADING: Refusal = { code: 'bad_request', outcome: 'bad_request', detail: 'the path selects another route when read without ";" parameters or ignoring case', headers: undefined };

/** `host` as requestHost found it (undefined: HTTP/1.0 without one). */
export function selectRoute(router: Router, host: string | undefined, path: string): Route | Refusal {
  const route = router.match(host, path);
  if (route === undefined) return NO_ROUTE;
  return misleadingPath(router, host, path, route) ? MISLEADING : route;
}

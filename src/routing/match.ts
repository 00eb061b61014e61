/**
 * The pipeline's routing stages: `target` (normalise the path, find the one valid host) and
 * `match` (the route table's choice, refused when a reading of the path would choose another
 * route). WebSocket upgrades are matched once, in node:http's `shouldUpgradeCallback`; the
 * answer is kept on the request for their pipeline, so an upgrade is not normalised and
 * routed twice.
 */
import type { IncomingMessage } from 'node:http';
import type { Refusal } from '../auth/refusals.ts';
import type { Exchange } from '../pipeline/exchange.ts';
import type { Current } from '../pipeline/current.ts';
import type { Stage } from '../pipeline/pipeline.ts';
import { normalizeTarget, type NormalizedTarget } from './normalize-path.ts';
import { requestHost } from './request-host.ts';
import { BAD_HOST, selectRoute } from './route-select.ts';
import type { Route } from './router.ts';
import { isRefusal } from '../auth/refusals.ts';

export const BAD_TARGET: Refusal = { code: 'bad_request', outcome: 'bad_request', detail: 'the request path contains an encoded "/", "\\" or NUL, or is malformed', headers: undefined };
const NOT_WEBSOCKET: Refusal = { code: 'no_route', outcome: 'no_route', detail: 'no route accepts WebSocket upgrades at this host and path', headers: undefined };

interface Matched {
  target: NormalizedTarget | null;
  host: string | undefined;
  route: Route | Refusal;
}
const kMatched = Symbol('keygate.matched');
type Tagged = IncomingMessage & { [kMatched]?: Matched };

/** Normalises the target and finds the host, into `into` (the exchange itself on the hot path); or why not. */
function readTarget(req: IncomingMessage, into: { target: NormalizedTarget | null; host: string | undefined }): Refusal | undefined {
  const target = normalizeTarget(req.url ?? '/');
  if (target === null) return BAD_TARGET;
  const host = requestHost(req, target);
  if (host === null) return BAD_HOST;
  into.target = target;
  into.host = host;
  return undefined;
}

/** Target and route of a request, or why it has none. */
export function matchRequest(req: IncomingMessage, current: Current): Matched | Refusal {
  const matched: Matched = { target: null, host: undefined, route: BAD_TARGET };
  const refused = readTarget(req, matched);
  if (refused !== undefined) return refused;
  matched.route = selectRoute(current.state.router, matched.host, matched.target!.path);
  return matched;
}

/**
 * node:http's shouldUpgradeCallback: only WebSocket upgrades to routes that accept them; the
 * match is kept on the request for the upgrade's own pipeline.
 */
export function upgradeMatch(req: IncomingMessage, current: Current): boolean {
  const matched = matchRequest(req, current);
  if (isRefusal(matched) || isRefusal(matched.route) || matched.route.config.websocket !== true) return false;
  (req as Tagged)[kMatched] = matched;
  return true;
}

export const targetStage: Stage<Exchange> = {
  name: 'target',
  run: (exchange) => readTarget(exchange.req, exchange),
};

export function matchStage(current: Current): Stage<Exchange> {
  return {
    name: 'match',
    run(exchange) {
      const route = selectRoute(current.state.router, exchange.host, exchange.target!.path);
      if (isRefusal(route)) return route;
      exchange.route = route;
      return undefined;
    },
  };
}

/** An upgrade's target and route, as shouldUpgradeCallback found them (matched again if it did not run). */
export function upgradeStage(current: Current): Stage<Exchange> {
  return {
    name: 'match',
    run(exchange) {
      const req = exchange.req as Tagged;
      const matched = req[kMatched] ?? matchRequest(req, current);
      if (isRefusal(matched)) return matched;
      const route = matched.route;
      if (isRefusal(route)) return route;
      // Only reachable where node:http has no shouldUpgradeCallback: refuse rather than hang.
      if (route.config.websocket !== true) return NOT_WEBSOCKET;
      exchange.target = matched.target;
      exchange.host = matched.host;
      exchange.route = route;
      return undefined;
    },
  };
}

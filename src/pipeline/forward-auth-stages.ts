/**
 * The stages only the forward-auth transport has (pipeline/stages.ts puts them in order with
 * the shared ones; transports/forward-auth.ts runs them):
 *
 *  - `body check`: a route whose policy reads the request body (a webhook signature, an MCP
 *    per-tool policy) cannot be judged from the method, host and URI a proxy sends — its
 *    requests are refused (404 no_route) rather than let through unjudged;
 *  - `environment`: a sandbox key must reach only the route's sandbox upstream, and the proxy in
 *    front sends every request to its own upstream — so sandbox keys are refused (403
 *    forbidden_environment; on routes without a sandbox upstream authorize already did);
 *  - `answer`: 200 with the identity headers, the values keygate's proxy injects
 *    (rewrite.ts pushIdentity) — every one of them, '' where there is no value, so a
 *    proxy that copies them onto the upstream request overwrites what the client sent under
 *    those names. Envoy instead gets the names without a value, and the credential, in
 *    `x-envoy-auth-headers-to-remove`: Envoy removes them from the request it forwards.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { carriesKey } from '../auth/extract.ts';
import type { Refusal } from '../auth/refusals.ts';
import type { Current } from './current.ts';
import { HttpExchange } from './exchange.ts';
import { ANSWERED, type Stage } from './pipeline.ts';
import { pushIdentity } from './rewrite.ts';
import type { ForwardAuthStyle } from '../transports/original-request.ts';

/** One auth request: `req` is the original request as the proxy described it (original-request.ts). */
export class ForwardAuthExchange extends HttpExchange {
  readonly style: ForwardAuthStyle;
  /** The auth request itself (the proxy's connection). */
  readonly check: IncomingMessage;

  constructor(original: IncomingMessage, res: ServerResponse, start: number, style: ForwardAuthStyle, check: IncomingMessage) {
    super(original, res, start);
    this.style = style;
    this.check = check;
  }
}

function bodyRefusal(name: string, what: string): Refusal {
  return { code: 'no_route', outcome: 'no_route', detail: `route ${name} checks ${what}, which forward-auth never sees; send its requests through keygate's proxy listener`, headers: undefined };
}

export const bodyCheckStage: Stage<ForwardAuthExchange> = {
  name: 'body check',
  applies: (route) => route.config.webhook !== undefined || (route.config.mcp?.policy !== undefined && route.authRequired),
  run(exchange) {
    const route = exchange.route!;
    return bodyRefusal(route.name, route.config.webhook !== undefined ? 'webhook signatures over the request body' : 'MCP calls in the request body (mcp.policy)');
  },
};

const SANDBOX: Refusal = {
  code: 'forbidden_environment',
  outcome: 'forbidden',
  detail: "forward-auth cannot send a sandbox key to the route's sandbox upstream (the proxy in front chooses the upstream); use a live key",
  headers: undefined,
};

export const environmentStage: Stage<ForwardAuthExchange> = {
  name: 'environment',
  applies: (route) => route.sandbox !== null,
  run: (exchange) => (exchange.identity?.record.environment === 'sandbox' ? SANDBOX : undefined),
};

/** The last stage: 200 and the identity headers; the proxy goes on with the original request. */
export function answerStage(current: Current): Stage<ForwardAuthExchange> {
  return {
    name: 'answer',
    run(exchange) {
      const policy = current.state.headers;
      const names = policy.names;
      const pairs: string[] = [];
      if (exchange.identity !== null) pushIdentity(pairs, exchange.identity, names, true);
      else pairs.push(names.tenant, '', names.role, '', names.keyId, '', names.permissions, '', names.user, '', names.client, '', names.environment, '');
      const res = exchange.res;
      if (exchange.style === 'envoy') {
        // Envoy overwrites the headers it copies (allowed_upstream_headers) and removes these.
        const remove = ['x-api-key'];
        const authorization = exchange.req.headers.authorization;
        if (exchange.credential?.inAuthorization || (authorization !== undefined && carriesKey(authorization, policy.keyPrefix))) remove.push('authorization');
        for (let i = 0; i < pairs.length; i += 2) {
          if (pairs[i + 1] === '') remove.push(pairs[i]!);
          else res.setHeader(pairs[i]!, pairs[i + 1]!);
        }
        res.setHeader('x-envoy-auth-headers-to-remove', remove.join(', '));
      } else {
        for (let i = 0; i < pairs.length; i += 2) res.setHeader(pairs[i]!, pairs[i + 1]!);
      }
      res.statusCode = 200;
      res.setHeader('cache-control', 'no-store');
      res.setHeader('content-length', 0);
      res.end();
      return ANSWERED;
    },
  };
}

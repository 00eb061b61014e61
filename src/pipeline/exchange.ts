/**
 * One request's state as it moves along the pipeline (pipeline.ts): a single object per
 * request, so the stages hand it on instead of allocating closures. `Exchange` is what every
 * transport shares — the target, the route, the credential, the verified identity, the
 * headers the upstream will get; `HttpExchange` adds the response of a plain request, the
 * WebSocket transport's Tunnel the client socket of an upgrade.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Credential } from '../auth/extract.ts';
import type { Identity } from '../auth/identity.ts';
import type { ProblemCode } from '../http/problem.ts';
import type { NormalizedTarget } from '../routing/normalize-path.ts';
import type { Route } from '../routing/router.ts';
import type { VerifiedDelivery } from '../webhooks/delivery.ts';
import type { ResponseFilter } from '../mcp/list-filter.ts';

/** Bounded label set for logs and metrics. */
export type AuthOutcome = 'ok' | 'public' | 'missing' | 'invalid' | 'revoked' | 'expired' | 'disabled' | 'forbidden' | 'unavailable' | 'bad_request' | 'limited' | 'no_route';

export interface ExchangeAbort {
  clientClosed(): void;
}

export abstract class Exchange {
  readonly req: IncomingMessage;
  readonly start: number;
  /** The normalised path and query (set by the target stage). */
  target: NormalizedTarget | null = null;
  /** The host the request names (undefined: none), for route selection. */
  host: string | undefined = undefined;
  route: Route | null = null;
  /** The MCP call being made, when the route's policy read it (the tool a per-tool limit counts by). */
  mcp: { readonly method: string; readonly name: string | undefined } | null = null;
  /** What the credential stage found; null on public routes. */
  credential: Credential | null = null;
  identity: Identity | null = null;
  outcome: AuthOutcome = 'public';
  /** keygate's own error, when it answered instead of the upstream. */
  error: ProblemCode | null = null;
  /** Headers the route sets upstream (its secret, its identity assertion), replacing client copies. */
  routeHeaders: readonly string[] | null = null;
  /** The upstream request's headers, [name, value, …] (set by the rewrite stage). */
  headers: string[] | null = null;

  constructor(req: IncomingMessage, start: number) {
    this.req = req;
    this.start = start;
  }

  /** The client has gone: a stage that settles later must not go on. */
  abstract get gone(): boolean;
}

export class HttpExchange extends Exchange {
  readonly res: ServerResponse;
  /** The client sent `Expect: 100-continue` ('checkContinue'): answered when the body is wanted. */
  readonly expectContinue: boolean;
  upstream: ExchangeAbort | null = null;
  /** Webhook routes: the verified body and what to tell the upstream about it (webhooks/delivery.ts). */
  delivery: VerifiedDelivery | null = null;
  /** A route with `cors`: keygate's CORS headers are the only ones (forward.ts drops the upstream's). */
  cors = false;
  /** keygate set RateLimit fields (limits/stage.ts): the upstream's own are dropped (forward.ts). */
  rateLimitFields = false;
  /** The request body, already read by a stage that had to judge it (MCP policy): forwarded as these bytes. */
  body: Buffer | null = null;
  /** Rewrites the upstream's response (MCP list answers, mcp/list-filter.ts); null: passed through as is. */
  responseFilter: ResponseFilter | null = null;
  /** performance.now() when the upstream request was dispatched, and when its headers came (0: not yet). */
  upstreamStart = 0;
  upstreamHeadersAt = 0;

  constructor(req: IncomingMessage, res: ServerResponse, start: number, expectContinue = false) {
    super(req, start);
    this.res = res;
    this.expectContinue = expectContinue;
  }

  get gone(): boolean {
    return this.res.destroyed;
  }
}

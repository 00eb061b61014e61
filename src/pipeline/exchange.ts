/**
 * One request's state as it moves along the chain: a single object per request, so the
 * stages pass it along instead of allocating closures.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Identity } from '../auth/identity.ts';
import type { ProblemCode } from '../http/problem.ts';
import type { Route } from '../routing/router.ts';
import type { VerifiedDelivery } from '../webhooks/delivery.ts';

/** Bounded label set for logs and metrics. */
export type AuthOutcome = 'ok' | 'public' | 'missing' | 'invalid' | 'revoked' | 'expired' | 'forbidden' | 'unavailable' | 'bad_request' | 'limited';

export interface ExchangeAbort {
  clientClosed(): void;
}

export class Exchange {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly start: number;
  route: Route | null = null;
  identity: Identity | null = null;
  outcome: AuthOutcome = 'public';
  /** keygate's own error, when it answered instead of the upstream. */
  error: ProblemCode | null = null;
  upstream: ExchangeAbort | null = null;
  /** Webhook routes: the verified body and what to tell the upstream about it (webhooks/delivery.ts). */
  delivery: VerifiedDelivery | null = null;
  /** A route with `cors`: keygate's CORS headers are the only ones (forward.ts drops the upstream's). */
  cors = false;
  /** performance.now() when the upstream request was dispatched, and when its headers came (0: not yet). */
  upstreamStart = 0;
  upstreamHeadersAt = 0;

  constructor(req: IncomingMessage, res: ServerResponse, start: number) {
    this.req = req;
    this.res = res;
    this.start = start;
  }
}

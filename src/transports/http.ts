/**
 * The HTTP transport: node:http's 'request' (and 'checkContinue') handler. It makes the
 * Exchange, runs the pipeline over it (pipeline/stages.ts lists the stages in order) and does
 * the three things only a plain request has: answering a refusal with a problem response,
 * answering 500 when keygate itself failed, and one access-log line when the response is
 * finished or abandoned. Nothing here blocks: the cached path runs straight through.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Refusal } from '../auth/refusals.ts';
import { hasBody, lingeringClose } from '../http/body-limit.ts';
import { sendProblem } from '../http/problem.ts';
import type { Logger } from '../observability/logger.ts';
import { logExchange, pathOf } from '../pipeline/access-log.ts';
import { HttpExchange } from '../pipeline/exchange.ts';
import type { ForwardHooks } from '../pipeline/forward.ts';
import type { LiveExchanges } from '../pipeline/live-exchanges.ts';
import { Pipeline } from '../pipeline/pipeline.ts';
import { httpStages, type StageParts } from '../pipeline/stages.ts';
import type { WebhookVerifier } from '../webhooks/delivery.ts';

export interface GatewayOptions extends StageParts {
  /** One line per request when set; null switches the access log off. */
  accessLog: Logger | null;
  logger: Logger;
  hooks?: GatewayHooks;
  /** Signature verification for routes with a `webhook` section (webhooks/delivery.ts); null: such routes answer 502. */
  webhooks?: WebhookVerifier | null;
  /**
   * The long-lived exchange registry (live-exchanges.ts): event streams and responses still
   * streaming end there when their key or token stops working, and at shutdown.
   */
  live?: LiveExchanges | null;
}

export interface GatewayHooks extends ForwardHooks {
  /** Called once per request when the client response is finished or abandoned. */
  onRequestDone?(exchange: HttpExchange, durationMs: number): void;
}

const kExchange = Symbol('keygate.exchange');
const kGateway = Symbol('keygate.gateway');
type Tagged = ServerResponse & { [kExchange]?: HttpExchange; [kGateway]?: Gateway };

/** Shared by every response (no closure per request): ends the upstream call if the client left, logs. */
function onClose(this: Tagged): void {
  const exchange = this[kExchange];
  if (exchange === undefined) return;
  this[kExchange] = undefined;
  exchange.upstream?.clientClosed();
  this[kGateway]!.requestDone(exchange);
}

export class Gateway {
  readonly pipeline: Pipeline<HttpExchange>;
  readonly #accessLog: Logger | null;
  readonly #logger: Logger;
  readonly #hooks: GatewayHooks;
  readonly #live: LiveExchanges | null;
  readonly #webhooks: WebhookVerifier | null;

  constructor(options: GatewayOptions) {
    this.#accessLog = options.accessLog;
    this.#logger = options.logger;
    const hooks = (this.#hooks = options.hooks ?? {});
    this.#live = options.live ?? null;
    const webhooks = (this.#webhooks = options.webhooks ?? null);
    const onUpstreamDone = hooks.onUpstreamDone?.bind(hooks);
    const forwardHooks: ForwardHooks = {
      onUpstreamDone(exchange, error) {
        onUpstreamDone?.(exchange, error);
        // A verified webhook the upstream failed (or answered 5xx): the sender's retry must get through.
        if (exchange.delivery !== null && (error !== null || exchange.res.statusCode >= 500)) webhooks?.release(exchange.delivery);
      },
      onEventStream: hooks.onEventStream?.bind(hooks),
      live: this.#live,
    };
    const [front, route] = httpStages(options, webhooks, forwardHooks);
    this.pipeline = new Pipeline(front, route, { refuse: (exchange, refusal) => this.#refuse(exchange, refusal), failed: (exchange, error) => this.#failed(exchange, error) });
  }

  /** node:http 'request' handler (and 'checkContinue' with expectContinue). */
  handle(req: IncomingMessage, res: ServerResponse, expectContinue = false): void {
    const exchange = new HttpExchange(req, res, performance.now(), expectContinue);
    (res as Tagged)[kExchange] = exchange;
    (res as Tagged)[kGateway] = this;
    res.on('close', onClose);
    this.pipeline.run(exchange);
  }

  /**
   * Shutdown: ends every open event stream the way a stream ends normally, between two events
   * (the client sees the end of the response and may reconnect elsewhere), and stops its
   * upstream request. Other responses still streaming get the rest of the grace period.
   */
  endStreams(): number {
    return this.#live?.endAll('shutdown', 'event-stream') ?? 0;
  }

  /** Once per request, when the response is finished or abandoned. */
  requestDone(exchange: HttpExchange): void {
    const ms = performance.now() - exchange.start;
    this.#hooks.onRequestDone?.(exchange, ms);
    if (this.#accessLog === null) return;
    const res = exchange.res;
    logExchange(this.#accessLog, exchange, pathOf(exchange.req.url), res.writableFinished ? res.statusCode : 499, ms);
  }

  #refuse(exchange: HttpExchange, refusal: Refusal): void {
    // Refused after its signature was verified (its upstream secret is missing): nothing was forwarded.
    if (exchange.delivery !== null) this.#webhooks?.release(exchange.delivery);
    exchange.outcome = refusal.outcome;
    exchange.error = refusal.code;
    const req = exchange.req;
    const body = hasBody(req);
    // An unread body would otherwise be drained from the socket; close instead (once the answer is out).
    if (body && !req.readableEnded) lingeringClose(req);
    sendProblem(exchange.res, refusal.code, refusal.detail, refusal.headers, body);
  }

  #failed(exchange: HttpExchange, error: unknown): void {
    if (exchange.delivery !== null) this.#webhooks?.release(exchange.delivery);
    this.#logger.error({ err: error, route: exchange.route?.name }, 'request failed inside keygate');
    exchange.error = 'internal_error';
    sendProblem(exchange.res, 'internal_error', 'keygate failed to handle the request', undefined, true);
  }
}

/**
 * The request path, top to bottom:
 *
 *   normalise target → [protected resource metadata] → route match → [Origin / CORS] → body
 *   limit → extract credential → verify (key, or access token on routes that accept them)
 *   → authorize → [webhook signature] → upstream secret (routes that name one) → rewrite
 *   headers → forward
 *
 * The bracketed stages cost one field check on routes (and deployments) that do not use them.
 *
 * Each stage either hands the Exchange on or answers with a problem. Nothing here blocks:
 * verify returns synchronously on a cache hit and a Promise only on a store lookup.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { CONFLICT, extractCredential, type Credential } from '../auth/extract.ts';
import type { Identity } from '../auth/identity.ts';
import type { LastUsed } from '../events/last-used.ts';
import type { Logger } from '../observability/logger.ts';
import type { HeaderResult, SecretSpec } from '../secrets/vault.ts';
import { isRefusal, type Admission, type Door } from '../auth/admit.ts';
import { CONFLICTING_CREDENTIALS, missingCredentials, type Refusal } from '../auth/refusals.ts';
import { hasBody, limitBody, lingeringClose } from '../http/body-limit.ts';
import { applyCors, sameOriginOnly } from '../pipeline/cors.ts';
import { Exchange, type AuthOutcome } from '../pipeline/exchange.ts';
import { forward, type ForwardHooks } from '../pipeline/forward.ts';
import { upstreamHeaders, type HeaderPolicy } from '../pipeline/rewrite.ts';
import type { LiveExchanges } from '../pipeline/live-exchanges.ts';
import { refuseTrace } from '../pipeline/method-guard.ts';
import { normalizeTarget, type NormalizedTarget } from '../routing/normalize-path.ts';
import { requestHost } from '../routing/request-host.ts';
import { BAD_HOST, selectRoute } from '../routing/route-select.ts';
import { sendProblem, type ProblemCode } from '../http/problem.ts';
import { ResourceMetadata } from '../mcp/resource-metadata.ts';
import { Router } from '../routing/router.ts';
import type { IdentitySigner } from '../auth/identity-signer.ts';
import { withAssertion } from '../pipeline/signed-identity.ts';
import { isDeliveryRefusal, type DeliveryResult, type WebhookVerifier } from '../webhooks/delivery.ts';

export interface GatewayOptions {
  router: Router;
  /** Who gets in (admit.ts): the key verifier and the failed-auth limit, shared with WebSocket upgrades. */
  door: Door;
  headers: HeaderPolicy;
  /** One line per request when set; null switches the access log off. */
  accessLog: Logger | null;
  logger: Logger;
  hooks?: GatewayHooks;
  /** Notes each key's use; written to the store in batches, never per request. */
  lastUsed?: LastUsed;
  /** Upstream secrets for routes that name one (secrets/vault.ts); without it such routes answer 502. */
  secrets?: SecretSource | null;
  /** Signature verification for routes with a `webhook` section (webhooks/delivery.ts); without it such routes answer 502. */
  webhooks?: WebhookVerifier | null;
  /**
   * The long-lived exchange registry (live-exchanges.ts): event streams and responses still
   * streaming end there when their key or token stops working, and at shutdown.
   */
  live?: LiveExchanges | null;
  /** Signs the caller's identity on routes with `signedIdentity` (auth/identity-signer.ts). */
  signer?: IdentitySigner | null;
}

export interface SecretSource {
  /** `[header, value]` to set upstream, why there is none, or a Promise of either. */
  headerFor(spec: SecretSpec): HeaderResult | Promise<HeaderResult>;
}

export interface GatewayHooks extends ForwardHooks {
  /** Called once per request when the client response is finished or abandoned. */
  onRequestDone?(exchange: Exchange, durationMs: number): void;
}

const kExchange = Symbol('keygate.exchange');
const kGateway = Symbol('keygate.gateway');
type Tagged = ServerResponse & { [kExchange]?: Exchange; [kGateway]?: Gateway };

/** Shared by every response (no closure per request): ends the upstream call if the client left, logs. */
function onClose(this: Tagged): void {
  const exchange = this[kExchange];
  if (exchange === undefined) return;
  this[kExchange] = undefined;
  exchange.upstream?.clientClosed();
  this[kGateway]!.requestDone(exchange);
}


export class Gateway {
  router: Router;
  headers: HeaderPolicy;
  readonly #door: Door;
  readonly #accessLog: Logger | null;
  readonly #logger: Logger;
  readonly #hooks: GatewayHooks;
  readonly #forwardHooks: ForwardHooks;
  readonly #live: LiveExchanges | null;
  readonly #lastUsed: LastUsed | null;
  readonly #secrets: SecretSource | null;
  readonly #webhooks: WebhookVerifier | null;
  readonly #signer: IdentitySigner | null;

  constructor(options: GatewayOptions) {
    this.router = options.router;
    this.headers = options.headers;
    this.#door = options.door;
    this.#accessLog = options.accessLog;
    this.#logger = options.logger;
    const hooks = (this.#hooks = options.hooks ?? {});
    this.#live = options.live ?? null;
    this.#forwardHooks = {
      onUpstreamDone: hooks.onUpstreamDone?.bind(hooks),
      onEventStream: hooks.onEventStream?.bind(hooks),
      live: this.#live,
    };
    this.#lastUsed = options.lastUsed ?? null;
    this.#secrets = options.secrets ?? null;
    this.#webhooks = options.webhooks ?? null;
    this.#signer = options.signer ?? null;
  }

  /** node:http 'request' handler (and 'checkContinue' with expectContinue). */
  handle(req: IncomingMessage, res: ServerResponse, expectContinue = false): void {
    const exchange = new Exchange(req, res, performance.now());
    (res as Tagged)[kExchange] = exchange;
    (res as Tagged)[kGateway] = this;
    res.on('close', onClose);
    try {
      this.#route(exchange, expectContinue);
    } catch (error) {
      this.#internalError(exchange, error);
    }
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
  requestDone(exchange: Exchange): void {
    const ms = performance.now() - exchange.start;
    this.#hooks.onRequestDone?.(exchange, ms);
    if (this.#accessLog === null) return;
    const { req, res, route, identity } = exchange;
    const target = req.url ?? '';
    const q = target.indexOf('?');
    this.#accessLog.info({
      msg: 'request',
      method: req.method,
      // Without the query string: it is where careless clients put credentials.
      path: q === -1 ? target : target.slice(0, q),
      route: route?.name ?? null,
      status: res.writableFinished ? res.statusCode : 499,
      ms: Math.round(ms * 100) / 100,
      outcome: exchange.outcome,
      code: exchange.error,
      keyId: identity?.record.id || null,
      issuer: identity?.issuer,
      tenant: identity?.record.tenant ?? null,
    });
  }

  #reject(exchange: Exchange, code: ProblemCode, outcome: AuthOutcome, detail: string, headers?: Record<string, string>): void {
    exchange.outcome = outcome;
    exchange.error = code;
    // An unread body would otherwise be drained from the socket; close instead (once the answer is out).
    const unread = hasBody(exchange.req) && !exchange.req.readableEnded;
    if (unread) lingeringClose(exchange.req);
    sendProblem(exchange.res, code, detail, headers, hasBody(exchange.req));
  }

  #refuse(exchange: Exchange, refusal: Refusal): void {
    this.#reject(exchange, refusal.code, refusal.outcome, refusal.detail, refusal.headers);
  }

  #internalError(exchange: Exchange, error: unknown): void {
    this.#logger.error({ err: error, route: exchange.route?.name }, 'request failed inside keygate');
    exchange.error = 'internal_error';
    sendProblem(exchange.res, 'internal_error', 'keygate failed to handle the request', undefined, true);
  }

  #route(exchange: Exchange, expectContinue: boolean): void {
    if (refuseTrace(exchange)) return;
    const req = exchange.req;
    const target = normalizeTarget(req.url ?? '/');
    if (target === null) {
      this.#reject(exchange, 'bad_request', 'bad_request', 'the request path contains an encoded "/", "\\" or NUL, or is malformed');
      return;
    }
    const host = requestHost(req, target);
    if (host === null) {
      this.#refuse(exchange, BAD_HOST);
      return;
    }
    const metadata = this.router.metadata;
    if (metadata !== null && ResourceMetadata.concerns(target.path) && metadata.answer(exchange, target.path)) return;
    const route = selectRoute(this.router, host, target.path);
    if (isRefusal(route)) {
      this.#refuse(exchange, route);
      return;
    }
    exchange.route = route;
    if (route.cors !== null) {
      exchange.cors = true;
      const verdict = applyCors(route.cors, req, exchange.res);
      if (verdict === 'answered') return;
      if (verdict === 'forbidden') {
        this.#reject(exchange, 'forbidden_origin', 'forbidden', 'this route does not accept requests from the Origin sent');
        return;
      }
    } else if (route.mcp !== null && !sameOriginOnly(route.mcp.origin, req)) {
      this.#reject(exchange, 'forbidden_origin', 'forbidden', 'this MCP route accepts no cross-origin requests (routes[].cors lists the origins it would)');
      return;
    }
    const max = route.config.maxBodyBytes;
    const length = req.headers['content-length'];
    if (max > 0 && length !== undefined && Number(length) > max) {
      this.#reject(exchange, 'payload_too_large', 'public', `the request body is larger than ${max} bytes`);
      return;
    }
    if (!route.authRequired) {
      // Public route: no key needed. A key sent by mistake is still never forwarded: the
      // header policy drops X-Api-Key and key-shaped Bearer values on every route.
      this.#forward(exchange, target, null, false, expectContinue);
      return;
    }
    const credential = extractCredential(req.headers);
    if (credential === CONFLICT || credential === null) {
      this.#refuse(exchange, credential === null ? missingCredentials(route) : CONFLICTING_CREDENTIALS);
      return;
    }
    const admission = this.#door.admit(route, req, credential, target.path, this.headers.trustForwarded);
    if (admission instanceof Promise) {
      this.#resume(exchange, admission, (settled) => this.#admitted(exchange, target, credential, settled, expectContinue));
    } else {
      this.#admitted(exchange, target, credential, admission, expectContinue);
    }
  }

  /**
   * Continues a request once a store lookup settles (the slow path only: cache hits never get
   * here). Skips it if the client gave up meanwhile; any failure becomes a 500 problem.
   */
  #resume<T>(exchange: Exchange, pending: Promise<T>, next: (value: T) => void): void {
    pending.then(
      (value) => {
        if (exchange.res.destroyed) return;
        try {
          next(value);
        } catch (error) {
          this.#internalError(exchange, error);
        }
      },
      (error: unknown) => this.#internalError(exchange, error),
    );
  }

  #admitted(exchange: Exchange, target: NormalizedTarget, credential: Credential, admission: Admission, expectContinue: boolean): void {
    if (isRefusal(admission)) {
      if (admission.identity !== undefined) exchange.identity = admission.identity;
      this.#refuse(exchange, admission);
      return;
    }
    exchange.identity = admission;
    exchange.outcome = 'ok';
    // Keys only: an access token has no record in the store to note the use on.
    if (admission.issuer === undefined) this.#lastUsed?.mark(admission.record.id, Date.now());
    // The credential's Authorization header (a key, or an access token) is never forwarded.
    this.#forward(exchange, target, admission, credential.inAuthorization, expectContinue);
  }

  #forward(exchange: Exchange, target: NormalizedTarget, identity: Identity | null, dropAuthorization: boolean, expectContinue: boolean): void {
    if (exchange.route!.config.webhook !== undefined && exchange.delivery === null) {
      this.#verifyDelivery(exchange, target, identity, dropAuthorization, expectContinue);
      return;
    }
    const secret = exchange.route!.config.secret;
    if (secret === undefined) {
      this.#dispatch(exchange, target, upstreamHeaders(exchange.req, this.headers, identity, dropAuthorization, this.#routeHeaders(exchange, target, identity, null)), expectContinue);
      return;
    }
    const result = this.#secrets === null ? 'no_master_key' : this.#secrets.headerFor(secret);
    if (result instanceof Promise) {
      this.#resume(exchange, result, (resolved) => this.#withSecret(exchange, target, identity, dropAuthorization, expectContinue, secret.id, resolved));
    } else {
      this.#withSecret(exchange, target, identity, dropAuthorization, expectContinue, secret.id, result);
    }
  }

  /** Webhook routes: the whole body is read and its signature verified before anything goes upstream. */
  #verifyDelivery(exchange: Exchange, target: NormalizedTarget, identity: Identity | null, dropAuthorization: boolean, expectContinue: boolean): void {
    const next = (result: DeliveryResult) => {
      if (isDeliveryRefusal(result)) {
        this.#refuse(exchange, result);
        return;
      }
      exchange.delivery = result;
      if (identity === null) exchange.outcome = 'ok';
      // The body is read: a 100 Continue, if asked for, has been sent.
      this.#forward(exchange, target, identity, dropAuthorization, false);
    };
    if (this.#webhooks === null) {
      next({ code: 'upstream_unavailable', outcome: 'unavailable', detail: 'webhook signatures cannot be verified by this keygate', headers: undefined });
      return;
    }
    const result = this.#webhooks.verify(exchange, expectContinue);
    if (result instanceof Promise) this.#resume(exchange, result, next);
    else next(result);
  }

  /** The route's secret header replaces any client copy; no secret, no request upstream (502). */
  #withSecret(exchange: Exchange, target: NormalizedTarget, identity: Identity | null, dropAuthorization: boolean, expectContinue: boolean, id: string, result: HeaderResult): void {
    if (typeof result === 'string') {
      // The reason is in the log (vault.ts); the client learns which secret, never anything of its value.
      exchange.error = 'upstream_unavailable';
      sendProblem(exchange.res, 'upstream_unavailable', `the upstream secret "${id}" that this route injects is not available`, undefined, hasBody(exchange.req));
      return;
    }
    this.#dispatch(exchange, target, upstreamHeaders(exchange.req, this.headers, identity, dropAuthorization, this.#routeHeaders(exchange, target, identity, result)), expectContinue);
  }

  /** The headers the route sets (its secret, its identity assertion), which replace any client copy. */
  #routeHeaders(exchange: Exchange, target: NormalizedTarget, identity: Identity | null, secret: readonly string[] | null): readonly string[] | null {
    const route = exchange.route!;
    if (route.signedIdentity === null) return secret;
    return withAssertion(route.signedIdentity, this.#signer, identity, exchange.req.method ?? 'GET', Router.upstreamPath(route, target.path), secret);
  }

  #dispatch(exchange: Exchange, target: NormalizedTarget, headers: string[], expectContinue: boolean): void {
    const { req, res } = exchange;
    const route = exchange.route!;
    let body: IncomingMessage | AsyncIterable<Buffer> | Buffer | null = null;
    const delivery = exchange.delivery;
    if (delivery !== null) {
      // Verified webhook: the exact bytes, and the headers that say so (never taken from the client: headers.* are dropped).
      body = delivery.body;
      headers.push(this.headers.names.webhook, delivery.verified);
      if (delivery.tenant !== null) headers.push(this.headers.names.tenant, delivery.tenant);
    } else if (hasBody(req)) {
      const max = route.config.maxBodyBytes;
      // A Content-Length body was checked above; a chunked one is counted as it streams.
      body = max > 0 && req.headers['content-length'] === undefined ? limitBody(req, max) : req;
      if (expectContinue) res.writeContinue();
    }
    forward(
      route.dispatcher,
      exchange,
      {
        path: Router.upstreamPath(route, target.path) + target.query,
        headers,
        body,
        headersTimeout: route.config.timeouts.headersMs,
        bodyTimeout: route.config.timeouts.idleMs,
      },
      this.#forwardHooks,
    );
  }
}

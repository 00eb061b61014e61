/**
 * The request path, top to bottom:
 *
 *   normalise target → route match → body limit → extract credential → verify → authorize
 *   → upstream secret (routes that name one) → rewrite headers → forward
 *
 * Each stage either hands the Exchange on or answers with a problem. Nothing here blocks:
 * verify returns synchronously on a cache hit and a Promise only on a store lookup.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { authorize } from '../auth/authorize.ts';
import { CONFLICT, extractCredential, type Credential } from '../auth/extract.ts';
import type { FailureLimiter } from '../auth/failure-limiter.ts';
import type { Identity } from '../auth/identity.ts';
import type { Verifier, VerifyResult } from '../auth/verify.ts';
import type { LastUsed } from '../events/last-used.ts';
import type { Logger } from '../observability/logger.ts';
import type { HeaderResult, SecretSpec } from '../secrets/vault.ts';
import { limitBody } from './body-limit.ts';
import { Exchange, type AuthOutcome } from './exchange.ts';
import { forward, type ForwardHooks } from './forward.ts';
import { upstreamHeaders, type HeaderPolicy } from './headers.ts';
import { normalizeTarget, type NormalizedTarget } from './normalize-path.ts';
import { requestHost } from './request-host.ts';
import { misleadingPath } from './route-ambiguity.ts';
import { sendProblem, type ProblemCode } from './problem.ts';
import { Router, type Route } from './router.ts';

export interface GatewayOptions {
  router: Router;
  verifier: Verifier;
  headers: HeaderPolicy;
  /** One line per request when set; null switches the access log off. */
  accessLog: Logger | null;
  logger: Logger;
  hooks?: GatewayHooks;
  /** Notes each key's use; written to the store in batches, never per request. */
  lastUsed?: LastUsed;
  /** Upstream secrets for routes that name one (secrets/vault.ts); without it such routes answer 502. */
  secrets?: SecretSource | null;
  /** Failed authentications per client address (auth/failure-limiter.ts); null or absent: no limit. */
  failures?: FailureLimiter | null;
}

export interface SecretSource {
  /** `[header, value]` to set upstream, why there is none, or a Promise of either. */
  headerFor(spec: SecretSpec): HeaderResult | Promise<HeaderResult>;
}

export interface GatewayHooks extends ForwardHooks {
  /** Called once per request when the client response is finished or abandoned. */
  onRequestDone?(exchange: Exchange, durationMs: number): void;
}

const REALM = 'Bearer realm="keygate"';
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

const FAILURE: Record<Exclude<VerifyResult, Identity>, [ProblemCode, AuthOutcome, string]> = {
  invalid_key: ['invalid_key', 'invalid', 'the API key is not valid'],
  key_revoked: ['key_revoked', 'revoked', 'the API key has been revoked'],
  key_expired: ['key_expired', 'expired', 'the API key has expired'],
  auth_unavailable: ['auth_unavailable', 'unavailable', 'the key store cannot be reached; try again shortly'],
};

function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

export class Gateway {
  router: Router;
  headers: HeaderPolicy;
  readonly #verifier: Verifier;
  readonly #accessLog: Logger | null;
  readonly #logger: Logger;
  readonly #hooks: GatewayHooks;
  readonly #forwardHooks: ForwardHooks;
  /** Event streams open now, to end them cleanly at shutdown. */
  readonly #streams = new Set<Exchange>();
  readonly #lastUsed: LastUsed | null;
  readonly #secrets: SecretSource | null;
  readonly #failures: FailureLimiter | null;

  constructor(options: GatewayOptions) {
    this.router = options.router;
    this.headers = options.headers;
    this.#verifier = options.verifier;
    this.#accessLog = options.accessLog;
    this.#logger = options.logger;
    const hooks = (this.#hooks = options.hooks ?? {});
    const streams = this.#streams;
    this.#forwardHooks = {
      onUpstreamDone: hooks.onUpstreamDone?.bind(hooks),
      onEventStream(exchange, open) {
        if (open) streams.add(exchange);
        else streams.delete(exchange);
        hooks.onEventStream?.(exchange, open);
      },
    };
    this.#lastUsed = options.lastUsed ?? null;
    this.#secrets = options.secrets ?? null;
    this.#failures = options.failures ?? null;
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
   * Shutdown: ends every open event stream the way a stream ends normally (the client sees
   * the end of the response and may reconnect elsewhere) and stops its upstream request.
   */
  endStreams(): number {
    const open = [...this.#streams];
    for (const exchange of open) {
      exchange.upstream?.clientClosed();
      exchange.res.end();
    }
    this.#streams.clear();
    return open.length;
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
      keyId: identity?.record.id ?? null,
      tenant: identity?.record.tenant ?? null,
    });
  }

  #reject(exchange: Exchange, code: ProblemCode, outcome: AuthOutcome, detail: string, headers?: Record<string, string>): void {
    exchange.outcome = outcome;
    exchange.error = code;
    // An unread body would otherwise be drained from the socket; close instead.
    sendProblem(exchange.res, code, detail, headers, hasBody(exchange.req));
  }

  #internalError(exchange: Exchange, error: unknown): void {
    this.#logger.error({ err: error, route: exchange.route?.name }, 'request failed inside keygate');
    exchange.error = 'internal_error';
    sendProblem(exchange.res, 'internal_error', 'keygate failed to handle the request', undefined, true);
  }

  #route(exchange: Exchange, expectContinue: boolean): void {
    const req = exchange.req;
    const target = normalizeTarget(req.url ?? '/');
    if (target === null) {
      this.#reject(exchange, 'bad_request', 'bad_request', 'the request path contains an encoded "/", "\\" or NUL, or is malformed');
      return;
    }
    const host = requestHost(req, target);
    if (host === null) {
      this.#reject(exchange, 'bad_request', 'bad_request', 'the request has more than one Host header, or an invalid one');
      return;
    }
    const route = this.router.match(host, target.path);
    if (route === undefined) {
      this.#reject(exchange, 'no_route', 'public', 'no route matches this host and path');
      return;
    }
    if (misleadingPath(this.router, host, target.path, route)) {
      this.#reject(exchange, 'bad_request', 'bad_request', 'the path selects another route when read without ";" parameters or ignoring case');
      return;
    }
    exchange.route = route;
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
    if (credential === CONFLICT) {
      this.#reject(exchange, 'conflicting_credentials', 'bad_request', 'X-Api-Key and Authorization: Bearer carry different keys; send one');
      return;
    }
    if (credential === null) {
      this.#reject(exchange, 'missing_credentials', 'missing', 'send the API key in X-Api-Key or Authorization: Bearer', { 'www-authenticate': REALM });
      return;
    }
    const wait = this.#failures?.retryAfter(req, this.headers.trustForwarded) ?? 0;
    if (wait > 0) {
      this.#reject(exchange, 'rate_limited', 'limited', `too many failed authentications from this address; try again in ${wait} s`, { 'retry-after': String(wait) });
      return;
    }
    const result = this.#verifier.verify(credential.key);
    if (result instanceof Promise) {
      this.#resume(exchange, result, (verified) => this.#afterVerify(exchange, target, route, credential, verified, expectContinue));
    } else {
      this.#afterVerify(exchange, target, route, credential, result, expectContinue);
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

  #afterVerify(exchange: Exchange, target: NormalizedTarget, route: Route, credential: Credential, result: VerifyResult, expectContinue: boolean): void {
    if (typeof result === 'string') {
      const [code, outcome, detail] = FAILURE[result];
      const headers: Record<string, string> = result === 'auth_unavailable' ? { 'retry-after': '1' } : { 'www-authenticate': `${REALM}, error="invalid_token", error_description="${detail}"` };
      if (result !== 'auth_unavailable') this.#failures?.failed(exchange.req, this.headers.trustForwarded);
      this.#reject(exchange, code, outcome, detail, headers);
      return;
    }
    exchange.identity = result;
    const denied = authorize(route, result, target.path);
    if (denied !== null) {
      const headers =
        denied === 'forbidden_permission' ? { 'www-authenticate': `${REALM}, error="insufficient_scope", scope="${route.permissions.join(' ')}"` } : undefined;
      const detail =
        denied === 'forbidden_permission'
          ? `this route needs the permissions: ${route.permissions.join(', ')}`
          : denied === 'forbidden_client'
            ? "this route does not accept keys of this key's client"
            : "the tenant in the path is not the key's tenant";
      this.#reject(exchange, denied, 'forbidden', detail, headers);
      return;
    }
    exchange.outcome = 'ok';
    this.#lastUsed?.mark(result.record.id, Date.now());
    this.#forward(exchange, target, result, credential.inAuthorization, expectContinue);
  }

  #forward(exchange: Exchange, target: NormalizedTarget, identity: Identity | null, dropAuthorization: boolean, expectContinue: boolean): void {
    const secret = exchange.route!.config.secret;
    if (secret === undefined) {
      this.#dispatch(exchange, target, upstreamHeaders(exchange.req, this.headers, identity, dropAuthorization), expectContinue);
      return;
    }
    const result = this.#secrets === null ? 'no_master_key' : this.#secrets.headerFor(secret);
    if (result instanceof Promise) {
      this.#resume(exchange, result, (resolved) => this.#withSecret(exchange, target, identity, dropAuthorization, expectContinue, secret.id, resolved));
    } else {
      this.#withSecret(exchange, target, identity, dropAuthorization, expectContinue, secret.id, result);
    }
  }

  /** The route's secret header replaces any client copy; no secret, no request upstream (502). */
  #withSecret(exchange: Exchange, target: NormalizedTarget, identity: Identity | null, dropAuthorization: boolean, expectContinue: boolean, id: string, result: HeaderResult): void {
    if (typeof result === 'string') {
      // The reason is in the log (vault.ts); the client learns which secret, never anything of its value.
      exchange.error = 'upstream_unavailable';
      sendProblem(exchange.res, 'upstream_unavailable', `the upstream secret "${id}" that this route injects is not available`, undefined, hasBody(exchange.req));
      return;
    }
    this.#dispatch(exchange, target, upstreamHeaders(exchange.req, this.headers, identity, dropAuthorization, result), expectContinue);
  }

  #dispatch(exchange: Exchange, target: NormalizedTarget, headers: string[], expectContinue: boolean): void {
    const { req, res } = exchange;
    const route = exchange.route!;
    let body: IncomingMessage | AsyncIterable<Buffer> | null = null;
    if (hasBody(req)) {
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

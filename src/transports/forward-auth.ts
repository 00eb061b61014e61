/**
 * The forward-auth transport: keygate as the authentication service of a proxy that stays in
 * front — nginx `auth_request`, Caddy `forward_auth`, Traefik `forwardAuth`, Envoy's HTTP
 * `ext_authz` (docs/forward-auth.md). The proxy asks before it forwards a request; keygate
 * reads the original method, host and URI from what that proxy sends (original-request.ts),
 * runs the same route match, credential, admit and limit stages as its own proxy
 * (pipeline/stages.ts forwardAuthStages) and answers:
 *
 *   200 with the identity headers (pipeline/forward-auth-stages.ts), which the proxy copies onto
 *       the request it forwards — after stripping the credential itself;
 *   or the same problem+json refusal keygate's proxy would send (401 with WWW-Authenticate,
 *       403, 404, 429 with Retry-After, 503), which the proxy returns to the client. nginx
 *       discards the body of an auth answer, so /nginx answers also carry the problem in
 *       `X-Keygate-Problem` for the nginx config to return.
 *
 * Served on a listener of its own (`forwardAuth:`, config/forward-auth.ts says why), and only
 * to `forwardAuth.trustedProxies` (the connection's address; 403 for anyone else): whoever may
 * ask can name any host and path. Nothing is ever 500: keygate failing inside is 503
 * auth_unavailable, so every proxy fails closed. No body is ever read.
 *
 * @example
 *   const server = createForwardAuthListener({ ...parts, config: config.forwardAuth, limits: config.limits, logger, accessLog });
 *   server.listen(8082, '127.0.0.1');
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { BlockList, isIPv4, isIPv6, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { isRefusal, RETRY, type Refusal } from '../auth/refusals.ts';
import type { ForwardAuthConfig } from '../config/forward-auth.ts';
import type { LimitsConfig } from '../config/limits.ts';
import { problemBody, sendProblem, type ProblemCode } from '../http/problem.ts';
import type { Logger } from '../observability/logger.ts';
import { logExchange, pathOf } from '../pipeline/access-log.ts';
import type { AuthOutcome, Exchange } from '../pipeline/exchange.ts';
import { ForwardAuthExchange } from '../pipeline/forward-auth-stages.ts';
import { Pipeline } from '../pipeline/pipeline.ts';
import { forwardAuthStages, type StageParts } from '../pipeline/stages.ts';
import type { Route } from '../routing/router.ts';
import { guardListener, listenerOptions, type RejectionReason } from './listener-limits.ts';
import { readOriginal, styleOf, type ForwardAuthStyle } from './original-request.ts';

export interface ForwardAuthHooks {
  /** Once per auth request that reached the pipeline, when its answer is finished or abandoned (counted like a request of its route). */
  onCheckDone?(route: Route | null, status: number, outcome: AuthOutcome, durationMs: number, exchange: Exchange): void;
}

export interface ForwardAuthOptions extends StageParts {
  config: ForwardAuthConfig;
  limits: LimitsConfig;
  logger: Logger;
  /** One line per auth request (with `transport: forward-auth`); null: none. */
  accessLog: Logger | null;
  hooks?: ForwardAuthHooks;
  /** Connections the listener refused (listener-limits.ts). */
  onRejected?: (reason: RejectionReason) => void;
}

/** The header a /nginx refusal repeats its problem in: nginx keeps headers of an auth answer, not its body. */
export const PROBLEM_HEADER = 'x-keygate-problem';

/** The problem as a header value: JSON with everything outside printable ASCII escaped (still the same JSON). */
export function problemHeader(code: ProblemCode, detail: string): string {
  return JSON.stringify(problemBody(code, detail)).replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * Whether a connection address is one of `entries` (addresses and CIDR ranges); an IPv4-mapped
 * IPv6 address (`::ffff:10.0.0.1`, what a dual-stack listener reports) is its IPv4 address.
 */
export function trustedAddresses(entries: readonly string[]): (address: string) => boolean {
  const list = new BlockList();
  for (const entry of entries) {
    const slash = entry.indexOf('/');
    const address = slash === -1 ? entry : entry.slice(0, slash);
    const type = isIPv4(address) ? 'ipv4' : 'ipv6';
    if (slash === -1) list.addAddress(address, type);
    else list.addSubnet(address, Number(entry.slice(slash + 1)), type);
  }
  return (raw) => {
    const address = raw.startsWith('::ffff:') && isIPv4(raw.slice(7)) ? raw.slice(7) : raw;
    if (isIPv4(address)) return list.check(address, 'ipv4');
    return isIPv6(address) && list.check(address, 'ipv6');
  };
}

/** A warning at most every 5 s, with how many were not logged. */
function throttled(logger: Logger, message: string): (fields: Record<string, unknown>) => void {
  let last = 0;
  let suppressed = 0;
  return (fields) => {
    const now = Date.now();
    if (now - last < 5000) {
      suppressed++;
      return;
    }
    logger.warn({ ...fields, suppressedSinceLast: suppressed }, message);
    last = now;
    suppressed = 0;
  };
}

const FAILED = 'keygate failed to check the request; try again shortly';

export class ForwardAuth {
  readonly pipeline: Pipeline<ForwardAuthExchange>;
  readonly #trusted: (address: string) => boolean;
  readonly #byConnection = new WeakMap<Socket, boolean>();
  readonly #logger: Logger;
  readonly #accessLog: Logger | null;
  readonly #hooks: ForwardAuthHooks;
  readonly #untrusted: (fields: Record<string, unknown>) => void;
  readonly #malformed: (fields: Record<string, unknown>) => void;

  constructor(options: ForwardAuthOptions) {
    this.#trusted = trustedAddresses(options.config.trustedProxies);
    this.#logger = options.logger;
    this.#accessLog = options.accessLog?.child({ transport: 'forward-auth' }) ?? null;
    this.#hooks = options.hooks ?? {};
    this.#untrusted = throttled(options.logger, 'forward-auth: refused an auth request from an address not in forwardAuth.trustedProxies');
    this.#malformed = throttled(options.logger, 'forward-auth: an auth request did not say which request it is about (is the proxy configured as in docs/forward-auth.md?)');
    const [front, route] = forwardAuthStages(options);
    this.pipeline = new Pipeline(front, route, {
      refuse: (exchange, refusal) => this.#refuse(exchange, refusal),
      failed: (exchange, error) => {
        this.#logger.error({ err: error, route: exchange.route?.name }, 'forward-auth check failed inside keygate');
        exchange.outcome = 'unavailable';
        this.#refuse(exchange, { code: 'auth_unavailable', outcome: 'unavailable', detail: FAILED, headers: RETRY });
      },
    });
  }

  /** Whether the connection comes from a trusted proxy (worked out once per connection). */
  isTrusted(socket: Socket): boolean {
    let trusted = this.#byConnection.get(socket);
    if (trusted === undefined) {
      trusted = this.#trusted(socket.remoteAddress ?? '');
      this.#byConnection.set(socket, trusted);
    }
    return trusted;
  }

  /** node:http 'request' handler of the forward-auth listener. */
  handle(req: IncomingMessage, res: ServerResponse): void {
    const start = performance.now();
    // A body (Envoy's with_request_body, a proxy that sends one) is never judged: discarded.
    req.resume();
    if (!this.isTrusted(req.socket)) {
      this.#untrusted({ address: req.socket.remoteAddress });
      sendProblem(res, 'forbidden', 'this address is not one of forwardAuth.trustedProxies', undefined, true);
      return;
    }
    const read = readOriginal(req);
    if (isRefusal(read)) {
      this.#malformed({ path: pathOf(req.url), detail: read.detail });
      this.#send(res, styleOf(req.url ?? '/')?.style ?? null, read);
      return;
    }
    const exchange = new ForwardAuthExchange(read.request.asIncoming(), res, start, read.style, req);
    res.once('close', () => this.#done(exchange));
    this.pipeline.run(exchange);
  }

  #refuse(exchange: ForwardAuthExchange, refusal: Refusal): void {
    exchange.outcome = refusal.outcome;
    exchange.error = refusal.code;
    this.#send(exchange.res, exchange.style, refusal);
  }

  #send(res: ServerResponse, style: ForwardAuthStyle | null, refusal: Refusal): void {
    const headers = style === 'nginx' ? { ...refusal.headers, [PROBLEM_HEADER]: problemHeader(refusal.code, refusal.detail) } : refusal.headers;
    sendProblem(res, refusal.code, refusal.detail, headers);
  }

  #done(exchange: ForwardAuthExchange): void {
    const res = exchange.res;
    const status = res.writableFinished ? res.statusCode : 499;
    const ms = performance.now() - exchange.start;
    this.#hooks.onCheckDone?.(exchange.route, status, exchange.outcome, ms, exchange);
    if (this.#accessLog !== null) logExchange(this.#accessLog, exchange, pathOf(exchange.req.url), status, ms);
  }
}

/**
 * The forward-auth listener: node:http with the proxy listener's timeouts and parser answers,
 * but no per-address connection cap — every connection comes from a handful of proxies, and
 * capping them would refuse every client behind one.
 */
export function createForwardAuthListener(options: ForwardAuthOptions): { server: Server; forwardAuth: ForwardAuth } {
  const forwardAuth = new ForwardAuth(options);
  const server = createServer({ keepAliveTimeout: 65_000, ...listenerOptions(options.limits), noDelay: true, optimizeEmptyRequests: true });
  guardListener(server, { ...options.limits, connectionsPerAddress: 0 }, options.onRejected);
  server.on('request', (req, res) => forwardAuth.handle(req, res));
  return { server, forwardAuth };
}

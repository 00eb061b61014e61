/**
 * forward: one undici dispatch per request, with a handler that writes straight into the
 * client response. Bodies stream both ways with back-pressure (pause/resume on the
 * upstream, `drain` on the client), a client that goes away aborts the upstream request,
 * and undici's errors become 502/504 problems.
 *
 * A response that is still streaming is a long-lived exchange (live-exchanges.ts): when the
 * key or token it was requested with stops working, keygate ends it. Which responses are
 * registered, and what it costs the rest:
 *  - an event stream (`text/event-stream`) as soon as its head is relayed — it is long by
 *    nature; it ends between two events (`EventBoundary`): at once if the bytes forwarded
 *    so far end with a blank line, else after the rest of the event under way;
 *  - any other response of a key or token that is still open once the read that brought its
 *    head has been handled (one microtask for all the heads of that read). A short response
 *    is complete by then (head and body arrive together), so it costs an array push and is
 *    never registered: no registry entry, no timer, no HMAC. One that is still streaming is
 *    cut (a half body is the honest signal) and its upstream request aborted.
 *
 * SSE keep-alive (`timeouts.sseKeepAliveMs`): on such a route undici's bodyTimeout is off and
 * the handler keeps time itself, one interval timer per response while it streams. After a
 * period with nothing from the upstream, an event stream whose forwarded bytes end between two
 * events gets `: keepalive` and a blank line — an SSE comment, which clients ignore and every
 * proxy, balancer and browser on the way counts as traffic — so a stream that is quiet for
 * longer than `idleMs` stays open. Never inside an event (EventBoundary), never while keygate
 * is ending the stream, never while the client has not read what it was sent. Silence inside
 * an event, or in any other response, still ends it after `idleMs` (counted in whole periods),
 * as undici's bodyTimeout would.
 */
import { Router, targetOf } from '../routing/router.ts';
import type { Current } from './current.ts';
import type { ResponseFilter } from '../mcp/list-filter.ts';
import type { Stage } from './pipeline.ts';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { HttpExchange } from './exchange.ts';
import type { EndReason, LiveEntry, LiveExchange, LiveExchanges, LiveKind } from './live-exchanges.ts';
import { sendProblem } from '../http/problem.ts';
import { RESPONSE_HOP_BY_HOP } from './rewrite.ts';
import { hasBody, limitBody, lingeringClose } from '../http/body-limit.ts';

type Controller = Dispatcher.DispatchController;

const kHandler = Symbol('keygate.forward');
type WithHandler = ServerResponse & { [kHandler]?: ForwardHandler };

function onDrain(this: WithHandler): void {
  this[kHandler]?.resume();
}

/** undici's error codes for an upstream that was too slow (504, and the metrics' `timeout` kind). */
export const UPSTREAM_TIMEOUTS: ReadonlySet<string> = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

export interface ForwardHooks {
  /** Called once with the upstream's status (or the error that replaced it). */
  onUpstreamDone?(exchange: HttpExchange, error: Error | null): void;
  /** A text/event-stream response started (open) or ended (closed), for the open-streams gauge. */
  onEventStream?(exchange: HttpExchange, open: boolean): void;
  /** Where responses still streaming are registered, to end when their key stops working; none: they are not. */
  readonly live?: LiveExchanges | null;
}

/** How long an event stream being ended may take to finish the event under way before it is cut. */
export const EVENT_END_GRACE_MS = 1000;
/** How long a response keygate ended may take to drain to its client before the connection is cut. */
const DRAIN_GRACE_MS = 1000;
/** The SSE keep-alive: a comment line, then the blank line that makes it a complete (empty) block. */
export const SSE_KEEPALIVE = Buffer.from(': keepalive\n\n');

/** What a silent upstream ends with on keep-alive routes: undici's own body-timeout code, so it is answered and counted alike. */
function idleTimeout(): Error {
  return Object.assign(new Error('the upstream sent nothing for timeouts.idleMs'), { code: 'UND_ERR_BODY_TIMEOUT' });
}

const LF = 0x0a;
const CR = 0x0d;

/** Whether bytes ending with these four (newest in the low byte) end with a blank line. */
function endsWithBlankLine(tail: number): boolean {
  const last = tail & 0xff;
  const before = (tail >>> 8) & 0xff;
  let prev: number;
  // Strip the final line end (CRLF, LF or CR): a line end right before it closes an empty line.
  if (last === LF) prev = before === CR ? (tail >>> 16) & 0xff : before;
  else if (last === CR) prev = before;
  else return false;
  return prev === LF || prev === CR;
}

/**
 * Where the bytes of an event stream forwarded so far stand: between two events (they end
 * with a blank line, SSE's event terminator, in any of its line-end spellings) or inside
 * one. Only the last four bytes matter, kept in one number: nothing is copied or buffered.
 */
export class EventBoundary {
  /** The last four bytes; the start of a stream counts as between events. */
  #tail = (LF << 8) | LF;

  get atBoundary(): boolean {
    return endsWithBlankLine(this.#tail);
  }

  observe(chunk: Uint8Array): void {
    let tail = this.#tail;
    for (let i = Math.max(0, chunk.length - 4); i < chunk.length; i++) tail = ((tail << 8) | chunk[i]!) >>> 0;
    this.#tail = tail;
  }

  /** How many bytes of `chunk` reach the end of the event under way (-1: it does not end in it). Observes nothing. */
  endOfEvent(chunk: Uint8Array): number {
    let tail = this.#tail;
    for (let i = 0; i < chunk.length; i++) {
      tail = ((tail << 8) | chunk[i]!) >>> 0;
      if (endsWithBlankLine(tail)) return i + 1;
    }
    return -1;
  }
}

class ForwardHandler implements Dispatcher.DispatchHandler, LiveExchange {
  /** Responses whose head came in the current read; those still open after it are registered. */
  static readonly #heads: ForwardHandler[] = [];

  static readonly #registerStillOpen = (): void => {
    const heads = ForwardHandler.#heads;
    for (const handler of heads) if (!handler.#over && !handler.#stopped) handler.#register();
    heads.length = 0;
  };

  readonly #exchange: HttpExchange;
  readonly #hooks: ForwardHooks;
  #controller: Controller | null = null;
  /** The client left, or keygate ended the exchange: the upstream request is aborted and what it reports is moot. */
  #stopped = false;
  #eventStream = false;
  /** Event streams: whether the bytes forwarded so far end between two events. */
  #events: EventBoundary | null = null;
  /** The response is over: complete, failed or abandoned. */
  #over = false;
  /** Rewrites the response as it passes (exchange.responseFilter), when it applies to it. */
  #filter: ResponseFilter | null = null;
  /** Its registration while it is a long-lived exchange. */
  #live: LiveEntry | null = null;
  /** keygate is ending this event stream once the event under way is complete; cut at this timer. */
  #ending: NodeJS.Timeout | null = null;
  /** timeouts.sseKeepAliveMs (0: none, undici's bodyTimeout keeps time) and the idleMs it then enforces itself. */
  readonly #keepAliveMs: number;
  readonly #idleMs: number;
  #ticker: NodeJS.Timeout | null = null;
  /** The upstream sent something since the last tick. */
  #heard = false;
  /** Paused for the client (back-pressure): the upstream's silence is ours, not counted. */
  #paused = false;
  #silentMs = 0;

  constructor(exchange: HttpExchange, hooks: ForwardHooks, keepAliveMs = 0, idleMs = 0) {
    this.#exchange = exchange;
    this.#hooks = hooks;
    this.#keepAliveMs = keepAliveMs;
    this.#idleMs = idleMs;
  }

  get kind(): LiveKind {
    return this.#events !== null ? 'event-stream' : 'response';
  }

  clientClosed(): void {
    this.#over = true;
    this.#release();
    this.#streamEnded();
    if (this.#exchange.res.writableFinished) return;
    this.#stop('client closed the connection');
  }

  resume(): void {
    this.#paused = false;
    this.#controller?.resume();
  }

  /** Every sseKeepAliveMs while the response streams (keep-alive routes only). */
  readonly #tick = (): void => {
    if (this.#over || this.#stopped) return;
    if (this.#heard || this.#paused) {
      this.#heard = false;
      this.#silentMs = 0;
      return;
    }
    const events = this.#events;
    const res = this.#exchange.res;
    if (events !== null && events.atBoundary && this.#ending === null) {
      // Between two events: a comment. Not to a client that has not read the last one yet.
      if (!res.writableNeedDrain && !res.destroyed) {
        events.observe(SSE_KEEPALIVE);
        res.write(SSE_KEEPALIVE);
      }
      this.#silentMs = 0;
      return;
    }
    this.#silentMs += this.#keepAliveMs;
    // Inside an event, or not an event stream: idleMs of silence ends it, as undici's bodyTimeout would.
    if (this.#silentMs >= this.#idleMs) this.#controller?.abort(idleTimeout());
  };

  /**
   * The registry ends this response because its key or token stopped working (or at
   * shutdown): an event stream between two events, anything else at once.
   */
  end(reason: EndReason): void {
    if (this.#over || this.#stopped || this.#ending !== null) return;
    if (reason !== 'shutdown') this.#exchange.error = reason;
    const events = this.#events;
    if (events === null) this.#cut();
    else if (events.atBoundary) this.#endStream();
    else {
      // Mid-event: the rest of this event is forwarded (onResponseData), then the stream ends;
      // an upstream that does not finish it, or a client that does not read it, is cut off.
      this.#ending = setTimeout(() => this.#cut(), EVENT_END_GRACE_MS);
      this.#ending.unref();
    }
  }

  onRequestStart(controller: Controller): void {
    this.#controller = controller;
    if (this.#stopped) controller.abort(new Error('client closed the connection'));
  }

  onResponseStart(_controller: Controller, statusCode: number, headers: Record<string, string | string[] | undefined>, statusMessage?: string): void {
    if (statusCode < 200) return; // 1xx informational: not relayed
    const res = this.#exchange.res;
    const out: string[] = [];
    const listed = typeof headers.connection === 'string' ? headers.connection.toLowerCase() : '';
    let eventStream = false;
    let hasCacheControl = false;
    let hasAccel = false;
    const cors = this.#exchange.cors;
    const limited = this.#exchange.rateLimitFields;
    for (const name in headers) {
      const value = headers[name];
      if (value === undefined || RESPONSE_HOP_BY_HOP.has(name)) continue;
      // keygate's CORS policy (set on res by cors.ts) is the route's only one.
      if (cors && name.startsWith('access-control-')) continue;
      // …and so are its RateLimit fields (set on res by limits/stage.ts) where it counted the request.
      if (limited && (name === 'ratelimit' || name === 'ratelimit-policy')) continue;
      if (listed !== '' && listed.includes(name) && listed.split(',').some((t) => t.trim() === name)) continue;
      if (name === 'content-type' && typeof value === 'string' && value.startsWith('text/event-stream')) eventStream = true;
      else if (name === 'cache-control') hasCacheControl = true;
      else if (name === 'x-accel-buffering') hasAccel = true;
      if (typeof value === 'string') out.push(name, value);
      else for (const v of value) out.push(name, v);
    }
    if (eventStream) {
      // Tell any buffering proxy in front of us (nginx, CDNs) to pass events through as written.
      if (!hasAccel) out.push('x-accel-buffering', 'no');
      if (!hasCacheControl) out.push('cache-control', 'no-cache, no-transform');
    }
    // writeHead drops the Vary set earlier when the upstream sends one: add Origin back.
    if (cors && headers.vary !== undefined) out.push('vary', 'Origin');
    // A response keygate rewrites (MCP list answers) changes length: sent chunked instead.
    const filter = this.#exchange.responseFilter;
    if (filter !== null && filter.start(typeof headers['content-type'] === 'string' ? headers['content-type'] : undefined)) {
      this.#filter = filter;
      for (let i = out.length - 2; i >= 0; i -= 2) if (out[i] === 'content-length') out.splice(i, 2);
    }
    this.#exchange.upstreamHeadersAt = performance.now();
    res.writeHead(statusCode, statusMessage || undefined, out);
    if (this.#keepAliveMs > 0) {
      this.#ticker = setInterval(this.#tick, this.#keepAliveMs);
      this.#ticker.unref();
    }
    if (eventStream) {
      res.flushHeaders();
      this.#eventStream = true;
      this.#events = new EventBoundary();
      this.#hooks.onEventStream?.(this.#exchange, true);
      // Public ones too, to be ended between events at shutdown.
      this.#register();
    } else if (this.#exchange.identity !== null && this.#hooks.live) {
      const heads = ForwardHandler.#heads;
      if (heads.push(this) === 1) queueMicrotask(ForwardHandler.#registerStillOpen);
    }
  }

  /** Registers the response as a long-lived exchange, by its key's lookup hash (computed here, once). */
  #register(): void {
    const live = this.#hooks.live;
    if (!live) return;
    const { identity, credential } = this.#exchange;
    // The credential the admit stage verified: re-checked later by its lookup hash, never kept itself.
    const hash = identity !== null && identity.issuer === undefined && credential !== null ? live.hashOf(credential.key) : null;
    this.#live = live.add(this, identity, hash);
  }

  #release(): void {
    if (this.#ending !== null) clearTimeout(this.#ending);
    this.#ending = null;
    if (this.#ticker !== null) clearInterval(this.#ticker);
    this.#ticker = null;
    if (this.#live === null) return;
    this.#hooks.live!.remove(this.#live);
    this.#live = null;
  }

  /** Aborts the upstream request; what undici reports after that is ignored. */
  #stop(why: string): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#controller?.abort(new Error(why));
  }

  /** Ends an event stream between two events, the way streams end: the client sees the end of the response. */
  #endStream(): void {
    const res = this.#exchange.res;
    this.#over = true;
    this.#release();
    this.#stop('keygate ended the event stream');
    this.#streamEnded();
    res.end();
    // A client that does not read what is left is cut off (never a later response on the same connection).
    if (!res.writableFinished) setTimeout(() => !res.writableFinished && res.destroy(), DRAIN_GRACE_MS).unref();
  }

  /** Ends a response mid-body: the connection is reset, so the client cannot take it for complete. */
  #cut(): void {
    this.#over = true;
    this.#release();
    this.#stop('keygate ended the response');
    this.#streamEnded();
    this.#exchange.res.destroy();
  }

  #streamEnded(): void {
    if (!this.#eventStream) return;
    this.#eventStream = false;
    this.#hooks.onEventStream?.(this.#exchange, false);
  }

  onResponseData(controller: Controller, data: Buffer): void {
    if (this.#stopped || this.#over) return;
    this.#heard = true;
    let chunk = data;
    if (this.#filter !== null) {
      const rewritten = this.#filter.data(chunk);
      if (rewritten === null || rewritten.length === 0) return;
      chunk = rewritten;
    }
    const res = this.#exchange.res as WithHandler;
    const events = this.#events;
    if (events !== null) {
      if (this.#ending !== null) {
        // keygate is ending the stream: forward up to the end of the event under way, not a byte more.
        const end = events.endOfEvent(chunk);
        if (end !== -1) {
          res.write(end === chunk.length ? chunk : chunk.subarray(0, end));
          this.#endStream();
          return;
        }
      }
      events.observe(chunk);
    }
    if (!res.write(chunk)) {
      controller.pause();
      this.#paused = true;
      res[kHandler] = this;
      res.once('drain', onDrain);
    }
  }

  onResponseEnd(): void {
    this.#over = true;
    this.#release();
    this.#streamEnded();
    const rest = this.#filter?.end() ?? null;
    if (rest !== null && rest.length > 0 && !this.#exchange.res.destroyed) this.#exchange.res.write(rest);
    this.#exchange.res.end();
    this.#hooks.onUpstreamDone?.(this.#exchange, null);
  }

  onResponseError(_controller: Controller, error: Error): void {
    const eventStream = this.#eventStream;
    this.#over = true;
    this.#release();
    this.#streamEnded();
    const exchange = this.#exchange;
    this.#hooks.onUpstreamDone?.(exchange, error);
    if (this.#stopped) return;
    const res = exchange.res;
    const code = (error as { code?: string }).code ?? '';
    if (code === 'payload_too_large') {
      exchange.error = 'payload_too_large';
      lingeringClose(exchange.req);
      sendProblem(res, 'payload_too_large', error.message, undefined, true);
    } else if (res.headersSent && eventStream) {
      // An event stream has no length to fall short of: end it the way streams end, and the
      // client reconnects. An event cut in half is not delivered (SSE dispatches only at a
      // blank line).
      res.end();
    } else if (res.headersSent) {
      // Mid-body failure: the status line is gone, so the only honest signal is a reset.
      res.destroy();
    } else if (UPSTREAM_TIMEOUTS.has(code)) {
      exchange.error = 'upstream_timeout';
      sendProblem(res, 'upstream_timeout', code === 'UND_ERR_CONNECT_TIMEOUT' ? 'the upstream did not accept a connection in time' : 'the upstream did not answer in time');
    } else {
      exchange.error = 'upstream_unavailable';
      sendProblem(res, 'upstream_unavailable', 'the upstream could not be reached or closed the connection');
    }
  }
}

export interface ForwardRequest {
  path: string;
  headers: string[];
  body: Readable | AsyncIterable<Buffer> | Buffer | null;
  headersTimeout: number;
  bodyTimeout: number;
  /** timeouts.sseKeepAliveMs: keygate keeps the body's time itself (bodyTimeout as idleMs), writing SSE keep-alives; 0 or absent: undici's bodyTimeout. */
  keepAliveMs?: number;
}

export function forward(dispatcher: Dispatcher, exchange: HttpExchange, request: ForwardRequest, hooks: ForwardHooks): void {
  const keepAliveMs = request.keepAliveMs ?? 0;
  const handler = new ForwardHandler(exchange, hooks, keepAliveMs, request.bodyTimeout);
  exchange.upstream = handler;
  exchange.upstreamStart = performance.now();
  dispatcher.dispatch(
    {
      path: request.path,
      method: exchange.req.method ?? 'GET',
      headers: request.headers,
      body: request.body as Readable | null,
      headersTimeout: request.headersTimeout,
      bodyTimeout: keepAliveMs > 0 ? 0 : request.bodyTimeout,
    },
    handler,
  );
}

/**
 * The forward stage (plain requests): the body — the verified bytes of a webhook, or the
 * request streamed as it arrives, a chunked one counted against the route's limit — goes to
 * the route's upstream with the rewritten headers.
 */
export function forwardStage(current: Current, hooks: ForwardHooks): Stage<HttpExchange> {
  return {
    name: 'forward',
    run(exchange) {
      const { req, res } = exchange;
      const route = exchange.route!;
      const headers = exchange.headers!;
      let body: IncomingMessage | AsyncIterable<Buffer> | Buffer | null = null;
      const delivery = exchange.delivery;
      if (exchange.body !== null) {
        // Read and judged by a stage (MCP policy): these exact bytes, or the allowed part of a batch.
        body = exchange.body;
        for (let i = 0; i < headers.length; i += 2) if (headers[i] === 'content-length') headers[i + 1] = String(body.length);
      } else if (delivery !== null) {
        // Verified webhook: the exact bytes, and the headers that say so (never taken from the client: headers.* are dropped).
        const names = current.state.headers.names;
        body = delivery.body;
        headers.push(names.webhook, delivery.verified);
        if (delivery.tenant !== null) headers.push(names.tenant, delivery.tenant);
      } else if (hasBody(req)) {
        const max = route.config.maxBodyBytes;
        // A Content-Length body was checked by the body-limit stage; a chunked one is counted as it streams.
        body = max > 0 && req.headers['content-length'] === undefined ? limitBody(req, max) : req;
        if (exchange.expectContinue) res.writeContinue();
      }
      const target = exchange.target!;
      // The sandbox upstream for a sandbox key, else the route's own (one of two targets made with the table).
      const upstream = targetOf(route, exchange.identity);
      forward(
        upstream.dispatcher,
        exchange,
        {
          path: Router.upstreamPath(route, target.path, upstream) + target.query,
          headers,
          body,
          headersTimeout: route.config.timeouts.headersMs,
          bodyTimeout: route.config.timeouts.idleMs,
          keepAliveMs: route.config.timeouts.sseKeepAliveMs,
        },
        hooks,
      );
      return undefined;
    },
  };
}

/**
 * forward: one undici dispatch per request, with a handler that writes straight into the
 * client response. Bodies stream both ways with back-pressure (pause/resume on the
 * upstream, `drain` on the client), a client that goes away aborts the upstream request,
 * and undici's errors become 502/504 problems.
 */
import type { ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { Exchange } from './exchange.ts';
import { sendProblem } from './problem.ts';
import { RESPONSE_HOP_BY_HOP } from './headers.ts';
import { lingeringClose } from './body-limit.ts';

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
  onUpstreamDone?(exchange: Exchange, error: Error | null): void;
  /** A text/event-stream response started (open) or ended (closed), for the open-streams gauge. */
  onEventStream?(exchange: Exchange, open: boolean): void;
}

class ForwardHandler implements Dispatcher.DispatchHandler {
  readonly #exchange: Exchange;
  readonly #hooks: ForwardHooks;
  #controller: Controller | null = null;
  #clientGone = false;
  #eventStream = false;

  constructor(exchange: Exchange, hooks: ForwardHooks) {
    this.#exchange = exchange;
    this.#hooks = hooks;
  }

  clientClosed(): void {
    this.#streamEnded();
    if (this.#exchange.res.writableFinished) return;
    this.#clientGone = true;
    this.#controller?.abort(new Error('client closed the connection'));
  }

  resume(): void {
    this.#controller?.resume();
  }

  onRequestStart(controller: Controller): void {
    this.#controller = controller;
    if (this.#clientGone) controller.abort(new Error('client closed the connection'));
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
    for (const name in headers) {
      const value = headers[name];
      if (value === undefined || RESPONSE_HOP_BY_HOP.has(name)) continue;
      // keygate's CORS policy (set on res by cors.ts) is the route's only one.
      if (cors && name.startsWith('access-control-')) continue;
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
    this.#exchange.upstreamHeadersAt = performance.now();
    res.writeHead(statusCode, statusMessage || undefined, out);
    if (eventStream) {
      res.flushHeaders();
      this.#eventStream = true;
      this.#hooks.onEventStream?.(this.#exchange, true);
    }
  }

  #streamEnded(): void {
    if (!this.#eventStream) return;
    this.#eventStream = false;
    this.#hooks.onEventStream?.(this.#exchange, false);
  }

  onResponseData(controller: Controller, chunk: Buffer): void {
    const res = this.#exchange.res as WithHandler;
    if (!res.write(chunk)) {
      controller.pause();
      res[kHandler] = this;
      res.once('drain', onDrain);
    }
  }

  onResponseEnd(): void {
    this.#streamEnded();
    this.#exchange.res.end();
    this.#hooks.onUpstreamDone?.(this.#exchange, null);
  }

  onResponseError(_controller: Controller, error: Error): void {
    const eventStream = this.#eventStream;
    this.#streamEnded();
    const exchange = this.#exchange;
    this.#hooks.onUpstreamDone?.(exchange, error);
    if (this.#clientGone) return;
    const res = exchange.res;
    const code = (error as { code?: string }).code ?? '';
    if (code === 'KG_PAYLOAD_TOO_LARGE') {
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
}

export function forward(dispatcher: Dispatcher, exchange: Exchange, request: ForwardRequest, hooks: ForwardHooks): void {
  const handler = new ForwardHandler(exchange, hooks);
  exchange.upstream = handler;
  exchange.upstreamStart = performance.now();
  dispatcher.dispatch(
    {
      path: request.path,
      method: exchange.req.method ?? 'GET',
      headers: request.headers,
      body: request.body as Readable | null,
      headersTimeout: request.headersTimeout,
      bodyTimeout: request.bodyTimeout,
    },
    handler,
  );
}

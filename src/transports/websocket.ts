/**
 * WebSocket upgrades, on routes with `websocket: true`. An upgrade is authenticated like any
 * other request — the same route match, Origin check, credential, key or token, route policy
 * and header rewrite (admit.ts, rewrite.ts) — then handed to http-proxy-3, which makes
 * the upstream request and pipes the two sockets once the upstream answers 101.
 *
 *   upgrade → [the pipeline: match, origin, credential, admit, secret, rewrite
 *   (pipeline/stages.ts)] → connect: http-proxy-3 → 101 → open tunnel (tracked by key) … → close
 *
 * An open tunnel outlives the request that authenticated it, so it is registered in the
 * long-lived exchange registry (live-exchanges.ts), which closes it when its key is revoked
 * (pushed), expires or reaches the end of its rotation overlap, when its access token
 * expires, or when a re-check finds the key no longer vouched for. keygate closes a tunnel
 * with a WebSocket Close frame (1008 and the reason) when the upstream's bytes are between
 * frames (ws-frames.ts), or else by closing the connection.
 *
 * Routes without `websocket` never see an upgrade: `shouldUpgrade` sends such requests down
 * the normal request path, where Upgrade is a hop-by-hop header like any other.
 */
import { STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import { createProxyServer } from 'http-proxy-3';
import type { Verifier } from '../auth/verify.ts';
import type { Logger } from '../observability/logger.ts';
import { logExchange, pathOf } from '../pipeline/access-log.ts';
import type { Current } from '../pipeline/current.ts';
import { Exchange, type AuthOutcome } from '../pipeline/exchange.ts';
import type { EndReason, LiveEntry, LiveExchange, LiveExchanges } from '../pipeline/live-exchanges.ts';
import { Pipeline, type Stage } from '../pipeline/pipeline.ts';
import { upgradeStages, type StageParts } from '../pipeline/stages.ts';
import { upgradeMatch } from '../routing/match.ts';
import { problemBody, PROBLEMS, type ProblemCode } from '../http/problem.ts';
import { Router, targetOf, type Route } from '../routing/router.ts';
import { CLOSE_GOING_AWAY, CLOSE_POLICY_VIOLATION, CLOSE_TRY_AGAIN_LATER, closeFrame, FrameBoundary } from './ws-frames.ts';

export interface WebSocketHooks {
  /** Once per upgrade request, when its connection is gone: 101 for a tunnel that opened. */
  onUpgradeDone?(route: Route | null, status: number, outcome: AuthOutcome, durationMs: number, exchange?: Exchange): void;
  /** A tunnel opened (true) or closed (false), for the open-streams gauge. */
  onTunnel?(route: Route, open: boolean): void;
}

export interface WebSocketOptions extends StageParts {
  /** Hashes the key of a tunnel that opens, for the registry to verify it again. */
  verifier: Verifier;
  /** Where open tunnels are registered, to be closed when their key or token stops working. */
  live: LiveExchanges;
  logger: Logger;
  accessLog: Logger | null;
  hooks?: WebSocketHooks;
}

/** The reasons keygate closes a tunnel with; the Close frame carries them to the client. */
const CLOSES = {
  key_revoked: [CLOSE_POLICY_VIOLATION, 'the API key has been revoked'],
  key_expired: [CLOSE_POLICY_VIOLATION, 'the credential has expired'],
  user_disabled: [CLOSE_POLICY_VIOLATION, 'the user this API key acts as is disabled'],
  invalid_key: [CLOSE_POLICY_VIOLATION, 'the API key is no longer valid'],
  auth_unavailable: [CLOSE_TRY_AGAIN_LATER, 'the key store cannot vouch for the key; reconnect shortly'],
  shutdown: [CLOSE_GOING_AWAY, 'keygate is shutting down'],
} as const satisfies Record<EndReason, readonly [number, string]>;

/** One upgrade request and, once the upstream accepted it, its tunnel. */
class Tunnel extends Exchange implements LiveExchange {
  readonly kind = 'websocket';
  readonly socket: Socket;
  /** The first bytes after the upgrade's head, handed to the upstream with it. */
  readonly head: Buffer;
  /** The key's lookup hash, to verify it again while the tunnel is open (null: public route or token). */
  hash: string | null = null;
  /** What the client was answered: 101 once the tunnel is open. */
  status = 0;
  upstream: Socket | null = null;
  readonly frames = new FrameBoundary();
  /** Its registration while the tunnel is open. */
  live: LiveEntry | null = null;
  /** keygate is closing it: upstream errors from here on are its own doing. */
  closing = false;

  /** The path the client asked for, without the query string (for the access log; req.url is replaced). */
  readonly path: string;

  constructor(req: IncomingMessage, socket: Socket, head: Buffer) {
    super(req, performance.now());
    this.socket = socket;
    this.head = head;
    this.path = pathOf(req.url);
  }

  get gone(): boolean {
    return this.socket.destroyed;
  }

  /** The registry ends the tunnel: a Close frame if the upstream's bytes are between frames, else the connection. */
  end(reason: EndReason): void {
    if (this.closing) return;
    this.closing = true;
    const { socket, upstream } = this;
    const [code, text] = CLOSES[reason];
    if (upstream !== null && this.status === 101) {
      upstream.unpipe(socket);
      socket.unpipe(upstream);
      upstream.destroy();
      if (this.frames.atBoundary && socket.writable) {
        socket.end(closeFrame(code, text));
        // The client answers the Close and closes; one that does not is cut off.
        setTimeout(() => socket.destroy(), 1000).unref();
        return;
      }
    }
    socket.destroy();
  }
}

function ignore(): void {}

/** keygate's flat [name, value, …] header list as the object http-proxy-3 copies into its request. */
function headerObject(flat: readonly string[]): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (let i = 0; i < flat.length; i += 2) {
    const name = flat[i]!.toLowerCase();
    const value = flat[i + 1]!;
    const seen = out[name];
    out[name] = seen === undefined ? value : Array.isArray(seen) ? [...seen, value] : [seen, value];
  }
  return out;
}

function isWebSocketUpgrade(req: IncomingMessage): boolean {
  const upgrade = req.headers.upgrade;
  return req.method === 'GET' && typeof upgrade === 'string' && upgrade.toLowerCase() === 'websocket';
}

export class WebSockets {
  readonly pipeline: Pipeline<Tunnel>;
  readonly #current: Current;
  readonly #verifier: Verifier;
  readonly #logger: Logger;
  readonly #accessLog: Logger | null;
  readonly #hooks: WebSocketHooks;
  readonly #live: LiveExchanges;
  readonly #proxy = createProxyServer({ ws: true, changeOrigin: true, prependPath: false, xfwd: false });
  readonly #byClient = new WeakMap<Duplex, Tunnel>();
  readonly #byUpstream = new WeakMap<Duplex, Tunnel>();

  constructor(options: WebSocketOptions) {
    this.#current = options.current;
    this.#verifier = options.verifier;
    this.#logger = options.logger;
    this.#accessLog = options.accessLog;
    this.#hooks = options.hooks ?? {};
    this.#live = options.live;
    const connect: Stage<Tunnel> = { name: 'connect', run: (tunnel) => this.#connect(tunnel) };
    const [front, route] = upgradeStages(options, connect);
    this.pipeline = new Pipeline(front, route, {
      refuse: (tunnel, refusal) => this.#answer(tunnel, refusal.code, refusal.detail, refusal.headers, refusal.outcome),
      failed: (tunnel, error) => {
        this.#logger.error({ err: error, route: tunnel.route?.name }, 'WebSocket upgrade failed inside keygate');
        this.#answer(tunnel, 'internal_error', 'keygate failed to handle the upgrade');
      },
    });
    // Client socket errors (resets) come here; the socket's own 'close' does the clean-up.
    this.#proxy.on('error', (_error, _req, socket) => (socket as Duplex).destroy());
    this.#proxy.on('proxyReqWs', (proxyReq, _req, socket) => {
      const tunnel = this.#byClient.get(socket);
      if (tunnel === undefined) return;
      const route = tunnel.route!;
      // Until the upstream answers the upgrade; an open tunnel has no time limit of its own.
      proxyReq.setTimeout(route.config.timeouts.headersMs, () => proxyReq.destroy(Object.assign(new Error('the upstream did not answer the upgrade in time'), { code: 'KG_UPGRADE_TIMEOUT' })));
      proxyReq.once('upgrade', (res, upstream) => {
        tunnel.status = res.statusCode ?? 101;
        tunnel.upstream = upstream;
        this.#byUpstream.set(upstream, tunnel);
      });
      proxyReq.once('response', (res) => {
        tunnel.status = res.statusCode ?? 0;
      });
    });
    // Emitted once http-proxy-3 has written the 101 and piped the sockets.
    this.#proxy.on('open', (upstream) => {
      const tunnel = this.#byUpstream.get(upstream);
      if (tunnel !== undefined) this.#opened(tunnel);
    });
  }

  /** Open tunnels now. */
  get size(): number {
    return this.#live.count('websocket');
  }

  /**
   * node:http's `shouldUpgradeCallback`: only WebSocket upgrades to routes that accept them
   * (others, refusals included, go down the plain request path). The match is kept for `handle`.
   */
  readonly shouldUpgrade = (req: IncomingMessage): boolean => isWebSocketUpgrade(req) && upgradeMatch(req, this.#current);

  /** node:http's 'upgrade' handler. */
  readonly handle = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const tunnel = new Tunnel(req, socket as Socket, head);
    this.#byClient.set(socket, tunnel);
    socket.on('error', ignore);
    socket.once('close', () => this.#closed(tunnel));
    this.pipeline.run(tunnel);
  };

  /** Shutdown: closes every open tunnel (1001). Upgrades still being answered end by themselves. */
  closeAll(): number {
    return this.#live.endAll('shutdown', 'websocket');
  }

  /** The last stage: the rewritten upgrade goes to the upstream through http-proxy-3. */
  #connect(tunnel: Tunnel): undefined {
    const { req, route, identity, credential } = tunnel;
    // A key's lookup hash, to verify it again while the tunnel is open (a token carries its own expiry).
    if (identity !== null && identity.issuer === undefined && credential !== null) tunnel.hash = this.#verifier.hashOf(credential.key);
    const headers = headerObject(tunnel.headers!);
    // The rewrite drops hop-by-hop headers; an upgrade needs these two back.
    headers.connection = 'Upgrade';
    headers.upgrade = req.headers.upgrade!;
    // http-proxy-3 copies req.headers and req.url into its upstream request: replacing them
    // makes that request exactly keygate's rewrite (no credential, no spoofed identity).
    req.headers = headers;
    // The sandbox upstream for a sandbox key, else the route's own (routing/router.ts targetOf).
    const upstream = targetOf(route!, identity);
    req.url = Router.upstreamPath(route!, tunnel.target!.path, upstream) + tunnel.target!.query;
    this.#proxy.ws(req, tunnel.socket, tunnel.head, { target: upstream.upstreamOrigin, connectTimeout: route!.config.timeouts.connectMs }, (error) => this.#upstreamFailed(tunnel, error));
    return undefined;
  }

  #opened(tunnel: Tunnel): void {
    const { socket, route, identity } = tunnel;
    // The client left while the upstream answered: its 'close' has run, nothing to register.
    if (socket.destroyed) return;
    const upstream = tunnel.upstream!;
    upstream.on('data', (chunk: Buffer) => tunnel.frames.observe(chunk));
    // Silence in both directions for idleMs (pings count as traffic) ends the tunnel.
    socket.setTimeout(route!.config.timeouts.idleMs, () => {
      socket.destroy();
      upstream.destroy();
    });
    // Public tunnels too, to be closed at shutdown; those of a key or token also when it stops working.
    tunnel.live = this.#live.add(tunnel, identity, tunnel.hash);
    this.#hooks.onTunnel?.(route!, true);
  }

  #upstreamFailed(tunnel: Tunnel, error: Error): void {
    if (tunnel.closing || tunnel.status !== 0) return;
    const code = (error as { code?: string }).code ?? '';
    const timeout = code === 'ECONNECT_TIMEOUT' || code === 'KG_UPGRADE_TIMEOUT';
    this.#answer(tunnel, timeout ? 'upstream_timeout' : 'upstream_unavailable', timeout ? 'the upstream did not answer the upgrade in time' : 'the upstream could not be reached or closed the connection');
  }

  /** keygate's own answer to an upgrade it will not make: a problem+json response, then the connection ends. */
  #answer(tunnel: Tunnel, code: ProblemCode, detail: string, headers?: Record<string, string>, outcome?: AuthOutcome): void {
    if (outcome !== undefined) tunnel.outcome = outcome;
    tunnel.error = code;
    const socket = tunnel.socket;
    if (!socket.writable || tunnel.status !== 0) {
      socket.destroy();
      return;
    }
    const status = PROBLEMS[code].status;
    tunnel.status = status;
    const body = JSON.stringify(problemBody(code, detail));
    let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\ncontent-type: application/problem+json\r\ncontent-length: ${Buffer.byteLength(body)}\r\ncache-control: no-store\r\nconnection: close\r\n`;
    if (headers) for (const name in headers) head += `${name}: ${headers[name]}\r\n`;
    socket.end(`${head}\r\n${body}`);
  }

  #closed(tunnel: Tunnel): void {
    tunnel.upstream?.destroy();
    if (tunnel.live !== null) {
      this.#live.remove(tunnel.live);
      tunnel.live = null;
      this.#hooks.onTunnel?.(tunnel.route!, false);
    }
    const ms = performance.now() - tunnel.start;
    // A client that left before any answer: 499, as on the request path.
    const status = tunnel.status === 0 ? 499 : tunnel.status;
    this.#hooks.onUpgradeDone?.(tunnel.route, status, tunnel.outcome, ms, tunnel);
    if (this.#accessLog !== null) logExchange(this.#accessLog, tunnel, tunnel.path, status, ms, 'websocket');
  }
}

/**
 * The proxy listener's defences against clients that attack the connection rather than
 * the request (`limits:` in the config):
 *
 *  - slowloris: the request line and headers must arrive within `headersTimeoutMs`, the
 *    whole request (body included) within `requestTimeoutMs`; then 408. Node checks both
 *    only while the request is being received, so a response that streams for hours (SSE)
 *    is never cut by them;
 *  - oversized heads: more than `maxHeaderBytes` of request line and headers → 431;
 *  - connection floods: at most `connectionsPerAddress` open connections per client
 *    address (IPv6: per /64, see client-address.ts), at most `connections` in total; a
 *    connection over a limit gets a 429 (per address) or is closed at once (in total), and
 *    never holds up anyone else's;
 *  - malformed requests (bad framing, smuggling attempts, control characters): node's
 *    parser refuses them; the answer is keygate's problem+json and the connection closes.
 *
 * @example
 *   const proxy = createServer({ ...listenerOptions(config.limits), keepAliveTimeout: 65_000 });
 *   guardListener(proxy, config.limits, (reason) => rejected.labels(reason).inc());
 */
import type { Server, ServerOptions } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { LimitsConfig } from '../config/limits.ts';
import { addressKey } from '../http/client-address.ts';
import { PROBLEMS, problemBody, type ProblemCode } from '../http/problem.ts';

export type RejectionReason = 'connections_per_address' | 'connections_total' | 'bad_request' | 'headers_too_large' | 'request_timeout';
export const REJECTION_REASONS: readonly RejectionReason[] = ['connections_per_address', 'connections_total', 'bad_request', 'headers_too_large', 'request_timeout'];

/** createServer options for the limits. */
export function listenerOptions(limits: LimitsConfig): ServerOptions {
  const shortest = limits.requestTimeoutMs > 0 ? Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs) : limits.headersTimeoutMs;
  return {
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    maxHeaderSize: limits.maxHeaderBytes,
    // transports/http.ts refuses HTTP/1.1 without Host itself (request-host.ts), as problem+json.
    requireHostHeader: false,
    // Node enforces both timeouts by sweeping its connections every interval (30 s by
    // default, which would let a 10 s timeout run to 40 s); a quarter of the shortest keeps
    // the overshoot small. The sweep is one native call over the connection list.
    connectionsCheckingInterval: Math.max(25, Math.min(1000, Math.floor(shortest / 4))),
  };
}

/** A complete HTTP/1.1 problem response, for answering on a raw socket. */
function rawProblem(code: ProblemCode, detail: string, extra = ''): string {
  const body = JSON.stringify(problemBody(code, detail));
  const { status, title } = PROBLEMS[code];
  return `HTTP/1.1 ${status} ${title}\r\ncontent-type: application/problem+json\r\ncontent-length: ${Buffer.byteLength(body)}\r\ncache-control: no-store\r\n${extra}connection: close\r\n\r\n${body}`;
}

const TOO_MANY = rawProblem('rate_limited', 'too many open connections from this address', 'retry-after: 1\r\n');
const BAD_REQUEST = rawProblem('bad_request', 'the request is not valid HTTP/1.1 (framing, header syntax or request line)');
const HEADERS_TOO_LARGE = rawProblem('headers_too_large', 'the request line and headers are larger than this server accepts');
const CHUNK_EXTENSIONS_TOO_LARGE = rawProblem('payload_too_large', 'the chunk extensions are larger than this server accepts');
const TIMEOUT = rawProblem('request_timeout', 'the request did not arrive in time');

/** node:http's own 'clientError' behaviour, with keygate's problem+json answers. */
function answerClientError(error: Error & { code?: string }, socket: Duplex, onRejected: (reason: RejectionReason) => void): void {
  // Only when nothing of a response is on the wire yet: a second status line would corrupt it.
  const inFlight = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (error.code !== 'ECONNRESET' && socket.writable && !inFlight?.headersSent) {
    switch (error.code) {
      case 'HPE_HEADER_OVERFLOW':
        onRejected('headers_too_large');
        socket.write(HEADERS_TOO_LARGE);
        break;
      case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
        onRejected('bad_request');
        socket.write(CHUNK_EXTENSIONS_TOO_LARGE);
        break;
      case 'ERR_HTTP_REQUEST_TIMEOUT':
        onRejected('request_timeout');
        socket.write(TIMEOUT);
        break;
      default:
        onRejected('bad_request');
        socket.write(BAD_REQUEST);
    }
  }
  socket.destroy(error);
}

/** Installs the connection limits and the parser-error answers on the proxy listener. */
export function guardListener(server: Server, limits: LimitsConfig, onRejected: (reason: RejectionReason) => void = () => {}): void {
  if (limits.connections > 0) {
    server.maxConnections = limits.connections;
    server.on('drop', () => onRejected('connections_total'));
  }
  server.on('clientError', (error: Error & { code?: string }, socket: Duplex) => answerClientError(error, socket, onRejected));
  const perAddress = limits.connectionsPerAddress;
  if (perAddress === 0) return;
  // One entry per address with open connections: bounded by the connections open.
  const open = new Map<string, number>();
  // node:http parses every connection it is told about, so a refused one must never reach
  // its 'connection' listener (a request on it would otherwise still be served): that
  // listener is wrapped rather than run alongside.
  const http = server.listeners('connection') as ((socket: Socket) => void)[];
  if (http.length !== 1) throw new Error('guardListener: expected node:http\'s own connection listener only');
  const parse = http[0]!;
  server.removeListener('connection', parse);
  server.on('connection', (socket: Socket) => {
    const address = addressKey(socket.remoteAddress ?? '');
    const count = open.get(address) ?? 0;
    if (count >= perAddress) {
      onRejected('connections_per_address');
      socket.on('error', () => {});
      // Whatever the client sends is read and dropped, so the close is a FIN, not a reset
      // that could discard the answer before the client reads it.
      socket.resume();
      // Answered before the request is read (RFC 9112 allows it), closed once written.
      socket.end(TOO_MANY, () => socket.destroy());
      return;
    }
    open.set(address, count + 1);
    socket.once('close', () => {
      const left = open.get(address)! - 1;
      if (left === 0) open.delete(address);
      else open.set(address, left);
    });
    parse.call(server, socket);
  });
}

/**
 * A chunked request body has no Content-Length to check up front, so it is counted as it
 * streams and cut off at the route's limit; and a refusal sent while a body is still
 * arriving must reach the client before the connection closes (lingeringClose).
 */
import { problemKind } from './problem.ts';
import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';

/** A body over the route's limit, found while it streams: 413 `payload_too_large`. */
export const PayloadTooLargeError = problemKind('PayloadTooLargeError', 'payload_too_large');
export type PayloadTooLargeError = InstanceType<typeof PayloadTooLargeError>;

export async function* limitBody(body: Readable, maxBytes: number): AsyncGenerator<Buffer> {
  let seen = 0;
  let over = false;
  try {
    // destroyOnReturn: false — destroying an unfinished request destroys its socket, and the
    // 413 sent next (with Connection: close) would then often never reach the client.
    for await (const chunk of body.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
      seen += chunk.length;
      if (seen > maxBytes) {
        over = true;
        throw new PayloadTooLargeError(`the request body is larger than ${maxBytes} bytes`);
      }
      yield chunk;
    }
  } finally {
    // Any other early end (the upstream failed, the client left): as before, nothing more is read.
    if (!over && !body.readableEnded) body.destroy();
  }
}

/** Whether the request has a body (chunked, or a non-zero Content-Length). */
export function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/** How long a refused request's body is still read (and thrown away) after the answer. */
export const LINGER_MS = 2000;

/**
 * For an answer sent while the request body is still arriving (413, or any refusal before
 * the body was read): closing a socket with unread data makes the kernel send a reset, and
 * a reset can discard the answer before the client has read it — a client uploading 20 MB
 * would see "connection reset" instead of the 413. So the socket is half-closed after the
 * answer (FIN), what still arrives is read and dropped, and it is destroyed after
 * `lingerMs` at the latest (or as soon as the client closes): the "lingering close" of
 * Apache and nginx.
 *
 * node:http closes a `Connection: close` response's socket with `destroySoon()` if the
 * socket has one and with `end()` otherwise; hiding it on this socket selects `end()`.
 */
export function lingeringClose(req: IncomingMessage, lingerMs = LINGER_MS): void {
  const socket = req.socket;
  if (socket.destroyed) return;
  (socket as unknown as { destroySoon?: unknown }).destroySoon = undefined;
  req.resume();
  const timer = setTimeout(() => socket.destroy(), lingerMs);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
}

/**
 * Reads a webhook request body into memory, bounded: at most `maxBytes` (a chunked body is
 * cut off as soon as it passes the limit, unread beyond it), and at most `idleMs` of silence
 * between chunks (a sender trickling bytes cannot hold a buffer forever). Each chunk is
 * handed to `onChunk` as it arrives (the HMACs run while the body streams in). With a
 * Content-Length the buffer is allocated once at that size, so a body is never held twice.
 */
import type { IncomingMessage } from 'node:http';
import { PayloadTooLargeError } from './body-limit.ts';
import { problemKind } from './problem.ts';

/** No body data for `idleMs` (request_timeout; the callers drop the connection rather than answer). */
export const BodyTimeoutError = problemKind('BodyTimeoutError', 'request_timeout');
export type BodyTimeoutError = InstanceType<typeof BodyTimeoutError>;

/** The client closed the connection before the body ended (bad_request: the body did not arrive). */
export const BodyAbortedError = problemKind('BodyAbortedError', 'bad_request');
export type BodyAbortedError = InstanceType<typeof BodyAbortedError>;

export function readBody(req: IncomingMessage, maxBytes: number, idleMs: number, onChunk: (chunk: Buffer) => void): Promise<Buffer> {
  const declared = req.headers['content-length'];
  const length = declared === undefined ? -1 : Number(declared);
  if (length > maxBytes) return Promise.reject(new PayloadTooLargeError(`the request body is larger than ${maxBytes} bytes`));
  // The client may have left while the signing secrets were fetched: no 'close' would come again.
  if (req.destroyed) return Promise.reject(new BodyAbortedError('the client closed the connection before the body was read'));
  return new Promise((resolve, reject) => {
    const whole = length > 0 ? Buffer.allocUnsafe(length) : null;
    const chunks: Buffer[] = [];
    let seen = 0;
    const done = (error: Error | null) => {
      clearTimeout(timer);
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
      if (error === null) resolve(whole !== null ? whole.subarray(0, seen) : chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, seen));
      else {
        // Nothing more is kept; the answer closes the connection (http/body-limit.ts, lingeringClose).
        req.pause();
        reject(error);
      }
    };
    const onData = (chunk: Buffer) => {
      if (seen + chunk.length > maxBytes || (whole !== null && seen + chunk.length > whole.length)) {
        done(new PayloadTooLargeError(`the request body is larger than ${maxBytes} bytes`));
        return;
      }
      timer.refresh();
      onChunk(chunk);
      if (whole !== null) chunk.copy(whole, seen);
      else chunks.push(chunk);
      seen += chunk.length;
    };
    const onEnd = () => done(null);
    const onError = (error: Error) => done(error);
    const onClose = () => done(new BodyAbortedError('the client closed the connection before the body ended'));
    const timer = setTimeout(() => done(new BodyTimeoutError(`no body data for ${idleMs} ms`)), idleMs);
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('close', onClose);
  });
}

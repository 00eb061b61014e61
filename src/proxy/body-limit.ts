/**
 * A chunked request body has no Content-Length to check up front, so it is counted as it
 * streams and cut off at the route's limit.
 */
import type { Readable } from 'node:stream';

export class PayloadTooLargeError extends Error {
  override name = 'PayloadTooLargeError';
  readonly code = 'KG_PAYLOAD_TOO_LARGE';
}

export async function* limitBody(body: Readable, maxBytes: number): AsyncGenerator<Buffer> {
  let seen = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    seen += chunk.length;
    if (seen > maxBytes) throw new PayloadTooLargeError(`the request body is larger than ${maxBytes} bytes`);
    yield chunk;
  }
}

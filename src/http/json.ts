/** JSON in and out on the admin listener (small request bodies with a size limit, uncached responses), and stored JSON read back. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { KeygateError } from './problem.ts';

export const MAX_ADMIN_BODY = 64 * 1024;

/** The body, or a KeygateError: payload_too_large, unsupported_media_type or bad_request (not JSON). */
export async function readJson(req: IncomingMessage): Promise<unknown> {
  const type = req.headers['content-type'] ?? '';
  const length = Number(req.headers['content-length'] ?? 0);
  if (length > MAX_ADMIN_BODY) throw new KeygateError('payload_too_large', `the body is larger than ${MAX_ADMIN_BODY} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_ADMIN_BODY) throw new KeygateError('payload_too_large', `the body is larger than ${MAX_ADMIN_BODY} bytes`);
    chunks.push(chunk);
  }
  if (size === 0) return {};
  if (!/^application\/(.+\+)?json\b/i.test(type)) throw new KeygateError('unsupported_media_type', 'send the body as application/json');
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new KeygateError('bad_request', 'the body is not valid JSON');
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

/** The object a JSON text holds, or null when it is not JSON or not an object (stored data that may be damaged). */
export function jsonObject(text: string): Record<string, unknown> | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  return value !== null && typeof value === 'object' ? (value as Record<string, unknown>) : null;
}

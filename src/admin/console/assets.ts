/**
 * The console's static files (web/: one HTML page, ES modules, a stylesheet, an icon),
 * read into memory once at start and served with their content type, an ETag and the
 * console's security headers. Only names found in web/ exist: a request path is looked up
 * in a map, never joined onto a file system path.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const WEB_DIR = fileURLToPath(new URL('./web/', import.meta.url));

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

/**
 * No script or style but the console's own files, nothing loaded from anywhere else, no
 * framing, and DOM sinks that take strings (innerHTML and the like) disabled outright
 * (Trusted Types with no policy): the page builds its DOM from text nodes only.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "require-trusted-types-for 'script'",
  "trusted-types 'none'",
].join('; ');

/** Headers on every console response, data or not. */
export function setSecurityHeaders(res: ServerResponse): void {
  res.setHeader('content-security-policy', CONTENT_SECURITY_POLICY);
  res.setHeader('x-content-type-options', 'nosniff');
  res.setHeader('referrer-policy', 'no-referrer');
  res.setHeader('x-frame-options', 'DENY');
  res.setHeader('cross-origin-opener-policy', 'same-origin');
  res.setHeader('cross-origin-resource-policy', 'same-origin');
  res.setHeader('permissions-policy', 'camera=(), microphone=(), geolocation=(), payment=(), usb=()');
}

interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

export class Assets {
  readonly #files = new Map<string, Asset>();

  constructor(dir: string = WEB_DIR) {
    for (const name of readdirSync(dir)) {
      const type = TYPES[extname(name)];
      if (type === undefined) continue;
      const body = readFileSync(join(dir, name));
      this.#files.set(name, { body, type, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` });
    }
  }

  has(name: string): boolean {
    return this.#files.has(name);
  }

  /** Answers GET/HEAD for `name` (which must exist). */
  serve(req: IncomingMessage, res: ServerResponse, name: string): void {
    const asset = this.#files.get(name)!;
    setSecurityHeaders(res);
    // The page itself may be revalidated but not stored; the rest carries no data.
    res.setHeader('cache-control', asset.type.startsWith('text/html') ? 'no-store' : 'no-cache');
    res.setHeader('etag', asset.etag);
    if (req.headers['if-none-match'] === asset.etag) {
      res.writeHead(304);
      res.end();
      return;
    }
    res.writeHead(200, { 'content-type': asset.type, 'content-length': asset.body.length });
    res.end(req.method === 'HEAD' ? undefined : asset.body);
  }
}

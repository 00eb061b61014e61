/**
 * The floor for `npm run bench`: the least a Node.js gateway built like keygate can do per
 * request — node:http in, one undici Pool out, a handler that writes straight into the
 * response, `x-api-key === KEY` checked and the header removed — and nothing else (no
 * hashing, cache, routing, rewrite, logs or metrics). What keygate costs above it is the
 * cost of its features; what the floor costs against nginx is the cost of node:http and
 * undici. Run as its own process:
 * `FLOOR_KEY=… FLOOR_TARGET=http://127.0.0.1:PORT [FLOOR_PORT=0] node load/harness/floor-proxy.ts`
 * prints `listening <port>`.
 */
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool, type Dispatcher } from 'undici';

const key = process.env.FLOOR_KEY ?? '';
const target = process.env.FLOOR_TARGET ?? '';
if (key === '' || target === '') throw new Error('FLOOR_KEY and FLOOR_TARGET are required');
const pool = new Pool(target, { keepAliveTimeout: 60_000 });

class Relay implements Dispatcher.DispatchHandler {
  readonly #res: ServerResponse;
  constructor(res: ServerResponse) {
    this.#res = res;
  }
  onRequestStart(): void {}
  onResponseStart(_c: Dispatcher.DispatchController, status: number, headers: Record<string, string | string[] | undefined>): void {
    const out: string[] = [];
    for (const name in headers) {
      const value = headers[name];
      if (typeof value === 'string' && name !== 'connection' && name !== 'keep-alive') out.push(name, value);
    }
    this.#res.writeHead(status, out);
  }
  onResponseData(_c: Dispatcher.DispatchController, chunk: Buffer): void {
    this.#res.write(chunk);
  }
  onResponseEnd(): void {
    this.#res.end();
  }
  onResponseError(): void {
    if (this.#res.headersSent) this.#res.destroy();
    else this.#res.writeHead(502).end();
  }
}

const server = createServer((req, res) => {
  if (req.headers['x-api-key'] !== key) {
    res.writeHead(401, { 'content-length': '0' }).end();
    return;
  }
  const raw = req.rawHeaders;
  const headers: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (name !== 'x-api-key' && name !== 'host' && name !== 'connection') headers.push(raw[i]!, raw[i + 1]!);
  }
  headers.push('x-tenant-id', 'floor');
  const hasBody = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
  pool.dispatch({ path: req.url ?? '/', method: req.method ?? 'GET', headers, body: hasBody ? req : null }, new Relay(res));
});
server.keepAliveTimeout = 60_000;
server.listen(Number(process.env.FLOOR_PORT ?? 0), '127.0.0.1', () => {
  process.stdout.write(`listening ${(server.address() as AddressInfo).port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));

/**
 * The stub upstream for `npm run bench`, run as its own process so it does not share an
 * event loop with the load generator: `node load/harness/upstream.ts` prints
 * `listening <port>` once bound to a free loopback port.
 *
 *  - GET/anything: 200 "ok" (a request body is read and discarded);
 *  - GET /sse: text/event-stream, SSE_EVENTS small events SSE_INTERVAL_MS apart, then the end.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

export const SSE_EVENTS = 5;
export const SSE_INTERVAL_MS = 2;

const server = createServer((req, res) => {
  if (req.url === '/sse') {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    let sent = 0;
    const timer = setInterval(() => {
      res.write(`id: ${sent}\ndata: {"n":${sent}}\n\n`);
      if (++sent === SSE_EVENTS) {
        clearInterval(timer);
        res.end();
      }
    }, SSE_INTERVAL_MS);
    res.on('close', () => clearInterval(timer));
    return;
  }
  req.resume();
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '3' });
    res.end('ok\n');
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`listening ${(server.address() as AddressInfo).port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));

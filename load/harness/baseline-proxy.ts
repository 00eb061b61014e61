/**
 * The baseline for `npm run bench`: a plain http-proxy-3 reverse proxy with a keep-alive
 * agent and a trivial `x-api-key === KEY` check — what "a proxy with a key check" costs
 * without keygate's work (hashing, cache, store, logs, metrics). Run as its own process:
 * `BASELINE_KEY=… BASELINE_TARGET=http://127.0.0.1:PORT node load/harness/baseline-proxy.ts`
 * prints `listening <port>`.
 */
import { createServer, Agent } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createProxyServer } from 'http-proxy-3';

const key = process.env.BASELINE_KEY ?? '';
const target = process.env.BASELINE_TARGET ?? '';
if (key === '' || target === '') throw new Error('BASELINE_KEY and BASELINE_TARGET are required');

const agent = new Agent({ keepAlive: true, maxSockets: 256 });
const proxy = createProxyServer({ target, agent, xfwd: true });
proxy.on('error', (_error, _req, res) => {
  if ('writeHead' in res && !res.headersSent) {
    res.writeHead(502, { 'content-type': 'text/plain' });
    res.end('bad gateway\n');
  } else {
    res.destroy();
  }
});

const server = createServer((req, res) => {
  if (req.headers['x-api-key'] !== key) {
    req.resume();
    res.writeHead(401, { 'content-type': 'text/plain', 'content-length': '13' });
    res.end('unauthorized\n');
    return;
  }
  proxy.web(req, res);
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`listening ${(server.address() as AddressInfo).port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));

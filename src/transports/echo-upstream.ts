/**
 * A tiny upstream for trying keygate out: it answers every request with what it received
 * (method, path, headers, body size), so a newcomer can see exactly what keygate forwards.
 * Started only when `echo:` is in the config.
 */
import { createServer, type Server } from 'node:http';

export function createEchoUpstream(): Server {
  return createServer((req, res) => {
    let bytes = 0;
    req.on('data', (chunk: Buffer) => (bytes += chunk.length));
    req.on('end', () => {
      const body = JSON.stringify({ method: req.method, path: req.url, headers: req.headers, bodyBytes: bytes }, null, 2);
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) + 1 });
      res.end(`${body}\n`);
    });
  });
}

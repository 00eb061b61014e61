/**
 * A real HTTP upstream on a free loopback port that records what it received. Tests give
 * it a handler for the response; by default it answers 200 with the request as JSON.
 */
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Server as NetServer } from 'node:net';
import { once } from 'node:events';

export interface Received {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  rawHeaders: string[];
}

export interface TestUpstream {
  server: Server;
  url: string;
  port: number;
  received: Received[];
  close(): Promise<void>;
}

export type Handler = (req: IncomingMessage, res: ServerResponse) => void;

export const echoHandler: Handler = (req, res) => {
  req.resume();
  req.on('end', () => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers }));
  });
};

/** Listens on a free loopback port; resolves with the port. */
export async function listenLocal(server: NetServer): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

export interface LocalServer {
  server: Server;
  url: string;
  port: number;
  /** Ends every connection, then closes. */
  close(): Promise<void>;
}

/** An HTTP server with `handler` on a free loopback port, recording nothing (for load tests). */
export async function serveLocal(handler: Handler): Promise<LocalServer> {
  const server = createServer(handler);
  const port = await listenLocal(server);
  return {
    server,
    url: `http://127.0.0.1:${port}`,
    port,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export async function startUpstream(handler: Handler = echoHandler): Promise<TestUpstream> {
  const received: Received[] = [];
  const local = await serveLocal((req, res) => {
    received.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders });
    handler(req, res);
  });
  return { ...local, received };
}

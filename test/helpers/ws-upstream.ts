/**
 * A real WebSocket upstream (the `ws` package's server on a free loopback port): it echoes
 * every message, records each upgrade request's headers and URL, and keeps its open
 * connections so a test can see them close.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';
import { WebSocket, WebSocketServer } from 'ws';

export interface WsUpstream {
  url: string;
  /** Headers and URL of every upgrade request that reached the upstream. */
  upgrades: { url: string; headers: IncomingHttpHeaders }[];
  /** Plain (non-upgrade) requests that reached it. */
  requests: { url: string; headers: IncomingHttpHeaders }[];
  /** Server-side sockets, open or closed. */
  sockets: WebSocket[];
  server: Server;
  close(): Promise<void>;
}

export async function startWsUpstream(): Promise<WsUpstream> {
  const upgrades: WsUpstream['upgrades'] = [];
  const requests: WsUpstream['requests'] = [];
  const sockets: WebSocket[] = [];
  const server = createServer((req, res) => {
    requests.push({ url: req.url ?? '', headers: req.headers });
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('not a websocket\n');
  });
  const wss = new WebSocketServer({ noServer: true });
  server.on('upgrade', (req, socket, head) => {
    upgrades.push({ url: req.url ?? '', headers: req.headers });
    if (req.url?.startsWith('/ws/refuse')) {
      socket.end('HTTP/1.1 404 Not Found\r\ncontent-type: text/plain\r\ncontent-length: 10\r\nconnection: close\r\n\r\nno socket\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      sockets.push(ws);
      ws.on('message', (data, binary) => ws.send(data, { binary }));
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    upgrades,
    requests,
    sockets,
    server,
    async close() {
      for (const ws of wss.clients) ws.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export interface WsResult {
  /** The open socket, or null when the upgrade was refused. */
  ws: WebSocket | null;
  /** The HTTP status of a refused upgrade, and its body. */
  status?: number;
  body?: string;
  headers?: IncomingHttpHeaders;
}

/** Opens a WebSocket through keygate; resolves with the socket, or with the refusal keygate answered. */
export function connectWs(url: string, headers: Record<string, string> = {}): Promise<WsResult> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    ws.once('open', () => resolve({ ws }));
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ ws: null, status: res.statusCode, body, headers: res.headers }));
    });
    ws.once('error', (error) => reject(error));
  });
}

/** Resolves when the socket closes, with the close code and reason the client saw. */
export function closed(ws: WebSocket): Promise<{ code: number; reason: string; at: number }> {
  return new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString('utf8'), at: performance.now() })));
}

/** Sends a message and waits for its echo. */
export async function echo(ws: WebSocket, text: string): Promise<string> {
  const reply = once(ws, 'message') as Promise<[Buffer]>;
  ws.send(text);
  const [data] = await reply;
  return data.toString('utf8');
}

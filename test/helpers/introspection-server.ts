/**
 * A test RFC 7662 introspection endpoint on loopback: tokens are registered with the claims
 * to answer (`{"active": true, …}`), anything else is `{"active": false}`. It counts what it
 * is asked (in total, per token, and how many at once), can be made slow, broken (500, not
 * JSON, no `active`) or silent, and requires HTTP Basic client authentication like a real
 * authorization server (401 otherwise).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';

export type IntrospectionMode = 'ok' | 'error' | 'not-json' | 'no-active' | 'hang';

export interface IntrospectionRequest {
  method: string;
  contentType: string | undefined;
  authorization: string | undefined;
  form: Record<string, string>;
}

export interface TestIntrospection {
  url: string;
  /** Answers `{ active: true, ...claims }` for this token from now on. */
  add(token: string, claims: Record<string, unknown>): void;
  /** The token is inactive from now on (revoked at the issuer). */
  revoke(token: string): void;
  /** Introspection requests received in total, and for one token. */
  readonly calls: number;
  callsFor(token: string): number;
  /** The most introspections that were under way at once. */
  readonly maxInFlight: number;
  readonly requests: readonly IntrospectionRequest[];
  /** How long each answer takes. */
  delayMs: number;
  mode: IntrospectionMode;
  reset(): void;
  close(): Promise<void>;
}

export async function startIntrospection(clientId: string, secret: string): Promise<TestIntrospection> {
  const tokens = new Map<string, Record<string, unknown>>();
  const perToken = new Map<string, number>();
  const requests: IntrospectionRequest[] = [];
  let calls = 0;
  let inFlight = 0;
  let maxInFlight = 0;
  const expected = `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(secret)}`).toString('base64')}`;
  const state = { delayMs: 0, mode: 'ok' as IntrospectionMode };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const form = Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString('utf8')));
    requests.push({ method: req.method ?? '', contentType: req.headers['content-type'], authorization: req.headers.authorization, form });
    if (requests.length > 1000) requests.shift();
    calls++;
    const token = form.token ?? '';
    perToken.set(token, (perToken.get(token) ?? 0) + 1);
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    try {
      if (state.mode === 'hang') {
        await once(res, 'close');
        return;
      }
      if (state.delayMs > 0) await new Promise((resolve) => setTimeout(resolve, state.delayMs));
      if (req.url !== '/introspect' || req.method !== 'POST') {
        res.writeHead(404).end();
        return;
      }
      if (req.headers.authorization !== expected) {
        res.writeHead(401, { 'www-authenticate': 'Basic realm="test"', 'content-type': 'application/json' }).end('{"error":"invalid_client"}');
        return;
      }
      if (state.mode === 'error') {
        res.writeHead(500).end('oops');
        return;
      }
      if (state.mode === 'not-json') {
        res.writeHead(200, { 'content-type': 'text/html' }).end('<html>login</html>');
        return;
      }
      if (state.mode === 'no-active') {
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"scope":"mcp:use"}');
        return;
      }
      const claims = tokens.get(token);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(claims === undefined ? { active: false } : { active: true, ...claims }));
    } finally {
      inFlight--;
    }
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch(() => res.destroy());
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/introspect`;
  return {
    url,
    add: (token, claims) => tokens.set(token, claims),
    revoke: (token) => tokens.delete(token),
    get calls() {
      return calls;
    },
    callsFor: (token) => perToken.get(token) ?? 0,
    get maxInFlight() {
      return maxInFlight;
    },
    requests,
    get delayMs() {
      return state.delayMs;
    },
    set delayMs(value) {
      state.delayMs = value;
    },
    get mode() {
      return state.mode;
    },
    set mode(value) {
      state.mode = value;
    },
    reset() {
      calls = 0;
      maxInFlight = 0;
      perToken.clear();
      requests.length = 0;
      state.delayMs = 0;
      state.mode = 'ok';
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * keygate in front of the MCP HTTP transports (Streamable HTTP and the older HTTP+SSE),
 * against a hand-written upstream that behaves like an MCP server at the HTTP level:
 * events pass one at a time (the upstream writes the next only once the client has the
 * previous one), the transport's headers pass untouched both ways, its statuses come back
 * unchanged, every method is authenticated and a session id is never a credential, streams
 * have an idle limit but no total one.
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rawRequest } from '../helpers/http.ts';
import { startTestKeygate, type TestKeygate } from '../helpers/keygate.ts';
import { startUpstream, type TestUpstream } from '../helpers/upstream.ts';
import { typo } from '../helpers/typo.ts';

let up: TestUpstream;
let t: TestKeygate;
let key: string;
/** Resolves the upstream's wait for the client's receipt of event i. */
const acks = new Map<number, () => void>();
const writtenAt = new Map<number, number>();

function ackable(i: number): Promise<void> {
  return new Promise((resolve) => acks.set(i, resolve));
}

beforeAll(async () => {
  up = await startUpstream((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    req.resume();
    switch (url.pathname) {
      case '/mcp/stream': {
        // Writes event i+1 only after the test saw event i through keygate.
        res.writeHead(200, { 'content-type': 'text/event-stream', 'mcp-session-id': 'sess-42' });
        void (async () => {
          for (let i = 0; i < 5; i++) {
            const seen = ackable(i);
            writtenAt.set(i, performance.now());
            res.write(`id: ${i}\nevent: message\ndata: {"i":${i}}\n\n`);
            const timeout = new Promise((resolve) => setTimeout(resolve, 5000, 'timeout'));
            if ((await Promise.race([seen, timeout])) === 'timeout') break;
          }
          res.end();
        })();
        return;
      }
      case '/mcp/ticks': {
        // An event every 300 ms for `n` events: longer in total than headersMs and idleMs.
        const n = Number(url.searchParams.get('n'));
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', 'x-accel-buffering': 'yes' });
        let i = 0;
        const timer = setInterval(() => {
          res.write(`data: ${i++}\n\n`);
          if (i === n) {
            clearInterval(timer);
            res.end();
          }
        }, 300);
        res.on('close', () => clearInterval(timer));
        return;
      }
      case '/mcp/silent':
        // One event, then nothing: the idle limit must end it.
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write('data: first\n\n');
        return;
      case '/mcp/status': {
        const status = Number(url.searchParams.get('code'));
        const headers: Record<string, string> = status === 405 ? { allow: 'GET, POST, DELETE' } : {};
        if (status === 202) {
          res.writeHead(202, headers).end();
        } else {
          res.writeHead(status, { ...headers, 'content-type': 'application/json' });
          res.end(JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: -32000, message: `upstream says ${status}` } }));
        }
        return;
      }
      default:
        res.writeHead(200, { 'content-type': 'application/json', 'mcp-session-id': 'sess-42', 'mcp-protocol-version': '2025-06-18' });
        res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers, rawHeaders: req.rawHeaders }));
    }
  });
  t = await startTestKeygate({
    routes: [
      { name: 'mcp', pathPrefix: '/mcp', upstream: up.url, mcp: { resource: 'https://mcp.example.com/mcp' }, timeouts: { headersMs: 1000, idleMs: 1500 } },
      { name: 'legacy', pathPrefix: '/legacy', upstream: up.url },
    ],
  });
  key = (await t.keys.create({ tenant: 'acme', name: 'agent' })).key;
});

afterAll(async () => {
  await t?.stop();
  await up?.close();
});

function open(path: string, headers: Record<string, string>): Promise<IncomingMessage> {
  const url = new URL(t.url);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: url.hostname, port: url.port, path, headers, agent: false }, resolve);
    req.on('error', reject);
    req.end();
  });
}

describe('event streams', () => {
  it('passes each event on as soon as it is written (the next is written only after the previous arrived)', async () => {
    const res = await open('/mcp/stream', { 'x-api-key': key, accept: 'text/event-stream', 'accept-encoding': 'gzip, br' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/event-stream');
    expect(res.headers['x-accel-buffering']).toBe('no');
    expect(res.headers['cache-control']).toBe('no-cache, no-transform');
    expect(res.headers['content-encoding']).toBeUndefined();
    expect(res.headers['mcp-session-id']).toBe('sess-42');
    const seen: number[] = [];
    const lags: number[] = [];
    let buffer = '';
    res.setEncoding('utf8');
    for await (const chunk of res) {
      buffer += chunk as string;
      let end: number;
      while ((end = buffer.indexOf('\n\n')) !== -1) {
        const i = Number(/^id: (\d+)$/m.exec(buffer.slice(0, end))![1]);
        buffer = buffer.slice(end + 2);
        lags.push(performance.now() - writtenAt.get(i)!);
        seen.push(i);
        acks.get(i)!();
      }
    }
    // Had keygate held any event back, the upstream would have stopped after 5 s (and the list would be short).
    expect(seen).toEqual([0, 1, 2, 3, 4]);
    console.log(`[mcp-transport] SSE event lag through keygate: max ${Math.max(...lags).toFixed(1)} ms, mean ${(lags.reduce((a, b) => a + b, 0) / lags.length).toFixed(1)} ms`);
  });

  it('has no total time limit: a stream longer than headersMs and idleMs runs to its end; upstream cache headers are kept', async () => {
    const started = performance.now();
    const res = await open('/mcp/ticks?n=10', { 'x-api-key': key });
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.headers['x-accel-buffering']).toBe('yes');
    let text = '';
    for await (const chunk of res) text += String(chunk);
    expect(performance.now() - started).toBeGreaterThan(2500);
    expect(text.match(/^data: /gm)).toHaveLength(10);
  });

  it('ends a stream that stays silent longer than idleMs', async () => {
    const started = performance.now();
    const res = await open('/mcp/silent', { 'x-api-key': key });
    let text = '';
    const ended = await new Promise<string>((resolve) => {
      res.on('data', (c: Buffer) => (text += String(c)));
      res.on('end', () => resolve('end'));
      res.on('error', () => resolve('error'));
      res.on('aborted', () => resolve('aborted'));
      res.on('close', () => resolve('close'));
    });
    const ms = performance.now() - started;
    console.log(`[mcp-transport] silent stream (idleMs 1500) ended after ${ms.toFixed(0)} ms (${ended})`);
    expect(text).toBe('data: first\n\n');
    expect(ms).toBeGreaterThan(1000);
    expect(ms).toBeLessThan(10_000);
  });
});

describe('the transport headers and statuses', () => {
  it('pass Mcp-Session-Id, MCP-Protocol-Version, Last-Event-ID and Accept untouched, and the session headers back', async () => {
    const sent = ['Mcp-Session-Id', 'AbC-123_x', 'MCP-Protocol-Version', '2025-06-18', 'Last-Event-ID', 'stream-7:42', 'Accept', 'application/json, text/event-stream', 'X-Api-Key', key];
    const res = await rawRequest(t.url, { method: 'POST', path: '/mcp', headers: [...sent, 'content-type', 'application/json'], body: '{"jsonrpc":"2.0","id":1,"method":"ping"}' });
    expect(res.status).toBe(200);
    const raw: string[] = res.json.rawHeaders;
    for (let i = 0; i < 8; i += 2) {
      const at = raw.findIndex((h) => h.toLowerCase() === sent[i]!.toLowerCase());
      expect(raw[at + 1], sent[i]).toBe(sent[i + 1]);
    }
    expect(res.json.headers['x-api-key']).toBeUndefined();
    expect(res.headers['mcp-session-id']).toBe('sess-42');
    expect(res.headers['mcp-protocol-version']).toBe('2025-06-18');
  });

  for (const code of [202, 400, 404, 405]) {
    it(`${code} from the upstream reaches the client unchanged`, async () => {
      const res = await rawRequest(t.url, { method: 'POST', path: `/mcp/status?code=${code}`, headers: { 'x-api-key': key, 'content-type': 'application/json' }, body: '{}' });
      expect(res.status).toBe(code);
      if (code === 202) {
        expect(res.body).toBe('');
      } else {
        expect(res.headers['content-type']).toBe('application/json');
        expect(res.json.error.message).toBe(`upstream says ${code}`);
      }
      if (code === 405) expect(res.headers.allow).toBe('GET, POST, DELETE');
    });
  }
});

describe('every request is authenticated', () => {
  it('GET streams, DELETE and POST, with or without a session id', async () => {
    for (const method of ['GET', 'POST', 'DELETE']) {
      const bare = await rawRequest(t.url, { method, path: '/mcp', headers: { 'mcp-session-id': 'sess-42', accept: 'text/event-stream' } });
      expect(bare.status, method).toBe(401);
      expect(bare.json.code).toBe('missing_credentials');
      expect(bare.headers['www-authenticate']).toContain('resource_metadata=');
    }
    const before = up.received.length;
    const wrong = await rawRequest(t.url, { method: 'DELETE', path: '/mcp', headers: { 'mcp-session-id': 'sess-42', 'x-api-key': typo(key) } });
    expect(wrong.status).toBe(401);
    expect(up.received.length).toBe(before);
    const del = await rawRequest(t.url, { method: 'DELETE', path: '/mcp', headers: { 'mcp-session-id': 'sess-42', 'x-api-key': key } });
    expect(del.status).toBe(200);
    expect(del.json).toMatchObject({ method: 'DELETE', headers: { 'mcp-session-id': 'sess-42', 'x-tenant-id': 'acme' } });
  });

  it('the legacy transport: GET /sse and POST /messages?sessionId=… both need the key', async () => {
    expect((await rawRequest(t.url, { path: '/legacy/sse', headers: { accept: 'text/event-stream' } })).status).toBe(401);
    const anonymous = await rawRequest(t.url, { method: 'POST', path: '/legacy/messages?sessionId=abc', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(anonymous.status).toBe(401);
    const ok = await rawRequest(t.url, { method: 'POST', path: '/legacy/messages?sessionId=abc', headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` }, body: '{}' });
    expect(ok.status).toBe(200);
    expect(ok.json.url).toBe('/legacy/messages?sessionId=abc');
    expect(ok.json.headers.authorization).toBeUndefined();
  });
});

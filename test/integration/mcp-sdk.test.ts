/**
 * keygate between the official MCP TypeScript SDK's client and server (code nobody here
 * wrote): a Streamable HTTP server with a tool that reports progress, and the legacy
 * HTTP+SSE transport, both behind keygate on loopback.
 *
 *  - with an API key: initialize, list tools, call a tool whose progress notifications reach
 *    the client one by one while the call is still running (the tool sends the next only
 *    once the client has the previous), end the session with DELETE;
 *  - without a key: the client sees the 401, and the metadata URL it names is fetched through
 *    keygate with the SDK's own discovery;
 *  - a key revoked mid-session fails the next request with 401 key_revoked;
 *  - a JWT access token from a test issuer works the same way, through the SDK's authProvider.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { discoverOAuthProtectedResourceMetadata, extractWWWAuthenticateParams, type OAuthClientProvider } from '@modelcontextprotocol/sdk/client/auth.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { SSEServerTransport } from '@modelcontextprotocol/sdk/server/sse.js';
import { freePorts } from '../helpers/process.ts';
import { rawRequest } from '../helpers/http.ts';
import { startTestKeygate, type TestKeygate } from '../helpers/keygate.ts';
import { startTestIssuer, type TestIssuer } from '../helpers/oauth-issuer.ts';

/** Progress values the client has received, and the server-side waits for them. */
const arrived = new Set<number>();
const waiting = new Map<number, () => void>();
function clientGot(progress: number): void {
  arrived.add(progress);
  waiting.get(progress)?.();
}
function clientHas(progress: number): Promise<boolean> {
  if (arrived.has(progress)) return Promise.resolve(true);
  return Promise.race([new Promise<boolean>((resolve) => waiting.set(progress, () => resolve(true))), sleep(5000).then(() => false)]);
}

function mcpServer(): McpServer {
  const server = new McpServer({ name: 'keygate-test-server', version: '1.0.0' });
  server.registerTool(
    'count',
    { description: 'Counts to n, reporting each step as progress', inputSchema: { n: z.number().int().min(1).max(10) } },
    async ({ n }, extra) => {
      const progressToken = extra._meta?.progressToken;
      for (let i = 1; i <= n; i++) {
        if (progressToken !== undefined) await extra.sendNotification({ method: 'notifications/progress', params: { progressToken, progress: i, total: n, message: `step ${i}` } });
        // A buffering proxy would hold the notification until the response ends: then this waits in vain.
        if (progressToken !== undefined && !(await clientHas(i))) return { content: [{ type: 'text', text: `progress ${i} did not reach the client` }], isError: true };
      }
      const headers = extra.requestInfo?.headers ?? {};
      return { content: [{ type: 'text', text: `counted to ${n} for tenant ${String(headers['x-tenant-id'])} user ${String(headers['x-auth-user'])}` }] };
    },
  );
  return server;
}

interface Seen {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
}

/** The SDK's server on node:http: Streamable HTTP at /mcp (stateful), HTTP+SSE at /legacy/sse + /legacy/messages. */
async function startMcpUpstream(): Promise<{ server: Server; url: string; seen: Seen[]; sessions: Map<string, StreamableHTTPServerTransport> }> {
  const seen: Seen[] = [];
  const sessions = new Map<string, StreamableHTTPServerTransport>();
  const legacy = new Map<string, SSEServerTransport>();
  const server = createServer((req, res) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    const url = new URL(req.url ?? '/', 'http://upstream');
    void (async () => {
      if (url.pathname === '/legacy/sse' && req.method === 'GET') {
        const transport = new SSEServerTransport('/legacy/messages', res);
        legacy.set(transport.sessionId, transport);
        res.on('close', () => legacy.delete(transport.sessionId));
        await mcpServer().connect(transport);
        return;
      }
      if (url.pathname === '/legacy/messages' && req.method === 'POST') {
        const transport = legacy.get(url.searchParams.get('sessionId') ?? '');
        if (transport === undefined) res.writeHead(404).end('unknown session');
        else await transport.handlePostMessage(req, res);
        return;
      }
      const id = req.headers['mcp-session-id'];
      let transport = typeof id === 'string' ? sessions.get(id) : undefined;
      if (transport === undefined) {
        if (id !== undefined || req.method !== 'POST') {
          res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ jsonrpc: '2.0', error: { code: -32001, message: 'Session not found' }, id: null }));
          return;
        }
        const created: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
          sessionIdGenerator: () => randomUUID(),
          onsessioninitialized: (sid) => void sessions.set(sid, created),
          onsessionclosed: (sid) => void sessions.delete(sid),
        });
        transport = created;
        await mcpServer().connect(transport);
      }
      await transport.handleRequest(req, res);
    })().catch((error: unknown) => {
      if (!res.headersSent) res.writeHead(500).end(String(error));
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, sessions };
}

let upstream: Awaited<ReturnType<typeof startMcpUpstream>>;
let idp: TestIssuer;
let t: TestKeygate;
let resource: string;

beforeAll(async () => {
  upstream = await startMcpUpstream();
  idp = await startTestIssuer();
  // The resource must be the URL the client uses, so keygate listens on a port chosen up front.
  const [port] = await freePorts(1);
  resource = `http://127.0.0.1:${port}/mcp`;
  t = await startTestKeygate({
    listen: { host: '127.0.0.1', port: port! },
    oauth: { issuers: [{ name: 'test', issuer: idp.issuer, jwksUri: idp.jwksUri, claims: { tenant: 'org' } }] },
    routes: [
      { name: 'mcp', pathPrefix: '/mcp', upstream: upstream.url, auth: { permissions: ['mcp:use'], issuers: ['test'] }, mcp: { resource, resourceName: 'keygate test' } },
      { name: 'legacy', pathPrefix: '/legacy', upstream: upstream.url, auth: { permissions: ['mcp:use'] } },
    ],
  });
});

afterAll(async () => {
  await t?.stop();
  upstream?.server.closeAllConnections();
  await new Promise<void>((resolve) => (upstream ? upstream.server.close(() => resolve()) : resolve()));
  await idp?.close();
});

function client(): Client {
  return new Client({ name: 'keygate-test-client', version: '1.0.0' });
}

/** Calls `count` and records the order in which progress and the result reached the client. */
async function countWithProgress(c: Client, n: number): Promise<{ order: string[]; text: string }> {
  arrived.clear();
  waiting.clear();
  const order: string[] = [];
  const result = await c.callTool({ name: 'count', arguments: { n } }, undefined, {
    onprogress: (p) => {
      order.push(`progress ${p.progress}/${p.total}`);
      clientGot(p.progress);
    },
  });
  order.push('result');
  expect(result.isError, JSON.stringify(result)).toBeFalsy();
  return { order, text: (result.content as { type: string; text: string }[])[0]!.text };
}

describe('Streamable HTTP with an API key', () => {
  it('initialize, list tools, a call with streamed progress, DELETE to end the session', async () => {
    const created = await t.keys.create({ tenant: 'acme', name: 'agent', permissions: ['mcp:use'], user: 'alice' });
    const transport = new StreamableHTTPClientTransport(new URL(resource), { requestInit: { headers: { 'x-api-key': created.key } } });
    const c = client();
    await c.connect(transport);
    expect(c.getServerVersion()?.name).toBe('keygate-test-server');
    const sessionId = transport.sessionId!;
    expect(sessionId).toMatch(/^[0-9a-f-]{36}$/);
    expect(upstream.sessions.has(sessionId)).toBe(true);

    const { tools } = await c.listTools();
    expect(tools.map((tool) => tool.name)).toEqual(['count']);

    const { order, text } = await countWithProgress(c, 4);
    expect(order).toEqual(['progress 1/4', 'progress 2/4', 'progress 3/4', 'progress 4/4', 'result']);
    expect(text).toBe('counted to 4 for tenant acme user alice');

    await transport.terminateSession();
    expect(transport.sessionId).toBeUndefined();
    expect(upstream.sessions.has(sessionId)).toBe(false);
    await c.close();

    const mine = upstream.seen.filter((s) => s.headers['mcp-session-id'] === sessionId);
    expect(new Set(mine.map((s) => s.method))).toEqual(new Set(['POST', 'GET', 'DELETE']));
    for (const s of mine) {
      expect(s.headers['x-api-key']).toBeUndefined();
      expect(s.headers['x-tenant-id']).toBe('acme');
      expect(s.headers['mcp-protocol-version']).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    }
    // The session is gone upstream; its 404 reaches the client unchanged.
    const stale = await rawRequest(t.url, { method: 'POST', path: '/mcp', headers: { 'x-api-key': created.key, 'mcp-session-id': sessionId, 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body: '{"jsonrpc":"2.0","id":9,"method":"ping"}' });
    expect(stale.status).toBe(404);
    expect(stale.json.error.message).toBe('Session not found');
  });

  it('without a key: the client sees 401, and the metadata URL it names is served by keygate', async () => {
    const responses: Response[] = [];
    const transport = new StreamableHTTPClientTransport(new URL(resource), {
      fetch: async (url, init) => {
        const res = await fetch(url, init);
        responses.push(res);
        return res;
      },
    });
    await expect(client().connect(transport)).rejects.toThrow(/401|missing_credentials/);
    const first = responses[0]!;
    expect(first.status).toBe(401);
    const { resourceMetadataUrl, scope } = extractWWWAuthenticateParams(first);
    expect(resourceMetadataUrl?.href).toBe(`${new URL(resource).origin}/.well-known/oauth-protected-resource/mcp`);
    expect(scope).toBe('mcp:use');
    // The SDK's own discovery, by the URL from the challenge and by probing from the server URL.
    for (const opts of [{ resourceMetadataUrl }, undefined]) {
      const metadata = await discoverOAuthProtectedResourceMetadata(new URL(resource), opts);
      expect(metadata.resource).toBe(resource);
      expect(metadata.authorization_servers).toEqual([idp.issuer]);
      expect(metadata.scopes_supported).toEqual(['mcp:use']);
    }
    expect(upstream.seen.some((s) => s.url.includes('well-known'))).toBe(false);
  });

  it('a key revoked mid-session fails the next request with 401 key_revoked', async () => {
    const created = await t.keys.create({ tenant: 'acme', name: 'soon-revoked', permissions: ['mcp:use'] });
    const transport = new StreamableHTTPClientTransport(new URL(resource), { requestInit: { headers: { authorization: `Bearer ${created.key}` } } });
    const c = client();
    await c.connect(transport);
    await c.listTools();
    const requestsBefore = upstream.seen.length;
    await t.keys.revoke(created.record.id);
    await expect(c.listTools()).rejects.toThrow(/401[\s\S]*key_revoked/);
    expect(upstream.seen.slice(requestsBefore).some((s) => s.method === 'POST')).toBe(false);
    await c.close();
  });
});

describe('Streamable HTTP with an OAuth access token', () => {
  it('a JWT from the configured issuer, given by the SDK authProvider, works end to end; without mcp:use it is 403', async () => {
    let accessToken = await idp.token(resource, { claims: { org: 'globex', scope: 'mcp:use profile', sub: 'bob' } });
    const provider: OAuthClientProvider = {
      get redirectUrl() {
        return 'http://127.0.0.1/callback';
      },
      get clientMetadata() {
        return { redirect_uris: ['http://127.0.0.1/callback'], client_name: 'keygate test' };
      },
      clientInformation: () => ({ client_id: 'test-client' }),
      tokens: () => ({ access_token: accessToken, token_type: 'Bearer' }),
      saveTokens: () => {},
      redirectToAuthorization: () => {
        throw new Error('the test client cannot sign in interactively');
      },
      saveCodeVerifier: () => {},
      codeVerifier: () => 'unused',
    };
    const transport = new StreamableHTTPClientTransport(new URL(resource), { authProvider: provider });
    const c = client();
    await c.connect(transport);
    const { order, text } = await countWithProgress(c, 3);
    expect(order).toEqual(['progress 1/3', 'progress 2/3', 'progress 3/3', 'result']);
    expect(text).toBe('counted to 3 for tenant globex user bob');
    const sid = transport.sessionId!;
    await transport.terminateSession();
    await c.close();
    const mine = upstream.seen.filter((s) => s.headers['mcp-session-id'] === sid);
    expect(mine.some((s) => s.method === 'DELETE')).toBe(true);
    for (const s of mine) expect(s.headers.authorization).toBeUndefined();

    // A token without the scope: the SDK client gets the 403 and (no way to re-consent) gives up.
    accessToken = await idp.token(resource, { claims: { org: 'globex', scope: 'profile' } });
    const res = await rawRequest(t.url, { method: 'POST', path: '/mcp', headers: { authorization: `Bearer ${accessToken}`, 'content-type': 'application/json' }, body: '{}' });
    expect(res.status).toBe(403);
    expect(res.headers['www-authenticate']).toContain('error="insufficient_scope", scope="mcp:use"');
  });
});

describe('the legacy HTTP+SSE transport', () => {
  it('GET /sse and POST /messages both go through keygate authenticated', async () => {
    const created = await t.keys.create({ tenant: 'acme', name: 'legacy', permissions: ['mcp:use'] });
    const headers = { 'x-api-key': created.key };
    const transport = new SSEClientTransport(new URL(`${t.url}/legacy/sse`), { requestInit: { headers } });
    const c = client();
    await c.connect(transport);
    const { tools } = await c.listTools();
    expect(tools.map((tool) => tool.name)).toEqual(['count']);
    const { order, text } = await countWithProgress(c, 2);
    expect(order).toEqual(['progress 1/2', 'progress 2/2', 'result']);
    expect(text).toBe('counted to 2 for tenant acme user undefined');
    await c.close();
    const legacy = upstream.seen.filter((s) => s.url.startsWith('/legacy/'));
    expect(legacy.some((s) => s.method === 'GET' && s.url === '/legacy/sse')).toBe(true);
    const posts = legacy.filter((s) => s.method === 'POST');
    expect(posts.length).toBeGreaterThanOrEqual(3);
    for (const s of legacy) {
      expect(s.headers['x-tenant-id']).toBe('acme');
      expect(s.headers['x-api-key']).toBeUndefined();
    }
    // Without the key, neither endpoint lets a request through, session id or not.
    const sessionUrl = posts[0]!.url;
    const before = upstream.seen.length;
    expect((await rawRequest(t.url, { path: '/legacy/sse' })).status).toBe(401);
    expect((await rawRequest(t.url, { method: 'POST', path: sessionUrl, headers: { 'content-type': 'application/json' }, body: '{"jsonrpc":"2.0","id":1,"method":"ping"}' })).status).toBe(401);
    expect(upstream.seen.length).toBe(before);
  });
});

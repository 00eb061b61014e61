/**
 * Per-tool MCP authorization (routes[].mcp.policy) between the official MCP TypeScript SDK's
 * client and server: a key allowed only one tool sees only it in tools/list, calls it, and
 * gets an MCP error for another that the SDK surfaces as such; hierarchy and wildcards; an
 * access token whose scope is the parent `mcp:tools`; a batch mixing an allowed and a refused
 * call; list answers filtered in JSON and in event streams (one event at a time); the
 * Mcp-Method / Mcp-Name headers checked against the body; per-tool rate limits; refusals
 * counted and audited.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { freePorts } from '../helpers/process.ts';
import { adminClient } from '../helpers/admin.ts';
import { startAdminKeygate, type AdminTestKeygate } from '../helpers/admin.ts';
import { startTestIssuer, type TestIssuer } from '../helpers/oauth-issuer.ts';

const TOOLS = ['search_candidates', 'delete_candidate', 'search_jobs'];

function mcpServer(): McpServer {
  const server = new McpServer({ name: 'policy-test', version: '1.0.0' });
  for (const name of TOOLS) server.registerTool(name, { description: name, inputSchema: { q: z.string().optional() } }, async () => ({ content: [{ type: 'text', text: `${name} ran` }] }));
  server.registerPrompt('summary', { description: 'a summary' }, () => ({ messages: [{ role: 'user', content: { type: 'text', text: 'sum' } }] }));
  server.registerPrompt('secret_prompt', { description: 'not for everyone' }, () => ({ messages: [{ role: 'user', content: { type: 'text', text: 'secret' } }] }));
  return server;
}

/** The SDK's stateful server: at /mcp answering with event streams, at /json with JSON. */
async function startMcpUpstream(): Promise<{ server: Server; url: string; calls: string[] }> {
  const calls: string[] = [];
  const sessions = new Map<string, StreamableHTTPServerTransport>();
  const server = createServer((req, res) => {
    void (async () => {
      const json = (req.url ?? '').startsWith('/json');
      const id = req.headers['mcp-session-id'];
      let transport = typeof id === 'string' ? sessions.get(id) : undefined;
      if (transport === undefined) {
        const created: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
          sessionIdGenerator: () => randomUUID(),
          enableJsonResponse: json,
          onsessioninitialized: (sid) => void sessions.set(sid, created),
        });
        transport = created;
        const server = mcpServer();
        server.server.onerror = () => {};
        await server.connect(transport);
      }
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      const body = chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : undefined;
      for (const m of Array.isArray(body) ? body : body ? [body] : []) if (m.method === 'tools/call') calls.push(m.params.name);
      await transport.handleRequest(req, res, body);
    })().catch((error: unknown) => {
      if (!res.headersSent) res.writeHead(500).end(String(error));
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, calls };
}

/** An upstream whose tools/list answer is an event stream of two events written apart, the list second. */
async function startSlowStream(): Promise<{ server: Server; url: string; release: () => void }> {
  let release = () => {};
  const server = createServer((req, res: ServerResponse) => {
    let text = '';
    req.on('data', (c: Buffer) => (text += c.toString('utf8')));
    req.on('end', () => {
      const message = JSON.parse(text) as { id: number };
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(`event: message\ndata: ${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 1, progress: 1 } })}\n\n`);
      release = () => {
        const tools = TOOLS.map((name) => ({ name, inputSchema: { type: 'object' } }));
        // The list event is written in two halves, split inside a multi-byte character.
        const event = Buffer.from(`event: message\ndata: ${JSON.stringify({ jsonrpc: '2.0', id: message.id, result: { tools, note: 'ünïcode' } })}\n\n`, 'utf8');
        const cut = event.indexOf(Buffer.from('ü', 'utf8')) + 1;
        res.write(event.subarray(0, cut));
        setTimeout(() => res.end(event.subarray(cut)), 30);
      };
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, release: () => release() };
}

let upstream: Awaited<ReturnType<typeof startMcpUpstream>>;
let slow: Awaited<ReturnType<typeof startSlowStream>>;
let idp: TestIssuer;
let t: AdminTestKeygate;
let base: string;

beforeAll(async () => {
  [upstream, slow, idp] = await Promise.all([startMcpUpstream(), startSlowStream(), startTestIssuer()]);
  const [port] = await freePorts(1);
  base = `http://127.0.0.1:${port}`;
  const policy = { maxListBytes: 65536 };
  t = await startAdminKeygate({
    listen: { host: '127.0.0.1', port: port! },
    oauth: { issuers: [{ name: 'test', issuer: idp.issuer, jwksUri: idp.jwksUri, claims: { tenant: 'org' } }] },
    routes: [
      { name: 'mcp', pathPrefix: '/mcp', upstream: upstream.url, auth: { issuers: ['test'] }, mcp: { resource: `${base}/mcp`, policy } },
      { name: 'json', pathPrefix: '/json', upstream: upstream.url, mcp: { resource: `${base}/json`, policy } },
      { name: 'slow', pathPrefix: '/slow', upstream: slow.url, mcp: { resource: `${base}/slow`, policy } },
      {
        name: 'limited',
        pathPrefix: '/limited',
        upstream: `${upstream.url}/json`,
        stripPrefix: true,
        mcp: { resource: `${base}/limited`, policy },
        limits: { rates: [{ by: 'key', rate: '2/30s', tool: '*' }] },
      },
    ],
    log: { level: 'info' },
  });
});

afterAll(async () => {
  await t?.stop();
  for (const s of [upstream?.server, slow?.server]) {
    s?.closeAllConnections();
    s?.close();
  }
  await idp?.close();
});

async function connect(path: string, headers: Record<string, string>): Promise<Client> {
  const client = new Client({ name: 'policy-client', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(`${base}${path}`), { requestInit: { headers } }));
  return client;
}

const keyWith = async (permissions: string[]) => (await t.keys.create({ tenant: 'acme', name: `k-${permissions.join('+')}`.slice(0, 100), permissions })).key;

describe('per-tool policy through the SDK', () => {
  for (const path of ['/mcp', '/json']) {
    it(`${path}: a key allowed one tool sees only it, calls it, and gets an MCP error for another`, async () => {
      const client = await connect(path, { 'x-api-key': await keyWith(['mcp:tools/call:search_candidates']) });
      try {
        const { tools } = await client.listTools();
        expect(tools.map((tool) => tool.name)).toEqual(['search_candidates']);
        expect(await client.callTool({ name: 'search_candidates', arguments: {} })).toMatchObject({ content: [{ type: 'text', text: 'search_candidates ran' }] });
        const before = upstream.calls.filter((c) => c === 'delete_candidate').length;
        const refused = await client.callTool({ name: 'delete_candidate', arguments: {} }).then(
          () => null,
          (error: unknown) => error,
        );
        expect(refused).toBeInstanceOf(McpError);
        expect((refused as McpError).code).toBe(-32003);
        expect((refused as McpError).message).toContain('mcp:tools/call:delete_candidate');
        expect(upstream.calls.filter((c) => c === 'delete_candidate').length).toBe(before);
        // Prompts: none held, none listed.
        expect((await client.listPrompts()).prompts).toEqual([]);
      } finally {
        await client.close();
      }
    });
  }

  it('hierarchy and wildcards: mcp:tools covers every tool, search_* the search tools, mcp:prompts/get:summary one prompt', async () => {
    const all = await connect('/json', { 'x-api-key': await keyWith(['mcp:tools']) });
    const some = await connect('/json', { 'x-api-key': await keyWith(['mcp:tools/call:search_*', 'mcp:prompts/get:summary']) });
    try {
      expect((await all.listTools()).tools.map((tool) => tool.name).sort()).toEqual([...TOOLS].sort());
      expect((await all.callTool({ name: 'delete_candidate', arguments: {} })).content).toEqual([{ type: 'text', text: 'delete_candidate ran' }]);
      expect((await some.listTools()).tools.map((tool) => tool.name).sort()).toEqual(['search_candidates', 'search_jobs']);
      expect((await some.listPrompts()).prompts.map((p) => p.name)).toEqual(['summary']);
      await expect(some.getPrompt({ name: 'secret_prompt' })).rejects.toBeInstanceOf(McpError);
      expect((await some.getPrompt({ name: 'summary' })).messages).toHaveLength(1);
    } finally {
      await all.close();
      await some.close();
    }
  });

  it("an access token whose scope is the parent mcp:tools may use every tool; one scoped to a tool only that tool", async () => {
    const broad = await idp.token(`${base}/mcp`, { claims: { org: 'acme', scope: 'mcp:tools' } });
    const narrow = await idp.token(`${base}/mcp`, { claims: { org: 'acme', scope: 'mcp:tools/call:search_jobs' } });
    const a = await connect('/mcp', { authorization: `Bearer ${broad}` });
    const b = await connect('/mcp', { authorization: `Bearer ${narrow}` });
    try {
      expect((await a.listTools()).tools).toHaveLength(3);
      expect((await b.listTools()).tools.map((tool) => tool.name)).toEqual(['search_jobs']);
      await expect(b.callTool({ name: 'search_candidates', arguments: {} })).rejects.toBeInstanceOf(McpError);
    } finally {
      await a.close();
      await b.close();
    }
  });
});

describe('messages keygate reads itself', () => {
  let key: string;
  let session: string;

  beforeAll(async () => {
    key = await keyWith(['mcp:tools/call:search_candidates', 'mcp:tools/call:search_jobs']);
    const init = await fetch(`${base}/json`, {
      method: 'POST',
      headers: { 'x-api-key': key, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-03-26', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } }),
    });
    session = init.headers.get('mcp-session-id')!;
    await init.text();
    await post([{ jsonrpc: '2.0', method: 'notifications/initialized' }]);
  });

  const post = (body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${base}/json`, { method: 'POST', headers: { 'x-api-key': key, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-session-id': session, 'mcp-protocol-version': '2025-03-26', ...headers }, body: JSON.stringify(body) });

  it('a batch mixing an allowed and a refused call: the allowed one runs, the refused one gets its error in the same answer', async () => {
    const before = upstream.calls.length;
    const res = await post([
      { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'search_jobs', arguments: {} } },
      { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'delete_candidate', arguments: {} } },
      { jsonrpc: '2.0', id: 3, method: 'tools/list' },
    ]);
    expect(res.status).toBe(200);
    const answers = (await res.json()) as { id: number; result?: { tools?: { name: string }[] }; error?: { code: number } }[];
    const byId = new Map(answers.map((a) => [a.id, a]));
    expect(byId.get(1)!.result).toBeDefined();
    expect(byId.get(2)!.error!.code).toBe(-32003);
    expect(byId.get(3)!.result!.tools!.map((tool) => tool.name).sort()).toEqual(['search_candidates', 'search_jobs']);
    expect(upstream.calls.slice(before)).toEqual(['search_jobs']);
  });

  it('Mcp-Method and Mcp-Name must say what the body says (400), and are accepted when they do', async () => {
    const call = { jsonrpc: '2.0', id: 9, method: 'tools/call', params: { name: 'search_jobs', arguments: {} } };
    const lying = await post(call, { 'mcp-method': 'tools/list' });
    expect(lying.status).toBe(400);
    expect(((await lying.json()) as { code: string }).code).toBe('bad_request');
    const wrongName = await post({ ...call, params: { name: 'delete_candidate', arguments: {} } }, { 'mcp-method': 'tools/call', 'mcp-name': 'search_jobs' });
    expect(wrongName.status).toBe(400);
    await wrongName.text();
    const honest = await post(call, { 'mcp-method': 'tools/call', 'mcp-name': 'search_jobs' });
    expect(honest.status).toBe(200);
    await honest.text();
  });

  it('bad bodies get JSON-RPC errors or problems, never reach the upstream, never crash', async () => {
    const cases: [string | Buffer, string, number][] = [
      ['{"jsonrpc":"2.0",', 'application/json', -32700],
      ['[]', 'application/json', -32600],
      ['[1,2]', 'application/json', -32600],
      ['{"jsonrpc":"2.0","id":{},"method":"x"}', 'application/json', -32600],
      ['{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}', 'application/json', -32600],
    ];
    for (const [body, type, code] of cases) {
      const res = await fetch(`${base}/json`, { method: 'POST', headers: { 'x-api-key': key, 'content-type': type, 'mcp-session-id': session }, body });
      expect(res.status, String(body)).toBe(200);
      expect(((await res.json()) as { error: { code: number } }).error.code).toBe(code);
    }
    const text = await fetch(`${base}/json`, { method: 'POST', headers: { 'x-api-key': key, 'content-type': 'text/plain' }, body: 'x' });
    expect(text.status).toBe(415);
    await text.text();
    const big = await fetch(`${base}/json`, { method: 'POST', headers: { 'x-api-key': key, 'content-type': 'application/json' }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping', params: { pad: 'x'.repeat(2 * 1024 * 1024) } }) });
    expect(big.status).toBe(413);
    await big.text();
  });

  it('an event-stream list answer is filtered event by event: the first event arrives before the second is written', async () => {
    const res = await fetch(`${base}/slow`, {
      method: 'POST',
      headers: { 'x-api-key': key, 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 5, method: 'tools/list' }),
    });
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let text = '';
    while (!text.includes('\n\n')) text += decoder.decode((await reader.read()).value, { stream: true });
    expect(text).toContain('notifications/progress');
    expect(text).not.toContain('search_candidates');
    slow.release();
    for (let r = await reader.read(); !r.done; r = await reader.read()) text += decoder.decode(r.value, { stream: true });
    const list = JSON.parse(text.split('\n').filter((l) => l.startsWith('data:') && l.includes('"id":5'))[0]!.slice(5)) as { result: { tools: { name: string }[]; note: string } };
    expect(list.result.tools.map((tool) => tool.name)).toEqual(['search_candidates', 'search_jobs']);
    expect(list.result.note).toBe('ünïcode');
  });

  it('per-tool rate limits count each tool apart', async () => {
    const client = await connect('/limited', { 'x-api-key': key });
    try {
      for (let i = 0; i < 2; i++) await client.callTool({ name: 'search_jobs', arguments: {} });
      await expect(client.callTool({ name: 'search_jobs', arguments: {} })).rejects.toThrow(/429|rate/i);
      expect((await client.callTool({ name: 'search_candidates', arguments: {} })).content).toHaveLength(1);
    } finally {
      await client.close().catch(() => {});
    }
  });

  it('decisions are counted by tool, refusals audited with the key and the tool', async () => {
    const metrics = await (await fetch(`${t.adminUrl}/metrics`)).text();
    expect(metrics).toMatch(/keygate_mcp_calls_total\{route="json",method="tools\/call",tool="delete_candidate",decision="refused"\} [1-9]/);
    expect(metrics).toMatch(/keygate_mcp_calls_total\{route="json",method="tools\/call",tool="search_jobs",decision="allowed"\} [1-9]/);
    const platform = await t.keys.create({ tenant: 'system', name: 'root', role: 'admin' });
    const entries = (await adminClient(t.adminUrl, platform.key).get('/v1/audit?limit=200')).json.entries as { action: string; target: string; detail: { needed: string } }[];
    const refused = entries.find((e) => e.action === 'mcp.refused' && e.target === 'tools/call:delete_candidate');
    expect(refused?.detail.needed).toBe('mcp:tools/call:delete_candidate');
    expect(t.logs()).not.toContain(key);
  });

  it('a flood of refused calls is counted in full but audited within a budget', async () => {
    const flood = await keyWith(['mcp:tools/call:nothing']);
    await Promise.all(
      Array.from({ length: 60 }, (_, i) =>
        fetch(`${base}/json`, { method: 'POST', headers: { 'x-api-key': flood, 'content-type': 'application/json' }, body: JSON.stringify({ jsonrpc: '2.0', id: i, method: 'tools/call', params: { name: `t${i}`, arguments: {} } }) }).then((r) => r.text()),
      ),
    );
    const platform = await t.keys.create({ tenant: 'system', name: 'root2', role: 'admin' });
    const entries = (await adminClient(t.adminUrl, platform.key).get('/v1/audit?limit=500')).json.entries as { action: string; target: string }[];
    const audited = entries.filter((e) => e.action === 'mcp.refused' && /^tools\/call:t\d+$/.test(e.target)).length;
    expect(audited).toBeGreaterThan(0);
    expect(audited).toBeLessThanOrEqual(30);
  });
});

/**
 * Sandbox keys (docs/sandbox.md), with real upstreams on loopback: a sandbox key reaches only
 * a route's sandbox upstream and a live key only the live one — on plain HTTP, WebSocket and
 * MCP routes —, a route without a sandbox upstream refuses sandbox keys (403
 * forbidden_environment) before anything reaches an upstream, the upstream learns the
 * environment from `x-auth-environment` and never from the client.
 *
 * The same checks run on one keygate, on `workers: 2` (both workers must serve them) and on
 * two instances sharing one redis-server (keys created through one, used on both). One keygate
 * also runs the MCP SDK's client and server, a signed identity, an OAuth access token and the
 * access log.
 */
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { withKeyService } from '../../src/cli/context.ts';
import { loadConfig } from '../../src/config/load.ts';
import type { RawConfig } from '../../src/config/schema.ts';
import type { CreateKeyInput } from '../../src/keys/service.ts';
import { expectProblem, rawRequest, waitFor } from '../helpers/http.ts';
import { cliKeys, startTestKeygate, type TestKeygate } from '../helpers/keygate.ts';
import { startTestIssuer, type TestIssuer } from '../helpers/oauth-issuer.ts';
import { freePorts, spawnKeygate, tempDir, type KeygateProcess, type TempDir } from '../helpers/process.ts';
import { startRedisPair, type RedisPair } from '../helpers/redis-fixture.ts';
import { startUpstream, type Received, type TestUpstream } from '../helpers/upstream.ts';
import { connectWs, echo, startWsUpstream, type WsUpstream } from '../helpers/ws-upstream.ts';
import { TEST_PEPPER } from '../helpers/pepper.ts';

const ENV = 'x-auth-environment';
const RESOURCE = 'https://mcp.example.com';

let liveHttp: TestUpstream;
let sandboxHttp: TestUpstream;
let liveWs: WsUpstream;
let sandboxWs: WsUpstream;
let seq = 0;

beforeAll(async () => {
  [liveHttp, sandboxHttp, liveWs, sandboxWs] = await Promise.all([startUpstream(), startUpstream(), startWsUpstream(), startWsUpstream()]);
});

afterAll(async () => {
  await Promise.all([liveHttp?.close(), sandboxHttp?.close(), liveWs?.close(), sandboxWs?.close()]);
});

/** Routes with and without a sandbox upstream, of each kind. */
function routes(): NonNullable<RawConfig['routes']> {
  return [
    { name: 'api', pathPrefix: '/api', upstream: liveHttp.url, sandbox: { upstream: sandboxHttp.url } },
    { name: 'live-only', pathPrefix: '/live', upstream: liveHttp.url },
    { name: 'ws', pathPrefix: '/ws', upstream: liveWs.url, sandbox: { upstream: sandboxWs.url }, websocket: true },
    { name: 'ws-live', pathPrefix: '/wslive', upstream: liveWs.url, websocket: true },
    { name: 'mcp', pathPrefix: '/mcp', upstream: liveHttp.url, sandbox: { upstream: sandboxHttp.url }, mcp: { resource: `${RESOURCE}/mcp` } },
    { name: 'mcp-live', pathPrefix: '/mcplive', upstream: liveHttp.url, mcp: { resource: `${RESOURCE}/mcplive` } },
  ];
}

/** The values of `name` the upstream received, every copy, any spelling (`_` for `-` too). */
function values(received: { rawHeaders?: string[]; headers: IncomingHttpHeaders }, name: string): string[] {
  if (received.rawHeaders === undefined) {
    const v = received.headers[name];
    return v === undefined ? [] : [v].flat();
  }
  const out: string[] = [];
  for (let i = 0; i < received.rawHeaders.length; i += 2) if (received.rawHeaders[i]!.toLowerCase().replaceAll('_', '-') === name) out.push(received.rawHeaders[i + 1]!);
  return out;
}

const at = (list: Received[], url: string) => list.filter((r) => r.url === url);
const upgradesAt = (ws: WsUpstream, url: string) => [...ws.upgrades.filter((u) => u.url === url), ...ws.requests.filter((u) => u.url === url)];
const wsUrl = (base: string, path: string) => `${base.replace('http:', 'ws:')}${path}`;

interface Keys {
  live: string;
  sandbox: string;
}

/** Every check, through the keygate at `base`. */
async function checkAll(base: string, keys: Keys, label: string): Promise<void> {
  const tag = `${label}-${++seq}`;

  // ---- plain HTTP ----
  // A live key reaches the live upstream only, even claiming to be a sandbox one.
  let path = `/api/${tag}-live`;
  let res = await rawRequest(base, { path, headers: ['X-Api-Key', keys.live, 'X-Auth-Environment', 'sandbox', 'x_auth_environment', 'sandbox'] });
  expect(res.status, `${label} ${path}`).toBe(200);
  expect(at(sandboxHttp.received, path)).toEqual([]);
  expect(at(liveHttp.received, path)).toHaveLength(1);
  expect(values(at(liveHttp.received, path)[0]!, ENV)).toEqual(['live']);

  // A sandbox key reaches the sandbox upstream only, even claiming to be a live one.
  path = `/api/${tag}-sandbox`;
  res = await rawRequest(base, { path, headers: ['Authorization', `Bearer ${keys.sandbox}`, 'X-Auth-Environment', 'live', 'X_AUTH_ENVIRONMENT', 'live'] });
  expect(res.status, `${label} ${path}`).toBe(200);
  expect(at(liveHttp.received, path)).toEqual([]);
  expect(at(sandboxHttp.received, path)).toHaveLength(1);
  const seen = at(sandboxHttp.received, path)[0]!;
  expect(values(seen, ENV)).toEqual(['sandbox']);
  expect(values(seen, 'x-tenant-id')).toEqual(['acme']);
  expect(values(seen, 'authorization')).toEqual([]);

  // A route without a sandbox upstream refuses sandbox keys; nothing reaches any upstream.
  path = `/live/${tag}`;
  res = await rawRequest(base, { path, headers: { 'x-api-key': keys.sandbox } });
  expectProblem(res, 403, 'forbidden_environment');
  expect(res.json.detail).toMatch(/sandbox upstream/);
  expect(at(liveHttp.received, path)).toEqual([]);
  expect(at(sandboxHttp.received, path)).toEqual([]);
  res = await rawRequest(base, { path, headers: { 'x-api-key': keys.live } });
  expect(res.status).toBe(200);
  expect(values(at(liveHttp.received, path)[0]!, ENV)).toEqual(['live']);

  // ---- WebSocket ----
  path = `/ws/${tag}-sandbox`;
  let opened = await connectWs(wsUrl(base, path), { 'x-api-key': keys.sandbox, 'x-auth-environment': 'live' });
  expect(opened.ws, `${label} ${path}: ${opened.body}`).not.toBeNull();
  expect(await echo(opened.ws!, 'hello sandbox')).toBe('hello sandbox');
  opened.ws!.close();
  expect(upgradesAt(liveWs, path)).toEqual([]);
  expect(upgradesAt(sandboxWs, path)).toHaveLength(1);
  expect(values(upgradesAt(sandboxWs, path)[0]!, ENV)).toEqual(['sandbox']);

  path = `/ws/${tag}-live`;
  opened = await connectWs(wsUrl(base, path), { 'x-api-key': keys.live, 'x-auth-environment': 'sandbox' });
  expect(opened.ws, `${label} ${path}: ${opened.body}`).not.toBeNull();
  expect(await echo(opened.ws!, 'hello live')).toBe('hello live');
  opened.ws!.close();
  expect(upgradesAt(sandboxWs, path)).toEqual([]);
  expect(upgradesAt(liveWs, path)).toHaveLength(1);
  expect(values(upgradesAt(liveWs, path)[0]!, ENV)).toEqual(['live']);

  path = `/wslive/${tag}`;
  opened = await connectWs(wsUrl(base, path), { 'x-api-key': keys.sandbox });
  expect(opened.ws).toBeNull();
  expect(opened.status).toBe(403);
  expect(opened.headers?.['content-type']).toBe('application/problem+json');
  expect(JSON.parse(opened.body!).code).toBe('forbidden_environment');
  expect(upgradesAt(liveWs, path)).toEqual([]);
  expect(upgradesAt(sandboxWs, path)).toEqual([]);

  // ---- MCP (Streamable HTTP at the HTTP level: a JSON-RPC POST) ----
  const initialize = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 't', version: '1' } } });
  const mcp = (p: string, key: string) =>
    rawRequest(base, { method: 'POST', path: p, headers: { 'x-api-key': key, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'x-auth-environment': 'forged' }, body: initialize });
  for (const [environment, key, mine, other] of [
    ['sandbox', keys.sandbox, sandboxHttp, liveHttp],
    ['live', keys.live, liveHttp, sandboxHttp],
  ] as const) {
    path = `/mcp/${tag}-${environment}`;
    res = await mcp(path, key);
    expect(res.status, `${label} ${path}`).toBe(200);
    expect(res.json.method).toBe('POST');
    expect(at(other.received, path)).toEqual([]);
    expect(at(mine.received, path)).toHaveLength(1);
    expect(values(at(mine.received, path)[0]!, ENV)).toEqual([environment]);
  }
  path = `/mcplive/${tag}`;
  res = await mcp(path, keys.sandbox);
  expectProblem(res, 403, 'forbidden_environment');
  expect(at(liveHttp.received, path)).toEqual([]);
  expect(at(sandboxHttp.received, path)).toEqual([]);
}

// ---- one keygate ------------------------------------------------------------------------

describe('one keygate', () => {
  let t: TestKeygate;
  let idp: TestIssuer;
  let keys: Keys;

  beforeAll(async () => {
    idp = await startTestIssuer();
    t = await startTestKeygate({
      oauth: { issuers: [{ name: 'test', issuer: idp.issuer, jwksUri: idp.jwksUri, claims: { tenant: 'org' } }] },
      routes: [
        ...routes(),
        { name: 'signed', pathPrefix: '/signed', upstream: liveHttp.url, sandbox: { upstream: sandboxHttp.url }, signedIdentity: {} },
        { name: 'tokens', pathPrefix: '/tokens', upstream: liveHttp.url, sandbox: { upstream: sandboxHttp.url }, auth: { issuers: ['test'] }, mcp: { resource: `${RESOURCE}/tokens` } },
        { name: 'pub', pathPrefix: '/pub', upstream: liveHttp.url, auth: { required: false } },
      ],
    });
    keys = {
      live: (await t.keys.create({ tenant: 'acme', name: 'live' })).key,
      sandbox: (await t.keys.create({ tenant: 'acme', name: 'sandbox', environment: 'sandbox' })).key,
    };
    expect(keys.sandbox).toMatch(/^kg_sandbox_acme_/);
  });

  afterAll(async () => {
    await t?.stop();
    await idp?.close();
  });

  it('live keys reach live upstreams only, sandbox keys sandbox upstreams only, on HTTP, WebSocket and MCP routes', async () => {
    await checkAll(t.url, keys, 'one');
  });

  it('the access log says which environment each request was for', async () => {
    const path = `/api/logged-${++seq}`;
    await rawRequest(t.url, { path, headers: { 'x-api-key': keys.sandbox } });
    await rawRequest(t.url, { path: `/live/logged-${seq}`, headers: { 'x-api-key': keys.sandbox } });
    const lines = await waitFor(() => {
      const found = t
        .logs()
        .split('\n')
        .filter((l) => l.includes(`logged-${seq}`))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      return found.length === 2 ? found : null;
    });
    expect(lines.map((l) => [l.route, l.status, l.code, l.environment])).toEqual([
      ['api', 200, null, 'sandbox'],
      ['live-only', 403, 'forbidden_environment', 'sandbox'],
    ]);
  });

  it('a signed identity carries env, for the upstream it goes to', async () => {
    const decode = (jws: string) => JSON.parse(Buffer.from(jws.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
    for (const [key, environment, upstream] of [
      [keys.sandbox, 'sandbox', sandboxHttp],
      [keys.live, 'live', liveHttp],
    ] as const) {
      const path = `/signed/${environment}-${++seq}`;
      expect((await rawRequest(t.url, { path, headers: { 'x-api-key': key } })).status).toBe(200);
      const claims = decode(values(at(upstream.received, path)[0]!, 'x-keygate-identity')[0]!);
      expect(claims).toMatchObject({ env: environment, aud: upstream.url, tenant: 'acme' });
    }
  });

  it('an OAuth access token is live: the live upstream, x-auth-environment live', async () => {
    const token = await idp.token(`${RESOURCE}/tokens`, { claims: { org: 'acme', scope: 'mcp:use' } });
    const path = `/tokens/${++seq}`;
    const res = await rawRequest(t.url, { path, headers: { authorization: `Bearer ${token}`, 'x-auth-environment': 'sandbox' } });
    expect(res.status, res.body).toBe(200);
    expect(at(sandboxHttp.received, path)).toEqual([]);
    expect(values(at(liveHttp.received, path)[0]!, ENV)).toEqual(['live']);
  });

  it('public routes are unaffected: no environment is set, a client copy is still dropped, the key is not forwarded', async () => {
    const path = `/pub/${++seq}`;
    const res = await rawRequest(t.url, { path, headers: { 'x-api-key': keys.sandbox, 'x-auth-environment': 'sandbox' } });
    expect(res.status).toBe(200);
    const seen = at(liveHttp.received, path)[0]!;
    expect(values(seen, ENV)).toEqual([]);
    expect(values(seen, 'x-api-key')).toEqual([]);
  });

  it('admin API: environment in the create body and the list filter; bad values are 422 naming the field', async () => {
    const admin = (await t.keys.create({ tenant: 'system', role: 'admin', name: 'root' })).key;
    const call = async (method: string, path: string, body?: unknown) => {
      const res = await fetch(`${t.adminUrl}${path}`, { method, headers: { 'x-api-key': admin, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
      const text = await res.text();
      return { status: res.status, headers: res.headers, text, json: JSON.parse(text) };
    };
    const created = await call('POST', '/v1/keys', { tenant: 'globex', name: 'try', environment: 'sandbox' });
    expect(created.status, created.text).toBe(201);
    expect(created.json).toMatchObject({ tenant: 'globex', environment: 'sandbox' });
    expect(created.json.key).toMatch(/^kg_sandbox_globex_[0-9a-f]{64}$/);
    const plain = await call('POST', '/v1/keys', { tenant: 'globex', name: 'prod' });
    expect(plain.json.environment).toBe('live');
    const bad = await call('POST', '/v1/keys', { tenant: 'globex', name: 'x', environment: 'staging' });
    expectProblem(bad, 422, 'validation_failed');
    expect(bad.json.detail).toContain('body.environment: must be "live" or "sandbox"');

    const names = async (query: string) => ((await call('GET', `/v1/keys?tenant=globex${query}`)).json.keys as { name: string; environment: string }[]).map((k) => `${k.name}:${k.environment}`).sort();
    expect(await names('')).toEqual(['prod:live', 'try:sandbox']);
    expect(await names('&environment=sandbox')).toEqual(['try:sandbox']);
    expect(await names('&environment=live')).toEqual(['prod:live']);
    const badQuery = await call('GET', '/v1/keys?environment=Sandbox');
    expectProblem(badQuery, 422, 'validation_failed');
    expect(badQuery.json.detail).toContain('query.environment: must be "live" or "sandbox"');

    const openapi = (await (await fetch(`${t.adminUrl}/openapi.json`)).json()) as { components: { schemas: Record<string, { properties: Record<string, { enum?: string[] }> }> } };
    expect(openapi.components.schemas.CreateKey?.properties.environment?.enum).toEqual(['live', 'sandbox']);
    expect(openapi.components.schemas.Key?.properties.environment?.enum).toEqual(['live', 'sandbox']);
  });

  it('the MCP SDK client reaches the sandbox MCP server with a sandbox key, the live one with a live key', async () => {
    const live = await startMcpUpstream('live-server');
    const sandbox = await startMcpUpstream('sandbox-server');
    const mcp = await startTestKeygate({
      routes: [
        { name: 'mcp', pathPrefix: '/mcp', upstream: live.url, sandbox: { upstream: sandbox.url }, auth: { permissions: ['mcp:use'] }, mcp: { resource: `${RESOURCE}/mcp` } },
        { name: 'mcp-live', pathPrefix: '/only', upstream: `${live.url}/mcp`, stripPrefix: true, auth: { permissions: ['mcp:use'] }, mcp: { resource: `${RESOURCE}/only` } },
      ],
    });
    try {
      const liveKey = (await mcp.keys.create({ tenant: 'acme', name: 'agent', permissions: ['mcp:use'] })).key;
      const sandboxKey = (await mcp.keys.create({ tenant: 'acme', name: 'agent-sandbox', permissions: ['mcp:use'], environment: 'sandbox' })).key;
      const whoami = async (path: string, key: string) => {
        const transport = new StreamableHTTPClientTransport(new URL(`${mcp.url}${path}`), { requestInit: { headers: { 'x-api-key': key } } });
        const client = new Client({ name: 'sandbox-test', version: '1.0.0' });
        await client.connect(transport);
        try {
          const result = await client.callTool({ name: 'whoami', arguments: {} });
          return { server: client.getServerVersion()?.name, text: (result.content as { text: string }[])[0]!.text };
        } finally {
          await transport.terminateSession();
          await client.close();
        }
      };
      expect(await whoami('/mcp', sandboxKey)).toEqual({ server: 'sandbox-server', text: 'sandbox-server sees sandbox' });
      expect(await whoami('/mcp', liveKey)).toEqual({ server: 'live-server', text: 'live-server sees live' });
      expect(await whoami('/only', liveKey)).toEqual({ server: 'live-server', text: 'live-server sees live' });
      // Every request of the sandbox session (POST, GET stream, DELETE) went to the sandbox server only.
      expect(sandbox.seen.length).toBeGreaterThanOrEqual(3);
      expect(sandbox.seen.every((h) => h[ENV] === 'sandbox')).toBe(true);
      expect(live.seen.every((h) => h[ENV] === 'live')).toBe(true);
      const before = live.seen.length;
      const client = new Client({ name: 'sandbox-test', version: '1.0.0' });
      await expect(client.connect(new StreamableHTTPClientTransport(new URL(`${mcp.url}/only`), { requestInit: { headers: { 'x-api-key': sandboxKey } } }))).rejects.toThrow(/403|forbidden_environment/);
      expect(live.seen.length).toBe(before);
    } finally {
      await mcp.stop();
      await Promise.all([live.close(), sandbox.close()]);
    }
  });
});

/** An MCP SDK server (Streamable HTTP, stateful) whose one tool says which server it is and which environment it was told. */
async function startMcpUpstream(name: string): Promise<{ url: string; seen: IncomingHttpHeaders[]; close(): Promise<void> }> {
  const seen: IncomingHttpHeaders[] = [];
  const sessions = new Map<string, StreamableHTTPServerTransport>();
  const server: Server = createServer((req, res) => {
    seen.push(req.headers);
    void (async () => {
      const id = req.headers['mcp-session-id'];
      let transport = typeof id === 'string' ? sessions.get(id) : undefined;
      if (transport === undefined) {
        const created: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
          sessionIdGenerator: () => randomUUID(),
          onsessioninitialized: (sid) => void sessions.set(sid, created),
          onsessionclosed: (sid) => void sessions.delete(sid),
        });
        transport = created;
        const mcp = new McpServer({ name, version: '1.0.0' });
        mcp.registerTool('whoami', { description: 'names the server and the environment keygate sent', inputSchema: { x: z.string().optional() } }, async (_args, extra) => ({
          content: [{ type: 'text', text: `${name} sees ${String(extra.requestInfo?.headers[ENV])}` }],
        }));
        await mcp.connect(transport);
      }
      await transport.handleRequest(req, res);
    })().catch((error: unknown) => {
      if (!res.headersSent) res.writeHead(500).end(String(error));
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

// ---- workers: 2 ---------------------------------------------------------------------------

describe('workers: 2 on the embedded store', () => {
  let dir: TempDir;
  let serve: KeygateProcess;
  let keys: Keys;

  beforeAll(async () => {
    dir = tempDir('keygate-sandbox-workers-');
    const [listen, admin] = (await freePorts(2)) as [number, number];
    const file = dir.writeYaml('keygate.yaml', {
      workers: 2,
      listen: { host: '127.0.0.1', port: listen },
      admin: { host: '127.0.0.1', port: admin },
      store: { path: `${dir.path}/data/keygate.db`, pollMs: 100 },
      log: { level: 'info' },
      shutdown: { graceMs: 1000 },
      routes: routes(),
    });
    serve = await spawnKeygate(file, { timeoutMs: 20_000 });
    await waitFor(() => new Set(serve.logLines().filter((l) => l.msg === 'keygate listening').map((l) => l.pid)).size === 2, 15_000, 20);
    // Created the way `keygate keys create` does, against the workers' config and database.
    const io = { out: () => {}, err: () => {}, env: { KEYGATE_PEPPER: TEST_PEPPER }, stdin: process.stdin };
    keys = await withKeyService(loadConfig(file, io.env), io, async (service) => {
      const make = async (input: CreateKeyInput) => (await cliKeys(service).create(input)).key;
      return { live: await make({ tenant: 'acme', name: 'live' }), sandbox: await make({ tenant: 'acme', name: 'sandbox', environment: 'sandbox' }) };
    });
  });

  afterAll(async () => {
    await serve?.stop('SIGTERM', 5000);
    dir?.remove();
  });

  it('both workers keep the environments apart (every request on a new connection)', async () => {
    // Both workers served sandbox keys to the sandbox upstream and refused them on live-only routes.
    // The kernel picks the worker per connection: rounds go on until each has answered both.
    const bothWorkers = () => {
      const access = serve.logLines().filter((l) => l.msg === 'request' && l.environment === 'sandbox');
      const by = (route: string, status: number) => new Set(access.filter((l) => l.route === route && l.status === status).map((l) => l.pid));
      return by('api', 200).size === 2 && by('live-only', 403).size === 2 ? access : null;
    };
    for (let round = 0; round < 40 && bothWorkers() === null; round++) await checkAll(serve.url, keys, `workers${round}`);
    const lines = await waitFor(bothWorkers, 5000, 50);
    expect(lines.length).toBeGreaterThan(0);
  });
});

// ---- two instances on one Redis ---------------------------------------------------------

describe('two instances sharing Redis', () => {
  let pair: RedisPair<TestKeygate>;
  let keys: Keys;

  beforeAll(async () => {
    pair = await startRedisPair<TestKeygate>({ config: (store) => ({ store, routes: routes(), log: { level: 'warn', access: false } }) });
    keys = {
      live: (await pair.a.keys.create({ tenant: 'acme', name: 'live' })).key,
      sandbox: (await pair.a.keys.create({ tenant: 'acme', name: 'sandbox', environment: 'sandbox' })).key,
    };
  });

  afterAll(async () => {
    await pair?.stop();
  });

  it('keys created through one instance keep their environment on both', async () => {
    await checkAll(pair.b.url, keys, 'redis-b');
    await checkAll(pair.a.url, keys, 'redis-a');
    expect((await pair.b.keys.list({ tenant: 'acme' })).map((r) => [r.name, r.environment]).sort()).toEqual([
      ['live', 'live'],
      ['sandbox', 'sandbox'],
    ]);
  });
});

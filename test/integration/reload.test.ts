/**
 * Hot reload (issue 8), in process: keygate started through `startKeygate` with a
 * `reloadConfig` that returns whatever config the test last put in place. Routes added,
 * removed and changed apply at once; permission groups change a key's access (cached
 * identities included); identity header names change, spoofed copies of the new names are
 * still dropped; an invalid config throws and the old one stays in force; a request in
 * flight finishes on the route it started on; settings bound at start come back as
 * `restartNeeded` and keep their running values. POST /v1/reload: platform admins only,
 * 422 for an invalid config, 409 on a keygate that has nothing to reload.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../src/config/load.ts';
import type { RawConfig } from '../../src/config/schema.ts';
import { CLI_CALLER } from '../../src/keys/service.ts';
import { createLoggers } from '../../src/observability/logger.ts';
import { startKeygate, type Keygate } from '../../src/server.ts';
import { call } from '../helpers/admin.ts';
import { expectProblem, logLines, rawRequest, type RawResponse, waitFor } from '../helpers/http.ts';
import { captureStream, startTestKeygate } from '../helpers/keygate.ts';
import { freePorts } from '../helpers/process.ts';
import { startUpstream, type Handler, type TestUpstream } from '../helpers/upstream.ts';
import { TEST_PEPPER } from '../helpers/pepper.ts';

/** An upstream that says which one it is and what it received. */
const tagged =
  (which: string): Handler =>
  (req, res) => {
    req.resume();
    req.on('end', () => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ which, url: req.url, headers: req.headers }));
    });
  };

const SLOW_MS = 800;
/** 64 KB, so "the full body" means more than one chunk. */
const SLOW_BODY = 'slow-'.repeat(13_108);

let dir: string;
let upA: TestUpstream;
let upB: TestUpstream;
let slow: TestUpstream;
let keygate: Keygate;
let proxy: string;
let admin: string;
let logs: () => string;
/** What the next reload reads: a raw config (validated then) or an error to throw. */
let nextRaw: RawConfig;
let reader: string;
let plain: string;
let root: string;
let manager: string;

function base(): RawConfig {
  return {
    listen: { host: '127.0.0.1', port: 0 },
    admin: { host: '127.0.0.1', port: 0 },
    store: { path: join(dir, 'keygate.db'), pollMs: 50 },
    log: { level: 'info' },
    permissionGroups: { readers: ['alpha:read'] },
    routes: [
      { name: 'alpha', pathPrefix: '/alpha', upstream: upA.url, auth: { permissions: ['alpha:read'] } },
      { name: 'beta', pathPrefix: '/beta', upstream: upA.url, auth: { required: false } },
      { name: 'slow', pathPrefix: '/slow', upstream: slow.url, auth: { required: false } },
    ],
  };
}

/** `base()` with its routes replaced. */
function withRoutes(routes: NonNullable<RawConfig['routes']>): RawConfig {
  return { ...base(), routes };
}

function get(path: string, key?: string, headers: Record<string, string> = {}): Promise<RawResponse> {
  return rawRequest(proxy, { path, headers: key === undefined ? headers : { 'x-api-key': key, ...headers } });
}

/** 'connected', or the error code of a TCP connect to 127.0.0.1:port. */
function connectResult(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
  });
}

/** Puts `raw` in place and reloads. */
function reloadWith(raw: RawConfig) {
  nextRaw = raw;
  return keygate.reload();
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'keygate-reload-'));
  [upA, upB, slow] = await Promise.all([
    startUpstream(tagged('A')),
    startUpstream(tagged('B')),
    startUpstream((req, res) => {
      req.resume();
      setTimeout(() => {
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(SLOW_BODY) });
        res.end(SLOW_BODY);
      }, SLOW_MS);
    }),
  ]);
  nextRaw = base();
  const capture = captureStream();
  const loggers = createLoggers({ level: 'info', destination: capture.stream });
  logs = capture.text;
  keygate = await startKeygate({
    config: parseConfig(base(), 'test'),
    env: { KEYGATE_PEPPER: TEST_PEPPER },
    logger: loggers.logger,
    accessLogger: loggers.access,
    reloadConfig: () => parseConfig(nextRaw, 'reload-test'),
  });
  proxy = `http://127.0.0.1:${keygate.proxyPort}`;
  admin = `http://127.0.0.1:${keygate.adminPort}`;
  const create = async (input: Parameters<Keygate['service']['create']>[1]) => (await keygate.service.create(CLI_CALLER, input)).key;
  [reader, plain, root, manager] = await Promise.all([
    create({ tenant: 'acme', name: 'reader', group: 'readers' }),
    create({ tenant: 'acme', name: 'plain', permissions: ['other'] }),
    create({ tenant: 'system', name: 'root', role: 'admin' }),
    create({ tenant: 'acme', name: 'manager', permissions: ['keys:manage'] }),
  ]);
});

afterAll(async () => {
  await keygate?.close(500);
  await Promise.all([upA?.close(), upB?.close(), slow?.close()]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

// Every test starts from the base config.
beforeEach(() => {
  reloadWith(base());
});

describe('keygate.reload()', () => {
  it('the base config serves as expected (the baseline the other tests change)', async () => {
    const alpha = await get('/alpha/x', reader);
    expect(alpha.status, alpha.body).toBe(200);
    expect(alpha.json.which).toBe('A');
    expect((await get('/alpha/x', plain)).status).toBe(403);
    expect((await get('/beta/x')).json.which).toBe('A');
    expect((await get('/gamma/x')).status).toBe(404);
    // Reloading an unchanged file changes nothing.
    expect(reloadWith(base())).toEqual({ applied: [], restartNeeded: [] });
  });

  it('routes added, removed and changed take effect at once', async () => {
    const result = reloadWith(
      withRoutes([
        // changed: another upstream, another permission
        { name: 'alpha', pathPrefix: '/alpha', upstream: upB.url, auth: { permissions: ['other'] } },
        // beta removed; gamma added
        { name: 'gamma', pathPrefix: '/gamma', upstream: upA.url, auth: { required: false } },
        { name: 'slow', pathPrefix: '/slow', upstream: slow.url, auth: { required: false } },
      ]),
    );
    expect(result).toEqual({ applied: ['routes'], restartNeeded: [] });
    expect(keygate.config.routes.map((r) => r.name)).toEqual(['alpha', 'gamma', 'slow']);

    const alphaPlain = await get('/alpha/x', plain);
    expect(alphaPlain.status, alphaPlain.body).toBe(200);
    expect(alphaPlain.json.which).toBe('B');
    const alphaReader = await get('/alpha/x', reader);
    expect(alphaReader.status).toBe(403);
    expect(alphaReader.json.code).toBe('forbidden_permission');

    const beta = await get('/beta/x');
    expect(beta.status).toBe(404);
    expect(beta.json.code).toBe('no_route');

    const gamma = await get('/gamma/y?q=1');
    expect(gamma.status, gamma.body).toBe(200);
    expect(gamma.json).toMatchObject({ which: 'A', url: '/gamma/y?q=1' });

    // The new route has its own metrics label.
    const metrics = await (await fetch(`${admin}/metrics`)).text();
    expect(metrics).toMatch(/keygate_requests_total\{route="gamma",status_class="2xx",outcome="public"\} [1-9]/);

    // And back: beta answers again, gamma is gone.
    reloadWith(base());
    expect((await get('/beta/x')).status).toBe(200);
    expect((await get('/gamma/x')).status).toBe(404);
  });

  it("permission groups change a key's access (cached identities included)", async () => {
    const before = await get('/alpha/x', reader);
    expect(before.status, before.body).toBe(200);
    expect(before.json.headers['x-auth-permissions']).toBe('alpha:read');

    // The key is now cached with the old group; the reload must not let that copy through.
    const result = reloadWith({ ...base(), permissionGroups: { readers: ['other', 'more'] } });
    expect(result).toEqual({ applied: ['permissionGroups'], restartNeeded: [] });
    const denied = await get('/alpha/x', reader);
    expect(denied.status, denied.body).toBe(403);
    expect(denied.json.code).toBe('forbidden_permission');
    expect(keygate.config.permissionGroups).toEqual({ readers: ['other', 'more'] });

    const publicRoute = await get('/beta/x', reader);
    expect(publicRoute.status).toBe(200);

    reloadWith({ ...base(), permissionGroups: { readers: ['alpha:read', 'extra'] } });
    const after = await get('/alpha/x', reader);
    expect(after.status, after.body).toBe(200);
    expect(after.json.headers['x-auth-permissions'].split(',').sort()).toEqual(['alpha:read', 'extra']);
  });

  it('identity header names change; client copies of the new names are still dropped', async () => {
    const before = await get('/alpha/x', reader);
    expect(before.json.headers['x-tenant-id']).toBe('acme');

    const result = reloadWith({ ...base(), headers: { tenant: 'x-org', keyId: 'x-kid' } });
    expect(result).toEqual({ applied: ['headers'], restartNeeded: [] });
    const after = await get('/alpha/x', reader, { 'x-org': 'spoofed', 'x-kid': 'spoofed' });
    expect(after.status, after.body).toBe(200);
    const headers = after.json.headers;
    expect(headers['x-org']).toBe('acme');
    expect(headers['x-kid']).toMatch(/^key_/);
    expect(headers['x-tenant-id']).toBeUndefined();
    expect(headers['x-api-key-id']).toBeUndefined();
    expect(headers['x-auth-role']).toBe('api-user');
    // Exactly one copy each: the client's were removed.
    const raw = upA.received.at(-1)!.rawHeaders;
    expect(raw.filter((_, i) => i % 2 === 0 && raw[i]!.toLowerCase() === 'x-org')).toHaveLength(1);
    expect(raw.filter((_, i) => i % 2 === 0 && raw[i]!.toLowerCase() === 'x-kid')).toHaveLength(1);
  });

  it('forwarded.trustClient applies at once', async () => {
    const before = await get('/beta/x', undefined, { 'x-forwarded-for': '203.0.113.9' });
    expect(before.json.headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(reloadWith({ ...base(), forwarded: { trustClient: true } })).toEqual({ applied: ['forwarded'], restartNeeded: [] });
    const after = await get('/beta/x', undefined, { 'x-forwarded-for': '203.0.113.9' });
    expect(after.json.headers['x-forwarded-for']).toBe('203.0.113.9, 127.0.0.1');
  });

  it('an invalid config throws and the old one stays in force', async () => {
    const running = keygate.config;
    const bad = withRoutes([
      { name: 'alpha', pathPrefix: '/alpha', upstream: 'ftp://example.com' },
      { name: 'gamma', pathPrefix: '/gamma', upstream: upB.url, auth: { required: false } },
    ]);
    let thrown: unknown;
    try {
      reloadWith(bad);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(ConfigError);
    expect((thrown as ConfigError).problems.join('\n')).toContain('routes[0].upstream');

    // Duplicate route names: also refused (a cross-field rule, not just a field's type).
    expect(() => reloadWith(withRoutes([...(base().routes ?? []), { name: 'beta', pathPrefix: '/other', upstream: upB.url }]))).toThrow(ConfigError);

    expect(keygate.config).toBe(running);
    expect((await get('/alpha/x', reader)).json.which).toBe('A');
    expect((await get('/beta/x')).status).toBe(200);
    expect((await get('/gamma/x')).status).toBe(404);
  });

  it('a request in flight during a reload finishes on its route, its connection not dropped', async () => {
    const before = slow.received.length;
    const inFlight = get('/slow/long');
    await waitFor(() => slow.received.length > before, 2000);
    // Mid-request, the route now points at another upstream, and a new route appears.
    const result = reloadWith(
      withRoutes([...(base().routes ?? []).filter((r) => r.name !== 'slow'), { name: 'slow', pathPrefix: '/slow', upstream: upB.url, auth: { required: false } }]),
    );
    expect(result.applied).toEqual(['routes']);
    const started = Date.now();
    const res = await inFlight;
    expect(Date.now() - started).toBeGreaterThan(SLOW_MS / 4); // it really was still in flight
    expect(res.status).toBe(200);
    expect(res.body.length).toBe(SLOW_BODY.length);
    expect(res.body).toBe(SLOW_BODY);
    // The next request takes the new route.
    const next = await get('/slow/long');
    expect(next.json.which).toBe('B');
  });

  it('a route removed while a request on it is in flight: that request still completes', async () => {
    const before = slow.received.length;
    const inFlight = get('/slow/gone');
    await waitFor(() => slow.received.length > before, 2000);
    reloadWith(withRoutes((base().routes ?? []).filter((r) => r.name !== 'slow')));
    const res = await inFlight;
    expect(res.status).toBe(200);
    expect(res.body).toBe(SLOW_BODY);
    expect((await get('/slow/gone')).status).toBe(404);
  });

  it('listen, cache, log, shutdown… come back as restartNeeded and keep their running values', async () => {
    const [otherPort] = (await freePorts(1)) as [number];
    const running = keygate.config;
    const result = reloadWith({
      ...base(),
      listen: { host: '127.0.0.1', port: otherPort },
      cache: { max: 7 },
      log: { level: 'debug', access: false },
      shutdown: { graceMs: 1234 },
      routes: [...(base().routes ?? []), { name: 'gamma', pathPrefix: '/gamma', upstream: upA.url, auth: { required: false } }],
    });
    expect(result.applied).toEqual(['routes']);
    expect([...result.restartNeeded].sort()).toEqual(['cache', 'listen', 'log', 'shutdown']);
    // The live part applied …
    expect((await get('/gamma/x')).status).toBe(200);
    // … the rest did not.
    expect(keygate.config.listen).toEqual(running.listen);
    expect(keygate.config.cache).toEqual(running.cache);
    expect(keygate.config.log).toEqual(running.log);
    expect(keygate.config.shutdown.graceMs).toBe(10_000);
    expect(await connectResult(otherPort)).toBe('ECONNREFUSED');
    // log.access stays on: this request is logged.
    const count = () => logLines(logs()).filter((l) => l.log === 'access' && l.route === 'gamma').length;
    const seen = count();
    await get('/gamma/y');
    await waitFor(() => count() > seen, 2000);

    const lines = logLines(logs());
    const reloaded = lines.filter((l) => l.msg === 'configuration reloaded').at(-1)!;
    expect(reloaded).toMatchObject({ level: 'info', applied: ['routes'], routes: ['alpha', 'beta', 'slow', 'gamma'] });
    const warning = lines.filter((l) => l.msg === 'these config changes take effect only after a restart').at(-1)!;
    expect(warning.level).toBe('warn');
    expect([...(warning.sections as string[])].sort()).toEqual(['cache', 'listen', 'log', 'shutdown']);
  });
});

describe('POST /v1/reload', () => {
  const withGamma = (): RawConfig => withRoutes([...(base().routes ?? []), { name: 'gamma', pathPrefix: '/gamma', upstream: upB.url, auth: { required: false } }]);

  it('a platform admin reloads: 200 {applied, restartNeeded}, and the change applies', async () => {
    nextRaw = { ...withGamma(), cache: { max: 9 } };
    const res = await call(admin, 'POST', '/v1/reload', { key: root });
    expect(res.status, res.text).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(res.json).toEqual({ applied: ['routes'], restartNeeded: ['cache'] });
    const gamma = await get('/gamma/x');
    expect(gamma.status).toBe(200);
    expect(gamma.json.which).toBe('B');
  });

  it("a tenant's keys:manage key gets 403, and nothing is reloaded", async () => {
    nextRaw = withGamma();
    const res = await call(admin, 'POST', '/v1/reload', { key: manager });
    expectProblem(res, 403, 'forbidden');
    expect((await get('/gamma/x')).status).toBe(404);
  });

  it('no key: 401; a key that may not use the admin API: 403; nothing is reloaded', async () => {
    nextRaw = withGamma();
    expectProblem(await call(admin, 'POST', '/v1/reload'), 401, 'missing_credentials');
    expectProblem(await call(admin, 'POST', '/v1/reload', { key: plain }), 403, 'forbidden');
    expect((await get('/gamma/x')).status).toBe(404);
  });

  it('an invalid config: 422 naming the field, and the old config stays in force', async () => {
    nextRaw = withRoutes([{ name: 'alpha', pathPrefix: 'no-slash', upstream: upB.url }]);
    const res = await call(admin, 'POST', '/v1/reload', { key: root });
    expectProblem(res, 422, 'validation_failed');
    expect(res.json.detail).toContain('routes[0].pathPrefix');
    expect((await get('/alpha/x', reader)).json.which).toBe('A');
    expect((await get('/beta/x')).status).toBe(200);
    expect(keygate.config.routes.map((r) => r.name)).toEqual(['alpha', 'beta', 'slow']);
  });

  it('GET is not allowed (405)', async () => {
    expectProblem(await call(admin, 'GET', '/v1/reload', { key: root }), 405, 'method_not_allowed');
  });
});

describe('a keygate started without a config file to reload', () => {
  it('reload() throws and POST /v1/reload answers 409; the running config is untouched', async () => {
    const up = await startUpstream(tagged('C'));
    const t = await startTestKeygate({ routes: [{ name: 'c', pathPrefix: '/c', upstream: up.url, auth: { required: false } }] });
    try {
      expect(() => t.keygate.reload()).toThrow(/without a config file/);
      const key = (await t.keys.create({ tenant: 'system', name: 'root', role: 'admin' })).key;
      const res = await call(t.adminUrl, 'POST', '/v1/reload', { key });
      expectProblem(res, 409, 'conflict');
      expect((await rawRequest(t.url, { path: '/c/x' })).json.which).toBe('C');
    } finally {
      await t.stop();
      await up.close();
    }
  });
});

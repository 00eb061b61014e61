/**
 * Logging (issue 8): credentials never reach the log — keys in X-Api-Key and Bearer (valid,
 * revoked, unknown, malformed, and tokens that are not keygate's at all, such as JWTs),
 * cookies, Proxy-Authorization, Basic credentials, keys in the query string, hashes and the
 * pepper; one access line per request with route, status, ms, keyId, tenant, outcome and no
 * query string; `log.access: false` switches the access log off but not the rest; and a
 * debug line that dumps request headers through the main logger is redacted.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKey } from '../../src/keys/format.ts';
import { createLoggers } from '../../src/observability/logger.ts';
import { accessLines, logLines, rawRequest, waitFor, type RawResponse } from '../helpers/http.ts';
import { captureStream, startTestKeygate, type TestKeygate } from '../helpers/keygate.ts';
import { startUpstream, type TestUpstream } from '../helpers/upstream.ts';
import { TEST_PEPPER, testHasher } from '../helpers/pepper.ts';

let up: TestUpstream;
let t: TestKeygate;
let valid: { key: string; id: string };
let revoked: { key: string; id: string };

/** A JWT-shaped token (header.payload.signature), not a keygate key. */
const JWT =
  'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJsb2ctdGVzdC1zdWJqZWN0IiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c';
/** A well-formed keygate key (checksum valid) that was never issued. */
const UNKNOWN = generateKey('kg', 'acme');
/** A keygate-shaped key with a broken checksum. */
const MALFORMED = `kg_acme_${'ab'.repeat(32)}`;
const OPAQUE = 'opaque-bearer-token-9f8e7d6c5b4a39281706';
const COOKIE = 'session=cookie-secret-5e4d3c2b1a; csrf=csrf-secret-0a1b2c3d';
const PROXY_AUTH = `Basic ${Buffer.from('proxyuser:proxy-secret-77aa88bb').toString('base64')}`;
const BASIC = `Basic ${Buffer.from('legacy:basic-secret-66cc55dd').toString('base64')}`;
const QUERY_SECRET = 'query-secret-44ee33ff';

/** Not asserted: a revoked key's line may or may not name the key (not documented either way). */
const ANY = Symbol('any');

interface Sent {
  path: string;
  headers: Record<string, string>;
  expect: { status: number; route: string | null; outcome: string; code: string | null; keyId: () => string | null | typeof ANY; tenant: string | null | typeof ANY };
}

let sent: Sent[];
let responses: RawResponse[];

beforeAll(async () => {
  up = await startUpstream();
  t = await startTestKeygate({
    log: { level: 'debug' },
    routes: [
      { name: 'secure', pathPrefix: '/secure', upstream: up.url },
      { name: 'open', pathPrefix: '/open', upstream: up.url, auth: { required: false } },
    ],
  });
  const a = await t.keys.create({ tenant: 'acme', name: 'log-valid' });
  const b = await t.keys.create({ tenant: 'beta', name: 'log-revoked' });
  valid = { key: a.key, id: a.record.id };
  revoked = { key: b.key, id: b.record.id };
  await t.keys.revoke(revoked.id);

  const ok = (route = 'secure') => ({ status: 200, route, outcome: 'ok', code: null, keyId: () => valid.id, tenant: 'acme' });
  const invalid = { status: 401, route: 'secure', outcome: 'invalid', code: 'invalid_key', keyId: () => null, tenant: null };
  sent = [
    { path: '/secure/a', headers: { 'x-api-key': valid.key }, expect: ok() },
    { path: '/secure/b', headers: { authorization: `Bearer ${valid.key}` }, expect: ok() },
    { path: '/secure/c', headers: { authorization: `bearer   ${valid.key}`, 'x-api-key': valid.key, cookie: COOKIE, 'proxy-authorization': PROXY_AUTH }, expect: ok() },
    { path: '/secure/d', headers: { 'x-api-key': UNKNOWN }, expect: invalid },
    { path: '/secure/e', headers: { authorization: `Bearer ${UNKNOWN}` }, expect: invalid },
    { path: '/secure/f', headers: { 'x-api-key': MALFORMED }, expect: invalid },
    { path: '/secure/g', headers: { authorization: `Bearer ${JWT}` }, expect: invalid },
    { path: '/secure/h', headers: { authorization: `Bearer ${OPAQUE}`, cookie: COOKIE }, expect: invalid },
    { path: '/secure/i', headers: { 'x-api-key': revoked.key }, expect: { status: 401, route: 'secure', outcome: 'revoked', code: 'key_revoked', keyId: () => ANY, tenant: ANY } },
    { path: '/secure/j', headers: { authorization: BASIC, 'proxy-authorization': PROXY_AUTH }, expect: { status: 401, route: 'secure', outcome: 'missing', code: 'missing_credentials', keyId: () => null, tenant: null } },
    { path: '/secure/k', headers: { 'x-api-key': valid.key, authorization: `Bearer ${JWT}` }, expect: { status: 400, route: 'secure', outcome: 'bad_request', code: 'conflicting_credentials', keyId: () => null, tenant: null } },
    { path: `/secure/l?api_key=${valid.key}&token=${QUERY_SECRET}`, headers: { 'x-api-key': valid.key }, expect: ok() },
    { path: `/open/m?key=${valid.key}&access_token=${JWT}&s=${QUERY_SECRET}`, headers: { cookie: COOKIE }, expect: { status: 200, route: 'open', outcome: 'public', code: null, keyId: () => null, tenant: null } },
    { path: `/nowhere?token=${QUERY_SECRET}`, headers: { authorization: `Bearer ${valid.key}` }, expect: { status: 404, route: null, outcome: 'no_route', code: 'no_route', keyId: () => null, tenant: null } },
  ];
  // One at a time, so the access lines come in request order.
  responses = [];
  for (const request of sent) responses.push(await rawRequest(t.url, { path: request.path, headers: request.headers }));
  await waitFor(() => accessLines(t.logs()).length >= sent.length, 3000);
});

afterAll(async () => {
  await t?.stop();
  await up?.close();
});

describe('credentials never reach the log', () => {
  it('the requests got the answers expected (so every credential really went through keygate)', () => {
    expect(responses.map((r) => r.status)).toEqual(sent.map((s) => s.expect.status));
    // The upstream never sees a keygate key either (sanity: the valid ones did pass).
    expect(up.received.length).toBeGreaterThanOrEqual(5);
  });

  it('no key, token, cookie, proxy credential, query secret, hash or pepper appears anywhere in the log output', () => {
    const text = t.logs();
    expect(text.length).toBeGreaterThan(0);
    const hash = testHasher;
    const secrets: Record<string, string> = {
      'valid key': valid.key,
      'revoked key': revoked.key,
      'unknown key': UNKNOWN,
      'malformed key': MALFORMED,
      'valid key secret part': valid.key.split('_')[2]!,
      jwt: JWT,
      'jwt signature': JWT.split('.')[2]!,
      'opaque bearer': OPAQUE,
      'cookie value': 'cookie-secret-5e4d3c2b1a',
      'csrf cookie value': 'csrf-secret-0a1b2c3d',
      'proxy-authorization': PROXY_AUTH.slice(6),
      'basic credentials': BASIC.slice(6),
      'query secret': QUERY_SECRET,
      'valid key hash': hash(valid.key),
      'revoked key hash': hash(revoked.key),
      'unknown key hash': hash(UNKNOWN),
      pepper: TEST_PEPPER,
    };
    const leaked = Object.entries(secrets)
      .filter(([, value]) => text.includes(value))
      .map(([what]) => what);
    expect(leaked).toEqual([]);
    // Nor the header values under other casing or encodings of the same header names.
    expect(text.toLowerCase()).not.toContain('proxy-secret');
    expect(text).not.toMatch(/kg_[a-z0-9-]+_[0-9a-f]{64}/);
  });
});

describe('the access log', () => {
  it('one line per request, in order, with route, status, ms, keyId, tenant, outcome, code', () => {
    const lines = accessLines(t.logs());
    expect(lines).toHaveLength(sent.length);
    lines.forEach((line, i) => {
      const want = sent[i]!.expect;
      const label = `request ${i}: ${sent[i]!.path.split('?')[0]}`;
      const keyId = want.keyId();
      expect(line, label).toMatchObject({
        level: 'info',
        msg: 'request',
        log: 'access',
        method: 'GET',
        route: want.route,
        status: want.status,
        outcome: want.outcome,
        code: want.code,
        ...(keyId === ANY ? {} : { keyId }),
        ...(want.tenant === ANY ? {} : { tenant: want.tenant }),
      });
      expect(line, `${label}: keyId and tenant are fields of every line`).toHaveProperty('keyId');
      expect(line).toHaveProperty('tenant');
      expect(typeof line.ms, label).toBe('number');
      expect(line.ms as number, label).toBeGreaterThanOrEqual(0);
      expect(line.ms as number, label).toBeLessThan(5000);
      expect(typeof line.time).toBe('string');
      expect(line.pid).toBe(process.pid);
    });
  });

  it('the path is logged without the query string', () => {
    const lines = accessLines(t.logs());
    sent.forEach((request, i) => {
      expect(lines[i]!.path).toBe(request.path.split('?')[0]);
      expect(String(lines[i]!.path)).not.toContain('?');
    });
  });

  it('holds no header, no body and no field beyond the documented ones', () => {
    const allowed = new Set(['level', 'time', 'pid', 'log', 'msg', 'method', 'path', 'route', 'status', 'ms', 'outcome', 'code', 'keyId', 'tenant', 'environment']);
    for (const line of accessLines(t.logs())) expect(Object.keys(line).filter((k) => !allowed.has(k))).toEqual([]);
  });

  it('a client that leaves before the answer is logged as 499', async () => {
    const slowUp = await startUpstream((req) => req.resume()); // never answers
    const s = await startTestKeygate({ routes: [{ name: 'hang', pathPrefix: '/hang', upstream: slowUp.url, auth: { required: false } }] });
    try {
      const controller = new AbortController();
      const pending = fetch(`${s.url}/hang/x?secret=${QUERY_SECRET}`, { signal: controller.signal }).catch(() => null);
      await waitFor(() => slowUp.received.length === 1, 2000);
      controller.abort();
      await pending;
      const line = await waitFor(() => accessLines(s.logs())[0], 2000);
      expect(line).toMatchObject({ route: 'hang', status: 499, path: '/hang/x', outcome: 'public' });
      expect(s.logs()).not.toContain(QUERY_SECRET);
    } finally {
      await s.stop();
      await slowUp.close();
    }
  });
});

describe('log.access: false', () => {
  it('writes no access lines, but the start-up line is there', async () => {
    const s = await startTestKeygate({ log: { access: false }, routes: [{ name: 'open', pathPrefix: '/open', upstream: up.url, auth: { required: false } }] });
    try {
      expect((await rawRequest(s.url, { path: '/open/x' })).status).toBe(200);
      expect((await rawRequest(s.url, { path: '/missing' })).status).toBe(404);
      await sleep(100);
      const lines = logLines(s.logs());
      expect(lines.filter((l) => l.log === 'access' || l.msg === 'request')).toEqual([]);
      const started = lines.find((l) => l.msg === 'keygate listening');
      expect(started).toMatchObject({ level: 'info', routes: ['open'] });
    } finally {
      await s.stop();
    }
  });
});

describe('redaction in the main logger', () => {
  const headers = {
    authorization: `Bearer ${JWT}`,
    'x-api-key': 'kg_acme_redact-me-1',
    cookie: COOKIE,
    'proxy-authorization': PROXY_AUTH,
    'set-cookie': ['session=set-cookie-secret-1234'],
    'user-agent': 'keeps-this-agent',
  };
  const VALUES = [JWT, 'redact-me-1', 'cookie-secret-5e4d3c2b1a', PROXY_AUTH.slice(6), 'set-cookie-secret-1234'];

  function debugLine(fields: Record<string, unknown>, msg: string): { text: string; line: Record<string, any> } {
    const capture = captureStream();
    const { logger } = createLoggers({ level: 'debug', destination: capture.stream });
    logger.debug(fields, msg);
    const text = capture.text();
    const line = logLines(text).find((l) => l.msg === msg);
    expect(line, 'the debug line was written').toBeDefined();
    return { text, line: line! };
  }

  it('logger.debug({ req: { headers } }): every credential header is redacted, the rest kept', () => {
    const { text, line } = debugLine({ req: { method: 'GET', url: '/x', headers } }, 'incoming request');
    expect(line.level).toBe('debug');
    for (const value of VALUES) expect(text).not.toContain(value);
    expect(line.req.headers).toMatchObject({
      authorization: '[redacted]',
      'x-api-key': '[redacted]',
      cookie: '[redacted]',
      'proxy-authorization': '[redacted]',
      'set-cookie': '[redacted]',
      'user-agent': 'keeps-this-agent',
    });
  });

  it('a child logger and res.headers are redacted too', () => {
    const capture = captureStream();
    const { logger } = createLoggers({ level: 'debug', destination: capture.stream });
    logger.child({ component: 'test' }).debug({ res: { statusCode: 200, headers } }, 'response');
    const text = capture.text();
    expect(logLines(text).find((l) => l.msg === 'response')).toBeDefined();
    for (const value of VALUES) expect(text).not.toContain(value);
  });

  it('logger.debug({ headers }) (headers at the top level): every credential header is redacted', () => {
    const { text, line } = debugLine({ headers }, 'top-level headers');
    expect(line.headers['user-agent']).toBe('keeps-this-agent');
    const leaked = Object.keys(headers).filter((name) => name !== 'user-agent' && line.headers[name] !== '[redacted]');
    expect(leaked, `not redacted: ${leaked.join(', ')}`).toEqual([]);
    for (const value of VALUES) expect(text).not.toContain(value);
  });

  it('fields named key, hash, value, pepper, masterKey are redacted', () => {
    const { text, line } = debugLine({ key: valid.key, hash: 'hash-secret-1', value: 'value-secret-1', pepper: TEST_PEPPER, masterKey: 'mk-secret-1', keyId: 'key_visible' }, 'fields');
    for (const value of [valid.key, 'hash-secret-1', 'value-secret-1', TEST_PEPPER, 'mk-secret-1']) expect(text).not.toContain(value);
    expect(line.keyId).toBe('key_visible');
  });

  it('debug lines are dropped at level info (KEYGATE_LOG_LEVEL / log.level decide)', () => {
    const capture = captureStream();
    const { logger } = createLoggers({ level: 'info', destination: capture.stream });
    logger.debug({ req: { headers } }, 'hidden');
    logger.info('shown');
    expect(logLines(capture.text()).map((l) => l.msg)).toEqual(['shown']);
  });
});

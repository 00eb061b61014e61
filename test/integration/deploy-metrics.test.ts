/**
 * The dashboard (deploy/grafana/keygate.json) and the alerting rules
 * (deploy/prometheus/keygate-rules.yml) use only what keygate exports. No hand-kept list:
 * a real keygate on a real Redis serves traffic that makes every labelled series the files
 * match on exist (ok, refused, revoked, rate-limited, MCP allowed and refused calls, a
 * listener rejection, a revocation), then Redis is stopped so the error series exist too
 * (store lookup errors, limit-store errors with onStoreError closed and open), and the
 * /metrics it then serves is what every expression is checked against: the series names,
 * the labels matched on with their literal values, and the grouping labels. Renaming a
 * metric or a label value in src/ fails this test.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dashboardExpressions, ruleExpressions, type DeployExpression } from '../helpers/deploy.ts';
import { startTestKeygate, type TestKeygate } from '../helpers/keygate.ts';
import { checkExpression, expressionParts, parseExposition, TARGET_LABELS, type Exposition } from '../helpers/promql.ts';
import { exchange } from '../helpers/raw-socket.ts';
import { redisStore, startRedis, type RedisWithClient } from '../helpers/redis-fixture.ts';
import { freePorts } from '../helpers/process.ts';
import { startUpstream, type TestUpstream } from '../helpers/upstream.ts';
import { typo } from '../helpers/typo.ts';
import { waitFor } from '../helpers/http.ts';
import { adminClient, shiftedService } from '../helpers/admin.ts';
import { CLI_CALLER } from '../../src/keys/service.ts';

let redis: RedisWithClient;
let up: TestUpstream;
let sse: TestUpstream;
let t: TestKeygate;
let exported: Exposition;
let metricsText: string;

async function call(path: string, init: { key?: string; body?: unknown } = {}): Promise<number> {
  const headers: Record<string, string> = init.key === undefined ? {} : { 'x-api-key': init.key };
  if (init.body !== undefined) Object.assign(headers, { 'content-type': 'application/json', accept: 'application/json, text/event-stream' });
  const res = await fetch(`${t.url}${path}`, { method: init.body === undefined ? 'GET' : 'POST', headers, body: init.body === undefined ? undefined : JSON.stringify(init.body) });
  await res.arrayBuffer();
  return res.status;
}

const toolCall = (id: number, name: string) => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: {} } });

beforeAll(async () => {
  redis = await startRedis();
  up = await startUpstream();
  sse = await startUpstream((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write('data: hello\n\n');
  });
  const [port] = await freePorts(1);
  t = await startTestKeygate({
    listen: { host: '127.0.0.1', port: port! },
    store: redisStore(redis.redis),
    cache: { maxAgeMs: 60_000 },
    limits: { failedAuth: { max: 0 } },
    permissionGroups: { readers: ['read'] },
    routes: [
      { name: 'api', pathPrefix: '/api', upstream: up.url, auth: { permissions: ['read'] }, limits: { rates: [{ by: 'key', rate: '3/10s' }], onStoreError: 'closed' } },
      {
        name: 'mcp',
        pathPrefix: '/mcp',
        upstream: up.url,
        mcp: { resource: `http://127.0.0.1:${port}/mcp`, policy: {} },
        limits: { rates: [{ by: 'key', rate: '1000/10s' }], onStoreError: 'open' },
      },
      { name: 'down', pathPrefix: '/down', upstream: 'http://127.0.0.1:1' },
      { name: 'events', pathPrefix: '/events', upstream: sse.url },
    ],
    log: { level: 'warn', access: false },
  });

  const reader = (await t.keys.create({ tenant: 'acme', name: 'reader', permissions: ['read', 'mcp:tools/call:search'] })).key;
  const platform = adminClient(t.adminUrl, (await t.keys.create({ tenant: 'system', name: 'platform', role: 'admin' })).key);
  expect((await platform.post('/v1/users', { tenant: 'acme', name: 'alice', group: 'readers' })).status).toBe(201);
  const alice = (await platform.post('/v1/keys', { tenant: 'acme', name: 'alice-agent', user: 'alice' })).json.key as string;
  expect((await platform.patch('/v1/users/acme/alice', { disabled: true })).status).toBe(200);
  expect(await call('/api/x', { key: alice })).toBe(401); // disabled
  const expired = await shiftedService(t, -31 * 86_400_000).create(CLI_CALLER, { tenant: 'acme', name: 'old', permissions: ['read'], expires: '30d' });
  expect(await call('/api/x', { key: expired.key })).toBe(401); // expired
  const twoKeys = await fetch(`${t.url}/api/x`, { headers: { 'x-api-key': reader, authorization: `Bearer ${alice}` } });
  expect(twoKeys.status).toBe(400); // bad_request
  await twoKeys.arrayBuffer();
  // An event stream opened and closed: keygate_open_streams{kind="sse"} exists (at 0).
  const stream = await fetch(`${t.url}/events/x`, { headers: { 'x-api-key': reader } });
  expect(stream.headers.get('content-type')).toBe('text/event-stream');
  const events = stream.body!.getReader();
  await events.read();
  await events.cancel();
  const other = (await t.keys.create({ tenant: 'acme', name: 'no-read' })).key;
  const revoked = await t.keys.create({ tenant: 'acme', name: 'gone', permissions: ['read'] });
  // Never used before Redis goes, so not cached: its lookup then fails.
  const neverCached = (await t.keys.create({ tenant: 'acme', name: 'later', permissions: ['read'] })).key;
  expect(await call('/api/x', { key: reader })).toBe(200);
  expect(await call('/api/x')).toBe(401); // missing
  expect(await call('/api/x', { key: typo(reader) })).toBe(401); // invalid
  expect(await call('/api/x', { key: other })).toBe(403); // forbidden
  expect(await call('/api/x', { key: revoked.key })).toBe(200);
  await t.keys.revoke(revoked.record.id);
  // The revocation comes back through the feed (keygate_revocation_lag_seconds observes it).
  await waitFor(async () => (await call('/api/x', { key: revoked.key })) === 401, 5000, 20);
  expect(await call('/down/x', { key: reader })).toBe(502); // upstream connection error
  const limited = [];
  for (let i = 0; i < 4; i++) limited.push(await call('/api/x', { key: reader }));
  expect(limited).toContain(429);
  expect(await call('/mcp', { key: reader, body: toolCall(1, 'search') })).toBe(200); // allowed
  expect(await call('/mcp', { key: reader, body: toolCall(2, 'delete') })).toBe(200); // refused: a JSON-RPC error in a 200
  const garbage = await exchange(t.url, 'NOT HTTP AT ALL\r\n\r\n', { expect: 1 });
  expect(garbage.responses[0]?.status).toBe(400); // listener rejection: bad_request

  // Redis goes: lookups of keys not in the cache fail, limits cannot be decided.
  await redis.redis.stop();
  expect(await call('/api/x', { key: neverCached })).toBe(503); // store lookup error, outcome unavailable
  expect(await call('/api/y', { key: reader })).toBe(503); // limit store error, policy closed
  expect(await call('/mcp', { key: reader, body: toolCall(3, 'search') })).toBe(200); // limit store error, policy open

  const res = await fetch(`${t.adminUrl}/metrics`);
  expect(res.status).toBe(200);
  metricsText = await res.text();
  exported = parseExposition(metricsText);
}, 60_000);

afterAll(async () => {
  await t?.stop();
  await up?.close();
  await sse?.close();
  await redis?.stop();
});

function expectExported(list: DeployExpression[]): void {
  expect(list.length).toBeGreaterThan(5);
  const problems: string[] = [];
  for (const { where, expr, label } of list) {
    for (const p of checkExpression(expr, exported)) problems.push(`${where}: ${p}`);
    if (label !== undefined && !TARGET_LABELS.has(label)) {
      for (const { metric } of expressionParts(expr).selectors) if (!exported.get(metric)?.has(label)) problems.push(`${where}: ${metric} has no label ${label}`);
    }
  }
  expect(problems).toEqual([]);
}

describe('deploy/ uses only what keygate exports', () => {
  it('the series the test set out to make exist, with the labels the files match on', () => {
    const has = (name: string, label: string, value: string) => exported.get(name)?.get(label)?.has(value) ?? false;
    expect(has('keygate_store_lookup_duration_seconds_count', 'result', 'error')).toBe(true);
    expect(has('keygate_limit_store_errors_total', 'policy', 'closed')).toBe(true);
    expect(has('keygate_limit_store_errors_total', 'policy', 'open')).toBe(true);
    expect(has('keygate_mcp_calls_total', 'decision', 'refused')).toBe(true);
    expect(has('keygate_mcp_calls_total', 'decision', 'allowed')).toBe(true);
    expect(exported.has('keygate_rate_limited_total')).toBe(true);
    expect(exported.has('keygate_listener_rejections_total')).toBe(true);
    expect(has('keygate_open_streams', 'kind', 'sse')).toBe(true);
    // The revocation reached this instance through the feed and was timed.
    expect(Number(/^keygate_revocation_lag_seconds_count (\S+)$/m.exec(metricsText)?.[1])).toBeGreaterThanOrEqual(1);
    for (const outcome of ['missing', 'invalid', 'revoked', 'expired', 'disabled', 'forbidden', 'unavailable', 'bad_request', 'limited']) expect(has('keygate_requests_total', 'outcome', outcome), outcome).toBe(true);
  });

  it('every expression of the Prometheus rules', () => {
    expectExported(ruleExpressions());
  });

  it("every expression of the Grafana dashboard, its template variables' included", () => {
    expectExported(dashboardExpressions());
  });

  it('the check is not vacuous: a renamed metric, label or label value is reported', () => {
    expect(checkExpression('sum by (route) (rate(keygate_requestz_total[5m]))', exported)).toContain("keygate_requestz_total is not in keygate's /metrics");
    expect(checkExpression('rate(keygate_requests_total{outcomes="revoked"}[5m])', exported)).toEqual(['keygate_requests_total has no label outcomes']);
    expect(checkExpression('rate(keygate_requests_total{outcome=~"revoked|stolen"}[5m])', exported)[0]).toMatch(/outcome="stolen"/);
    expect(checkExpression('sum by (tenant) (rate(keygate_requests_total[5m]))', exported)[0]).toMatch(/grouping label tenant/);
    expect(checkExpression('rate(keygate_requests_total{job="$job", route=~"$route"}[$__rate_interval])', exported)).toEqual([]);
  });
});

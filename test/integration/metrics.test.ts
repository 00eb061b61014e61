/**
 * /metrics on the admin listener: the request path's counters, histograms and gauges move
 * as requests go through, with bounded labels (route names, never paths or key ids).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { startTestKeygate, type TestKeygate } from '../helpers/keygate.ts';
import { startUpstream, type TestUpstream } from '../helpers/upstream.ts';
import { typo } from '../helpers/typo.ts';

let up: TestUpstream;
let sse: TestUpstream;
let t: TestKeygate;
let key: string;

async function scrape(): Promise<string> {
  const res = await fetch(`${t.adminUrl}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
  return res.text();
}

/** The value of one sample line, e.g. value(text, 'keygate_requests_total{route="api",status_class="2xx",outcome="ok"}'). */
function value(text: string, sample: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${sample} `));
  return line === undefined ? 0 : Number(line.slice(sample.length + 1));
}

beforeAll(async () => {
  up = await startUpstream();
  sse = await startUpstream((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write('data: hello\n\n');
  });
  t = await startTestKeygate({
    routes: [
      { name: 'api', pathPrefix: '/api', upstream: up.url, auth: { permissions: ['read'] } },
      { name: 'events', pathPrefix: '/events', upstream: sse.url },
      { name: 'down', pathPrefix: '/down', upstream: 'http://127.0.0.1:1' },
    ],
  });
  key = (await t.keys.create({ tenant: 'acme', name: 'm', permissions: ['read'] })).key;
});

afterAll(async () => {
  await t.stop();
  await up.close();
  await sse.close();
});

describe('/metrics', () => {
  it('counts requests by route, status class and auth outcome', async () => {
    const before = await scrape();
    const get = (path: string, headers: Record<string, string> = {}) => request(`${t.url}${path}`, { headers }).then((r) => r.body.dump().then(() => r.statusCode));
    expect(await get('/api/x', { 'x-api-key': key })).toBe(200);
    expect(await get('/api/x', { 'x-api-key': key })).toBe(200);
    expect(await get('/api/x')).toBe(401);
    expect(await get('/api/x', { 'x-api-key': typo(key) })).toBe(401);
    const other = (await t.keys.create({ tenant: 'acme', name: 'no-read' })).key;
    expect(await get('/api/x', { 'x-api-key': other })).toBe(403);
    expect(await get('/down/x', { 'x-api-key': key })).toBe(502);
    expect(await get('/nowhere')).toBe(404);
    const after = await scrape();
    const delta = (sample: string) => value(after, sample) - value(before, sample);
    expect(delta('keygate_requests_total{route="api",status_class="2xx",outcome="ok"}')).toBe(2);
    expect(delta('keygate_requests_total{route="api",status_class="4xx",outcome="missing"}')).toBe(1);
    expect(delta('keygate_requests_total{route="api",status_class="4xx",outcome="invalid"}')).toBe(1);
    expect(delta('keygate_requests_total{route="api",status_class="4xx",outcome="forbidden"}')).toBe(1);
    expect(delta('keygate_requests_total{route="down",status_class="5xx",outcome="ok"}')).toBe(1);
    expect(delta('keygate_requests_total{route="(none)",status_class="4xx",outcome="no_route"}')).toBe(1);
    expect(delta('keygate_upstream_errors_total{route="down",kind="connection"}')).toBe(1);
    expect(delta('keygate_request_duration_seconds_count{route="api"}')).toBe(5);
    expect(delta('keygate_upstream_duration_seconds_count{route="api"}')).toBe(2);
    expect(value(after, 'keygate_cache_hits_total')).toBeGreaterThanOrEqual(1);
    expect(value(after, 'keygate_cache_misses_total')).toBeGreaterThanOrEqual(2);
    expect(value(after, 'keygate_cache_entries')).toBeGreaterThanOrEqual(2);
    expect(value(after, 'keygate_store_lookup_duration_seconds_count{result="ok"}')).toBeGreaterThanOrEqual(2);
  });

  it('never labels a series with a raw path or a key id', async () => {
    const text = await scrape();
    const record = (await t.keys.list())[0]!;
    expect(text).not.toContain('/api/x');
    expect(text).not.toContain(record.id);
    expect(text).not.toContain(key);
    expect(text).toContain('process_cpu_user_seconds_total');
  });

  it('shows open SSE streams while they are open', async () => {
    const res = await request(`${t.url}/events/stream`, { headers: { 'x-api-key': key } });
    expect(res.headers['content-type']).toBe('text/event-stream');
    await new Promise<void>((resolve) => res.body.once('data', () => resolve()));
    expect(value(await scrape(), 'keygate_open_streams{route="events",kind="sse"}')).toBe(1);
    res.body.destroy();
    const deadline = Date.now() + 2000;
    while (value(await scrape(), 'keygate_open_streams{route="events",kind="sse"}') !== 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(value(await scrape(), 'keygate_open_streams{route="events",kind="sse"}')).toBe(0);
  });
});

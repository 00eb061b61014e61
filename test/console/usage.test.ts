/**
 * Usage in the web console (Chromium): a key's detail view and a tenant's view show the last
 * 30 days as an SVG bar chart — a bar for each day with traffic and none for the others, each
 * bar's figures in its <title>, the whole as an image with a text summary and as a table —
 * and the keys list filters on "not used for N days" (kept in the URL); the tenant view lists
 * the keys nobody has used for 30 days. Nothing is loaded from elsewhere, no console errors.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { Usage } from '../../src/events/usage.ts';
import { CLI_CALLER } from '../../src/keys/service.ts';
import type { Exchange } from '../../src/pipeline/exchange.ts';
import { DAY_MS } from '../../src/store/usage-store.ts';
import { shiftedService } from '../helpers/admin.ts';
import { startTestKeygate, type TestKeygate } from '../helpers/keygate.ts';
import { startUpstream, type TestUpstream } from '../helpers/upstream.ts';
import { launchChromium, record, screenshot, type PageRecord } from './browser.ts';

vi.setConfig({ testTimeout: 60_000, hookTimeout: 60_000 });
const ACTION_TIMEOUT = 20_000;
const eventually = <T>(fn: () => T | Promise<T>) => expect.poll(fn, { timeout: ACTION_TIMEOUT, interval: 50 });

let browser: Browser;
let context: BrowserContext;
let page: Page;
let t: TestKeygate;
let upstream: TestUpstream;
let root: string;
let busyId: string;
const seen: PageRecord = { requests: [], errors: [] };
const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);
const today = () => day(Date.now());
const threeDaysAgo = () => day(Date.now() - 3 * DAY_MS);

beforeAll(async () => {
  browser = await launchChromium();
  upstream = await startUpstream();
  t = await startTestKeygate({
    lifecycle: { usageFlushMs: 3_600_000 },
    routes: [
      { name: 'api', pathPrefix: '/api', upstream: upstream.url },
      { name: 'billing', pathPrefix: '/billing', upstream: upstream.url, auth: { permissions: ['billing:read'] } },
    ],
  });
  root = (await t.keys.create({ tenant: 'system', role: 'admin', name: 'root' })).key;
  const busy = await t.keys.create({ tenant: 'acme', name: 'busy' });
  busyId = busy.record.id;
  await t.keys.create({ tenant: 'acme', name: 'quiet' });
  await shiftedService(t, -40 * DAY_MS).create(CLI_CALLER, { tenant: 'acme', name: 'ancient' });
  // Today: 5 answered, 1 refused (no billing:read) — through the proxy.
  for (let i = 0; i < 5; i++) expect((await fetch(`${t.url}/api/x`, { headers: { 'x-api-key': busy.key } })).status).toBe(200);
  expect((await fetch(`${t.url}/billing/x`, { headers: { 'x-api-key': busy.key } })).status).toBe(403);
  await t.keygate.usage.flush();
  // Three days ago: 2 requests, one a 5xx, written as a keygate running then would have.
  const past = new Usage({ store: t.keygate.store, flushMs: 3_600_000, now: () => Date.now() - 3 * DAY_MS });
  const exchange = (error: string | null) => ({ identity: { record: { id: busyId, tenant: 'acme' } }, route: { name: 'api' }, error }) as unknown as Exchange;
  past.count(exchange(null), 200);
  past.count(exchange(null), 502);
  await past.flush();

  context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  context.setDefaultTimeout(ACTION_TIMEOUT);
  page = await context.newPage();
  record(page, seen);
  await page.goto(`${t.adminUrl}/console/`);
  await page.getByLabel('Admin key').fill(root);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('button', { name: 'Sign out' }).waitFor();
});

afterAll(async () => {
  await context?.close().catch(() => {});
  await browser?.close();
  await t?.stop();
  await upstream?.close();
});

const names = () => page.locator('tbody tr .key-name').allTextContents();
const bars = () => page.locator('svg.usage-svg g.bar');

describe('usage in the console', () => {
  it('a key’s detail view charts its last 30 days: a bar for each day with traffic, none for the others', async () => {
    await page.goto(`${t.adminUrl}/console/#/keys?tenant=acme`);
    await eventually(names).toEqual(expect.arrayContaining(['busy', 'quiet', 'ancient']));
    await page.locator('tbody tr', { hasText: 'busy' }).getByRole('link', { name: 'busy' }).click();
    expect(page.url()).toContain(`#/key?id=${busyId}`);
    const chart = page.getByRole('img', { name: /Requests per day, last 30 days/ });
    await chart.waitFor();
    await eventually(() => bars().count()).toBe(2);
    expect(await bars().evaluateAll((gs) => gs.map((g) => [g.getAttribute('data-date'), g.getAttribute('data-total')]))).toEqual([
      [threeDaysAgo(), '2'],
      [today(), '6'],
    ]);
    expect(await bars().nth(1).locator('title').textContent()).toBe(`${today()}: 6 requests (5 × 2xx, 1 × 403)`);
    // Today's bar (the busiest) is three times as tall as the other; its refusal is stacked on its successes.
    const heights = await bars().evaluateAll((gs) => gs.map((g) => [...g.querySelectorAll('rect')].reduce((sum, r) => sum + Number(r.getAttribute('height')), 0)));
    expect(heights[1]! / heights[0]!).toBeCloseTo(3, 1);
    expect(await bars().nth(1).locator('rect').evaluateAll((rs) => rs.map((r) => r.getAttribute('class')))).toEqual(['bar-ok', 'bar-refused']);
    expect(await bars().nth(0).locator('rect').evaluateAll((rs) => rs.map((r) => r.getAttribute('class')))).toEqual(['bar-ok', 'bar-error']);
    // The text alternative: a summary in the image's name, the figures as a table.
    expect(await page.locator('.usage-summary').textContent()).toBe(`8 requests in 30 days, on 2 of them; the busiest was ${today()} with 6 requests.`);
    await page.getByText('Show as a table').click();
    const todayRow = page.locator('table.usage-table tbody tr').first();
    expect(await todayRow.locator('th').textContent()).toBe(today());
    expect(await todayRow.locator('td').allTextContents()).toEqual(['6', '5 × 2xx', '1 × 403']);
    expect(await page.locator('table.usage-table tbody tr').count()).toBe(30);
    expect(await page.locator('dl.facts').textContent()).toContain('acme');
    await screenshot(page, 'usage-01-key');
  });

  it('a tenant’s view charts all its keys and lists the keys nobody has used for 30 days', async () => {
    await page.getByRole('link', { name: 'acme' }).click();
    await eventually(() => page.url()).toContain('#/tenant?name=acme');
    await page.getByRole('img', { name: /Requests per day/ }).waitFor();
    await eventually(() => bars().evaluateAll((gs) => gs.map((g) => g.getAttribute('data-total')))).toEqual(['2', '6']);
    await eventually(() => page.locator('table.unused tbody tr .key-name').allTextContents()).toEqual(['ancient']);
    await screenshot(page, 'usage-02-tenant');
  });

  it('a key with no traffic gets an empty chart that says so', async () => {
    const quiet = (await t.keys.list({ tenant: 'acme' })).find((k) => k.name === 'quiet')!;
    await page.goto(`${t.adminUrl}/console/#/key?id=${quiet.id}`);
    await page.getByRole('img', { name: /Requests per day/ }).waitFor();
    expect(await page.locator('.usage-summary').textContent()).toBe('No requests in these 30 days.');
    expect(await bars().count()).toBe(0);
  });

  it('the keys list filters on “not used for N days”, remembered in the URL, and links to the tenant’s view', async () => {
    await page.goto(`${t.adminUrl}/console/#/keys?tenant=acme`);
    await eventually(async () => (await names()).length).toBe(3);
    await page.getByLabel('Not used for').selectOption('30');
    await eventually(names).toEqual(['ancient']);
    expect(page.url()).toContain('unused=30');
    await page.reload();
    await eventually(names).toEqual(['ancient']);
    expect(await page.getByLabel('Not used for').inputValue()).toBe('30');
    await page.getByLabel('Not used for').selectOption('');
    await eventually(async () => (await names()).length).toBe(3);
    expect(await page.getByRole('link', { name: 'Usage of acme' }).getAttribute('href')).toBe('#/tenant?name=acme');
  });

  it('loaded nothing from elsewhere and logged no errors', () => {
    // The page asks for a session before signing in: that 401 is expected.
    expect(seen.errors.filter((e) => !/^Failed to load resource: the server responded with a status of 401 /.test(e))).toEqual([]);
    expect(seen.requests.filter((url) => !url.startsWith(t.adminUrl))).toEqual([]);
  });
});

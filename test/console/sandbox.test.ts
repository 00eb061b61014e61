/**
 * Sandbox keys in the web console (Chromium): every key shows its environment as a badge
 * (a sandbox key's visibly different, and named in words), the list filters by environment
 * (remembered in the URL), the create dialog makes a sandbox key that then reaches only the
 * route's sandbox upstream; and the list shows which user a key acts as, marked when it takes
 * its permissions from that user's group.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { startTestKeygate, type TestKeygate } from '../helpers/keygate.ts';
import { startUpstream, type TestUpstream } from '../helpers/upstream.ts';
import { launchChromium, record, screenshot, type PageRecord } from './browser.ts';

declare const getComputedStyle: any, document: any;

vi.setConfig({ testTimeout: 60_000, hookTimeout: 60_000 });
const ACTION_TIMEOUT = 20_000;
const eventually = <T>(fn: () => T | Promise<T>) => expect.poll(fn, { timeout: ACTION_TIMEOUT, interval: 50 });

let browser: Browser;
let context: BrowserContext;
let page: Page;
let t: TestKeygate;
let live: TestUpstream;
let sandbox: TestUpstream;
let root: string;
const seen: PageRecord = { requests: [], errors: [] };

beforeAll(async () => {
  browser = await launchChromium();
  [live, sandbox] = await Promise.all([startUpstream(), startUpstream()]);
  t = await startTestKeygate({
    permissionGroups: { readers: ['echo:read'] },
    routes: [{ name: 'api', pathPrefix: '/api', upstream: live.url, sandbox: { upstream: sandbox.url } }],
  });
  root = (await t.keys.create({ tenant: 'system', role: 'admin', name: 'root' })).key;
  await t.keys.create({ tenant: 'acme', name: 'acme-live', permissions: ['echo:read'] });
  await t.keys.create({ tenant: 'acme', name: 'acme-try', permissions: ['echo:read'], environment: 'sandbox' });
  await t.keys.create({ tenant: 'acme', name: 'acme-label', permissions: ['echo:read'], user: 'bob' });
  // A user of the tenant: a key created for it takes its permissions from the user's group.
  const res = await fetch(`${t.adminUrl}/v1/users`, { method: 'POST', headers: { 'x-api-key': root, 'content-type': 'application/json' }, body: JSON.stringify({ tenant: 'acme', name: 'alice', group: 'readers' }) });
  expect(res.status, await res.text()).toBe(201);
  const asUser = await t.keys.create({ tenant: 'acme', name: 'acme-alice', user: 'alice' });
  expect(asUser.record.permissionsFrom).toBe('user');

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
  await Promise.all([live?.close(), sandbox?.close()]);
});

const row = (name: string) => page.locator('tbody tr', { hasText: name });
const names = () => page.locator('tbody tr .key-name').allTextContents();

describe('sandbox keys in the console', () => {
  it('every key shows its environment; a sandbox key visibly differs, in words as well as colour', async () => {
    await page.goto(`${t.adminUrl}/console/#/keys?tenant=acme`);
    await eventually(names).toEqual(expect.arrayContaining(['acme-live', 'acme-try', 'acme-alice']));
    expect(await page.getByRole('columnheader', { name: 'Environment' }).count()).toBe(1);
    const liveBadge = row('acme-live').locator('[data-label="Environment"] .badge');
    const sandboxBadge = row('acme-try').locator('[data-label="Environment"] .badge');
    expect(await liveBadge.textContent()).toBe('Live');
    expect(await sandboxBadge.textContent()).toBe('Sandbox');
    expect(await sandboxBadge.getAttribute('title')).toMatch(/sandbox upstream/);
    const style = (el: any) => {
      const s = getComputedStyle(el);
      return `${s.backgroundColor} ${s.borderStyle} ${s.color}`;
    };
    expect(await sandboxBadge.evaluate(style)).not.toBe(await liveBadge.evaluate(style));
    expect(await row('acme-try').locator('code').textContent()).toMatch(/^kg_sandbox_acme_/);
    await screenshot(page, 'sandbox-01-keys');
  });

  it('shows which user a key acts as, marked when it takes its permissions from that user’s group', async () => {
    const alice = row('acme-alice').locator('[data-label="Acts as"]');
    expect(await alice.textContent()).toContain('alice');
    const marker = alice.locator('.badge.from-user');
    expect(await marker.count()).toBe(1);
    expect(await marker.getAttribute('title')).toMatch(/group of user alice/);
    expect(await row('acme-alice').locator('.sub').textContent()).toContain('alice’s group');
    // A user name that is only a label: shown, without the marker.
    const bob = row('acme-label').locator('[data-label="Acts as"]');
    expect(await bob.textContent()).toBe('bob');
    expect(await bob.locator('.badge').count()).toBe(0);
  });

  it('filters by environment, and remembers the filter in the URL', async () => {
    const select = page.getByLabel('Environment', { exact: true });
    await select.selectOption('sandbox');
    await eventually(names).toEqual(['acme-try']);
    expect(page.url()).toContain('env=sandbox');
    await select.selectOption('live');
    await eventually(async () => (await names()).sort()).toEqual(['acme-alice', 'acme-label', 'acme-live']);
    await page.reload();
    await eventually(async () => (await names()).sort()).toEqual(['acme-alice', 'acme-label', 'acme-live']);
    expect(await page.getByLabel('Environment', { exact: true }).inputValue()).toBe('live');
    await page.getByLabel('Environment', { exact: true }).selectOption('');
    await eventually(async () => (await names()).length).toBe(4);
  });

  it('creates a sandbox key, which reaches the sandbox upstream only', async () => {
    await page.getByRole('button', { name: 'Create key' }).click();
    const dialog = page.getByRole('dialog', { name: 'Create an API key' });
    await dialog.getByLabel('Tenant', { exact: true }).fill('acme');
    await dialog.getByLabel('Name', { exact: true }).fill('browser-sandbox');
    await dialog.getByLabel('Permissions', { exact: true }).fill('echo:read');
    const environment = dialog.getByRole('group', { name: 'Environment' });
    expect(await environment.getByRole('radio', { name: 'Live', exact: true }).isChecked()).toBe(true);
    await environment.getByRole('radio', { name: /^Sandbox/ }).check();
    await screenshot(page, 'sandbox-02-create');
    await dialog.getByRole('button', { name: 'Create key' }).click();
    const oneTime = page.getByRole('dialog', { name: 'Copy your new key' });
    await oneTime.waitFor();
    expect(await oneTime.textContent()).toContain('sandbox key');
    const key = await oneTime.getByLabel('The new API key').inputValue();
    expect(key).toMatch(/^kg_sandbox_acme_[0-9a-f]{64}$/);
    await oneTime.getByRole('button', { name: 'Done' }).click();
    await oneTime.waitFor({ state: 'detached' });
    await eventually(() => row('browser-sandbox').locator('[data-label="Environment"]').textContent()).toBe('Sandbox');

    const res = await fetch(`${t.url}/api/from-console`, { headers: { 'x-api-key': key } });
    expect(res.status).toBe(200);
    expect(sandbox.received.map((r) => [r.url, r.headers['x-auth-environment']])).toEqual([['/api/from-console', 'sandbox']]);
    expect(live.received.filter((r) => r.url === '/api/from-console')).toEqual([]);
    expect(await page.evaluate((k) => document.documentElement.outerHTML.includes(k), key)).toBe(false);
  });

  it('narrow screens: the environment is a labelled line of the card', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(`${t.adminUrl}/console/#/keys?tenant=acme&env=sandbox`);
    await eventually(async () => (await names()).sort()).toEqual(['acme-try', 'browser-sandbox']);
    const cell = row('acme-try').locator('[data-label="Environment"]');
    expect(await cell.evaluate((el: any) => getComputedStyle(el, '::before').content)).toBe('"Environment"');
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    await screenshot(page, 'sandbox-03-narrow');
  });

  it('broke no page policy and called nothing outside the admin origin', () => {
    expect(seen.requests.filter((url) => new URL(url).origin !== t.adminUrl)).toEqual([]);
    expect(seen.errors.filter((e) => !/status of 401/.test(e))).toEqual([]);
  });
});

/**
 * Where a stored secret is used, in the web console in Chromium (issue 19): each secret's row
 * says at a glance what uses it ("route llm (routes[0].secret.id)", "not used"); removing an
 * unused secret is the typed confirmation as before; removing a used one shows keygate's 409
 * detail in the dialog's alert and turns the button into "Remove anyway", which removes it
 * with force (audited). A list loaded before a reload that made a secret used is caught by
 * the server, not the page. Cards on narrow screens carry the "Used by" label; nothing left
 * the admin origin or broke the page's policies; no value reached the page or the log.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import type { RawConfig } from '../../src/config/schema.ts';
import { CLI_CALLER } from '../../src/keys/service.ts';
import { createLoggers } from '../../src/observability/logger.ts';
import { startKeygate, type Keygate } from '../../src/server.ts';
import { captureStream, testConfig } from '../helpers/keygate.ts';
import { TEST_PEPPER } from '../helpers/pepper.ts';
import { startUpstream, type TestUpstream } from '../helpers/upstream.ts';
import { launchChromium, record, screenshot, type PageRecord } from './browser.ts';

declare const document: any, getComputedStyle: any;

vi.setConfig({ testTimeout: 60_000, hookTimeout: 60_000 });
const ACTION_TIMEOUT = 20_000;
const eventually = <T>(fn: () => T | Promise<T>) => expect.poll(fn, { timeout: ACTION_TIMEOUT, interval: 50 });

const VALUES: Record<string, string> = {
  openai: `sk-console-${randomBytes(16).toString('hex')}`,
  'gh-signing': `gh-console-${randomBytes(16).toString('hex')}`,
  spare: `spare-console-${randomBytes(16).toString('hex')}`,
  later: `later-console-${randomBytes(16).toString('hex')}`,
};

let browser: Browser;
let up: TestUpstream;
let keygate: Keygate;
let adminUrl: string;
let logs: () => string;
let dir: string;
let rootKey: string;
/** What the next reload reads. */
let next: RawConfig;
const seen: PageRecord = { requests: [], errors: [] };
const contexts: BrowserContext[] = [];

function config(extraRoutes: NonNullable<RawConfig['routes']> = []): RawConfig {
  return {
    log: { level: 'info', access: false },
    routes: [
      { name: 'llm', pathPrefix: '/llm', upstream: up.url, secret: { id: 'openai', header: 'authorization', template: 'Bearer {value}' } },
      { name: 'github-hook', pathPrefix: '/hooks/github', upstream: up.url, auth: { required: false }, webhook: { scheme: 'github', secrets: ['gh-signing'] } },
      ...extraRoutes,
    ],
  };
}

async function signedIn(viewport = { width: 1280, height: 900 }): Promise<Page> {
  const context = await browser.newContext({ viewport });
  context.setDefaultTimeout(ACTION_TIMEOUT);
  contexts.push(context);
  const page = await context.newPage();
  record(page, seen);
  await page.goto(`${adminUrl}/console/`);
  await page.getByLabel('Admin key').fill(rootKey);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('button', { name: 'Sign out' }).waitFor();
  await page.getByRole('link', { name: 'Upstream secrets' }).click();
  await page.getByRole('heading', { name: 'Upstream secrets' }).waitFor();
  await page.locator('tbody tr').first().waitFor();
  return page;
}

const usedBy = (page: Page, id: string) => page.locator(`tbody tr[data-secret-id="${id}"] [data-label="Used by"]`).textContent();
const storedIds = async () => (await keygate.store.listSecrets()).map((s) => s.id).sort();

beforeAll(async () => {
  browser = await launchChromium();
  up = await startUpstream();
  dir = mkdtempSync(join(tmpdir(), 'keygate-console-usages-'));
  next = config();
  const capture = captureStream();
  const loggers = createLoggers({ level: 'info', destination: capture.stream });
  logs = capture.text;
  keygate = await startKeygate({
    config: testConfig(next, dir),
    env: { KEYGATE_PEPPER: TEST_PEPPER, KEYGATE_MASTER_KEY: randomBytes(32).toString('base64') },
    logger: loggers.logger,
    accessLogger: loggers.access,
    reloadConfig: () => testConfig(next, dir),
  });
  adminUrl = `http://127.0.0.1:${keygate.adminPort}`;
  rootKey = (await keygate.service.create(CLI_CALLER, { tenant: 'system', role: 'admin', name: 'root' })).key;
  for (const [id, value] of Object.entries(VALUES)) await keygate.secrets.add(CLI_CALLER, { id, name: `${id} token`, value });
});

afterAll(async () => {
  for (const context of contexts) await context.close().catch(() => {});
  await browser?.close();
  await keygate?.close(500);
  await up?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('secret usages in the console', () => {
  let page: Page;

  it('each row says what uses the secret, or "not used"', async () => {
    page = await signedIn();
    expect(await page.getByRole('columnheader', { name: 'Used by' }).count()).toBe(1);
    expect(await usedBy(page, 'openai')).toBe('route llm (routes[0].secret.id)');
    expect(await usedBy(page, 'gh-signing')).toBe('webhook verifier of route github-hook (routes[1].webhook.secrets[0])');
    expect(await usedBy(page, 'spare')).toBe('not used');
    expect(await usedBy(page, 'later')).toBe('not used');
    await screenshot(page, 'usages-01-list');
  });

  it('removes an unused secret with the typed confirmation alone', async () => {
    await page.getByRole('button', { name: 'Remove spare token' }).click();
    const dialog = page.getByRole('dialog', { name: 'Remove spare token?' });
    expect(await dialog.textContent()).toContain('The configuration in force does not use it.');
    const confirm = dialog.getByRole('button', { name: 'Remove secret' });
    expect(await confirm.isDisabled()).toBe(true);
    await dialog.getByLabel('Type spare to confirm').fill('spare');
    await confirm.click();
    await dialog.waitFor({ state: 'detached' });
    await page.locator('tbody tr[data-secret-id="spare"]').waitFor({ state: 'detached' });
    expect(await storedIds()).toEqual(['gh-signing', 'later', 'openai']);
  });

  it('a used secret: the dialog names its uses, keygate refuses (409 detail shown), "Remove anyway" removes it with force', async () => {
    await page.getByRole('button', { name: 'Remove openai token' }).click();
    const dialog = page.getByRole('dialog', { name: 'Remove openai token?' });
    const note = dialog.getByRole('note');
    expect(await note.textContent()).toContain('route llm (routes[0].secret.id)');
    await dialog.getByLabel('Type openai to confirm').fill('openai');
    await dialog.getByRole('button', { name: 'Remove secret' }).click();
    const alert = dialog.getByRole('alert');
    await eventually(() => alert.textContent()).toContain('is in use by the configuration in force: route llm (routes[0].secret.id)');
    expect(await alert.textContent()).toContain('Remove anyway');
    // The refusal takes the focus (announced), and nothing was removed.
    expect(await page.evaluate(() => document.activeElement?.getAttribute('role'))).toBe('alert');
    expect(await storedIds()).toContain('openai');
    expect(await dialog.getByRole('button', { name: 'Remove secret' }).count()).toBe(0);
    await screenshot(page, 'usages-02-refused');
    await dialog.getByRole('button', { name: 'Remove anyway' }).click();
    await dialog.waitFor({ state: 'detached' });
    await page.locator('tbody tr[data-secret-id="openai"]').waitFor({ state: 'detached' });
    await eventually(() => page.locator('#toast').textContent()).toContain('although the configuration uses it');
    expect(await storedIds()).toEqual(['gh-signing', 'later']);
    const entry = (await keygate.store.listAudit({ limit: 1 })).entries[0];
    expect(entry).toMatchObject({ action: 'secret.remove', target: 'openai', detail: { forced: true, brokenUsages: 'route llm (routes[0].secret.id)' } });
  });

  it('a list loaded before a reload made the secret used: the server refuses, Cancel keeps it', async () => {
    // The page still shows "later" as not used; the configuration in force now names it.
    next = config([{ name: 'later-route', pathPrefix: '/later', upstream: up.url, secret: { id: 'later', header: 'x-later' } }]);
    keygate.reload();
    expect(await usedBy(page, 'later')).toBe('not used');
    await page.getByRole('button', { name: 'Remove later token' }).click();
    const dialog = page.getByRole('dialog', { name: 'Remove later token?' });
    await dialog.getByLabel('Type later to confirm').fill('later');
    await dialog.getByRole('button', { name: 'Remove secret' }).click();
    await eventually(() => dialog.getByRole('alert').textContent()).toContain('route later-route (routes[2].secret.id)');
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    await dialog.waitFor({ state: 'detached' });
    expect(await storedIds()).toEqual(['gh-signing', 'later']);
    // Loaded again, the row says so.
    await page.reload();
    await page.getByRole('heading', { name: 'Upstream secrets' }).waitFor();
    await eventually(() => usedBy(page, 'later')).toBe('route later-route (routes[2].secret.id)');
  });

  it('on a narrow screen each card labels what uses the secret', async () => {
    const narrow = await signedIn({ width: 390, height: 844 });
    const cell = narrow.locator('tbody tr[data-secret-id="gh-signing"] [data-label="Used by"]');
    expect(await cell.textContent()).toContain('webhook verifier of route github-hook');
    expect(await narrow.locator('tbody tr').first().evaluate((el) => getComputedStyle(el).display)).toBe('block');
    expect(await narrow.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    await screenshot(narrow, 'usages-03-narrow');
  });

  it('requested nothing outside the admin origin, broke no policy, and showed or logged no value', async () => {
    const outside = seen.requests.filter((url) => new URL(url).origin !== adminUrl);
    expect(outside).toEqual([]);
    // The 401 probe before sign-in and the 409 refusals are expected; a CSP or Trusted Types violation is not.
    expect(seen.errors.filter((e) => !/^Failed to load resource: the server responded with a status of (401|409) /.test(e))).toEqual([]);
    const html = await page.content();
    for (const value of Object.values(VALUES)) {
      expect(html).not.toContain(value);
      expect(logs()).not.toContain(value);
    }
  });
});

/**
 * Rate limits and quotas in the web console (Chromium): a platform admin creates a key with
 * rate limits and a quota in the create dialog (a bad value shows keygate's 422 detail on the
 * field at fault), sees them and what is left in the keys list as the proxy spends the
 * budget, tops it up (the proxy lets one more through) and edits the limits; creates a key
 * for an existing user through the user picker (the dialog hides its own choice of
 * permissions and says the key takes the user's group; the record says permissionsFrom
 * user); sees a key's budgets in its detail view, a group's rate limits on the groups page and
 * sets a tenant's limits and tops up its budget in the tenant's view. A tenant admin is not
 * offered top-ups or the tenant's settings, and keygate's refusal to let it remove a limit is
 * shown in the dialog. Dialogs work from the keyboard; nothing left the admin origin.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Browser, BrowserContext, Locator, Page } from 'playwright-core';
import { adminClient, type AdminClient } from '../helpers/admin.ts';
import { startTestKeygate, type TestKeygate } from '../helpers/keygate.ts';
import { startUpstream, type TestUpstream } from '../helpers/upstream.ts';
import { launchChromium, record, screenshot, type PageRecord } from './browser.ts';

// Globals of the page, for the functions handed to page.evaluate (they run in Chromium, not here).
declare const document: any;

vi.setConfig({ testTimeout: 60_000, hookTimeout: 60_000 });
const ACTION_TIMEOUT = 20_000;
const eventually = <T>(fn: () => T | Promise<T>) => expect.poll(fn, { timeout: ACTION_TIMEOUT, interval: 50 });

let browser: Browser;
let t: TestKeygate;
let up: TestUpstream;
let root: AdminClient;
let rootKey: string;
let acmeAdminKey: string;
const seen: PageRecord = { requests: [], errors: [] };
const contexts: BrowserContext[] = [];

async function signedIn(key: string): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  context.setDefaultTimeout(ACTION_TIMEOUT);
  contexts.push(context);
  const page = await context.newPage();
  record(page, seen);
  await page.goto(`${t.adminUrl}/console/`);
  await page.getByLabel('Admin key').fill(key);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('button', { name: 'Sign out' }).waitFor();
  return page;
}

/** Status and problem code of a request through the proxy. */
async function through(key: string): Promise<string> {
  const res = await fetch(`${t.url}/api/hello`, { headers: { 'x-api-key': key } });
  if (res.status === 200) {
    await res.body?.cancel();
    return '200';
  }
  return `${res.status} ${((await res.json()) as { code: string }).code}`;
}

const row = (page: Page, name: string) => page.locator('tbody tr', { has: page.locator('.key-name', { hasText: new RegExp(`^${name}$`) }) });
const limitsOf = (page: Page, name: string) => row(page, name).locator('[data-label="Limits"]');

/** The key in the open one-time dialog; closes it. */
async function takeOneTimeKey(page: Page): Promise<{ key: string; intro: string }> {
  const dialog = page.getByRole('dialog', { name: 'Copy your new key' });
  await dialog.waitFor();
  const key = await dialog.getByLabel('The new API key').inputValue();
  const intro = (await dialog.textContent()) ?? '';
  await dialog.getByRole('button', { name: 'Done' }).click();
  await dialog.waitFor({ state: 'detached' });
  return { key, intro };
}

async function idOf(name: string): Promise<string> {
  return (await t.keys.list({ tenant: 'acme' })).find((k) => k.name === name)!.id;
}

beforeAll(async () => {
  browser = await launchChromium();
  up = await startUpstream();
  t = await startTestKeygate({
    limits: { failedAuth: { max: 0 } },
    permissionGroups: { readers: ['echo:read'] },
    routes: [{ name: 'api', pathPrefix: '/api', upstream: up.url }],
  });
  rootKey = (await t.keys.create({ tenant: 'system', role: 'admin', name: 'root' })).key;
  acmeAdminKey = (await t.keys.create({ tenant: 'acme', name: 'acme-admin', permissions: ['keys:manage', 'echo:read'] })).key;
  root = adminClient(t.adminUrl, rootKey);
  expect((await root.post('/v1/groups', { tenant: 'acme', name: 'agents', permissions: ['echo:read'] })).status).toBe(201);
  expect((await root.post('/v1/users', { tenant: 'acme', name: 'alice', displayName: 'Alice Liddell', group: 'agents' })).status).toBe(201);
});

afterAll(async () => {
  for (const context of contexts) await context.close().catch(() => {});
  await browser?.close();
  await t?.stop();
  await up?.close();
});

describe('rate limits and quotas in the console, as a platform admin', () => {
  let page: Page;
  let budgetKey: string;

  it('creates a key with rate limits and a quota; a bad value shows keygate’s 422 detail on its field', async () => {
    page = await signedIn(rootKey);
    await page.goto(`${t.adminUrl}/console/#/keys?tenant=acme`);
    await row(page, 'acme-admin').waitFor();
    await page.getByRole('button', { name: 'Create key' }).click();
    const dialog = page.getByRole('dialog', { name: 'Create an API key' });
    await dialog.getByLabel('Name', { exact: true }).fill('budgeted');
    await dialog.getByLabel('Permissions', { exact: true }).fill('echo:read');
    await dialog.getByLabel('Rate limits (optional)').fill('5/s, 2/x');
    await dialog.getByLabel('Quota (optional)').fill('2/day');
    await dialog.getByRole('button', { name: 'Create key' }).click();
    await eventually(() => dialog.getByRole('alert').textContent()).toContain('"2/x": must be <count>/<period>');
    expect(await dialog.getByLabel('Rate limits (optional)').getAttribute('aria-invalid')).toBe('true');
    expect(await page.evaluate(() => document.activeElement?.getAttribute('name'))).toBe('rateLimits');
    expect((await t.keys.list({ tenant: 'acme' })).some((k) => k.name === 'budgeted')).toBe(false);

    await dialog.getByLabel('Rate limits (optional)').fill('5/s 100/1d');
    await screenshot(page, 'limits-01-create');
    await dialog.getByRole('button', { name: 'Create key' }).click();
    budgetKey = (await takeOneTimeKey(page)).key;
    const stored = (await t.keys.list({ tenant: 'acme' })).find((k) => k.name === 'budgeted')!;
    expect(stored).toMatchObject({ rateLimits: ['5/s', '100/1d'], quota: '2/day' });
    await eventually(() => limitsOf(page, 'budgeted').textContent()).toBe('5/s100/1d2/day · 2 left');
  });

  it('the list shows what is left as the proxy spends it; a top-up lets one more through', async () => {
    expect(await through(budgetKey)).toBe('200');
    expect(await through(budgetKey)).toBe('200');
    expect(await through(budgetKey)).toBe('429 quota_exhausted');
    await page.reload();
    await eventually(() => limitsOf(page, 'budgeted').textContent()).toBe('5/s100/1d2/day · 0 left');
    expect(await limitsOf(page, 'budgeted').locator('.quota-left.spent').count()).toBe(1);

    await row(page, 'budgeted').getByRole('button', { name: 'Top up budgeted' }).click();
    const dialog = page.getByRole('dialog', { name: 'Top up budgeted' });
    await eventually(() => dialog.getByRole('status').textContent()).toContain('Now 2/day: 2 used, 0 left; starts afresh ');
    await dialog.getByLabel('Amount').fill('1');
    await screenshot(page, 'limits-02-top-up');
    await dialog.getByRole('button', { name: 'Top up' }).click();
    await dialog.waitFor({ state: 'detached' });
    await eventually(() => page.locator('#toast').textContent()).toBe('Topped up “budgeted” by 1: 1 left.');
    await eventually(() => limitsOf(page, 'budgeted').textContent()).toBe('5/s100/1d2/day · 1 left');
    expect(await through(budgetKey)).toBe('200');
    expect(await through(budgetKey)).toBe('429 quota_exhausted');
    const audit = (await root.get('/v1/audit?limit=20')).json.entries as { action: string; detail: Record<string, unknown> }[];
    expect(audit.find((e) => e.action === 'key.quota_top_up')?.detail).toMatchObject({ amount: 1, quota: '2/day' });
  });

  it('edits the limits from the keyboard: Limits opens a dialog, Escape closes it, a change is saved', async () => {
    const opener = row(page, 'budgeted').getByRole('button', { name: 'Limits of budgeted' });
    await opener.focus();
    await page.keyboard.press('Enter');
    const dialog = page.getByRole('dialog', { name: 'Limits of budgeted' });
    await dialog.waitFor();
    expect(await page.evaluate(() => document.activeElement?.getAttribute('name'))).toBe('rateLimits');
    expect(await dialog.getByLabel('Rate limits', { exact: true }).inputValue()).toBe('5/s, 100/1d');
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'detached' });
    expect(await page.evaluate(() => document.activeElement?.getAttribute('aria-label'))).toBe('Limits of budgeted');

    await page.keyboard.press('Enter');
    await dialog.waitFor();
    await page.keyboard.press('Control+A');
    await page.keyboard.type('1/10s');
    await dialog.getByLabel('Quota', { exact: true }).fill('5/day');
    await dialog.getByRole('button', { name: 'Save limits' }).click();
    await dialog.waitFor({ state: 'detached' });
    await eventually(() => limitsOf(page, 'budgeted').textContent()).toMatch(/^1\/10s5\/day · \d left$/);
    expect((await t.keys.get(await idOf('budgeted')))).toMatchObject({ rateLimits: ['1/10s'], quota: '5/day' });
  });

  it('creates a key for an existing user through the picker: no permissions are chosen, the key takes the user’s group', async () => {
    await page.getByRole('button', { name: 'Create key' }).click();
    const dialog = page.getByRole('dialog', { name: 'Create an API key' });
    await dialog.getByLabel('Name', { exact: true }).fill('alice-laptop');
    const picker = dialog.getByLabel('Acts as user (optional)');
    // The tenant's users are offered.
    await eventually(() => dialog.locator('datalist option').evaluateAll((os) => os.map((o) => (o as any).value))).toContain('alice');
    expect(await dialog.getByRole('group', { name: 'Access' }).isVisible()).toBe(true);
    await picker.fill('alice');
    const note = dialog.locator('.notice');
    await eventually(() => note.textContent()).toContain('acts as user alice and takes the permissions of the user’s group (agents)');
    expect(await dialog.getByRole('group', { name: 'Access' }).isVisible()).toBe(false);
    expect(await dialog.getByLabel('Permissions', { exact: true }).isVisible()).toBe(false);
    await screenshot(page, 'limits-03-user-picker');
    // Any other name is only a label: the choice of access comes back.
    await picker.fill('alice-not-a-user');
    await eventually(() => dialog.getByRole('group', { name: 'Access' }).isVisible()).toBe(true);
    await picker.fill('alice');
    await dialog.getByRole('button', { name: 'Create key' }).click();
    const { key, intro } = await takeOneTimeKey(page);
    expect(intro).toContain('It acts as user alice: it has the permissions of the user’s group');
    const stored = (await t.keys.list({ tenant: 'acme' })).find((k) => k.name === 'alice-laptop')!;
    expect(stored).toMatchObject({ user: 'alice', permissionsFrom: 'user', permissions: [], group: null });
    await eventually(() => row(page, 'alice-laptop').locator('[data-label="Acts as"]').textContent()).toBe('aliceuser’s group');
    expect(await row(page, 'alice-laptop').locator('.sub').textContent()).toBe('the permissions of alice’s group');
    expect(await through(key)).toBe('200');
  });

  it('a key’s detail view shows its rate limits and budgets, with Edit limits and Top up', async () => {
    await page.goto(`${t.adminUrl}/console/#/key?id=${await idOf('budgeted')}`);
    const section = page.getByRole('region', { name: 'Rate limits and quota' });
    await eventually(() => section.locator('dl').textContent()).toMatch(/^Rate limits1\/10sQuota5\/day: 2 used, 3 left · starts afresh .+Tenant’s quotanone$/);
    expect(await section.getByRole('button', { name: 'Edit limits' }).count()).toBe(1);
    expect(await section.getByRole('button', { name: 'Top up' }).count()).toBe(1);
    await screenshot(page, 'limits-04-key-view');
  });

  it('sets a group’s rate limits on the groups page', async () => {
    await page.goto(`${t.adminUrl}/console/#/groups?tenant=acme`);
    const group = page.locator('tbody tr[data-group="acme/agents"]');
    await group.getByRole('button', { name: 'Rate limits of agents' }).click();
    const dialog = page.getByRole('dialog', { name: 'Rate limits of agents' });
    await dialog.getByLabel('Rate limits', { exact: true }).fill('bad');
    await dialog.getByRole('button', { name: 'Save' }).click();
    await eventually(() => dialog.getByRole('alert').textContent()).toContain('"bad": must be <count>/<period>');
    await dialog.getByLabel('Rate limits', { exact: true }).fill('2/s, 100/1d');
    await dialog.getByRole('button', { name: 'Save' }).click();
    await dialog.waitFor({ state: 'detached' });
    await eventually(() => group.locator('[data-label="Rate limits"]').textContent()).toBe('2/s100/1d');
    expect(await page.locator('tbody tr[data-group="/readers"] [data-label="Rate limits"]').textContent()).toBe('—');
    const stored = (await root.get('/v1/groups?tenant=acme')).json.groups.find((g: { name: string }) => g.name === 'agents');
    expect(stored.rateLimits).toEqual(['2/s', '100/1d']);
  });

  it('sets a tenant’s limits and budget in the tenant’s view, and tops it up', async () => {
    await page.goto(`${t.adminUrl}/console/#/tenant?name=acme`);
    const section = page.getByRole('region', { name: 'Rate limits and quota' });
    await eventually(() => section.locator('dl').textContent()).toBe('Rate limitsnoneQuotanone');
    expect(await section.getByRole('button', { name: 'Top up' }).count()).toBe(0);
    await section.getByRole('button', { name: 'Edit tenant limits' }).click();
    const dialog = page.getByRole('dialog', { name: 'Limits of tenant acme' });
    await dialog.getByLabel('Rate limits', { exact: true }).fill('100/s');
    await dialog.getByLabel('Quota', { exact: true }).fill('1000/fortnight');
    await dialog.getByRole('button', { name: 'Save limits' }).click();
    await eventually(() => dialog.getByRole('alert').textContent()).toContain('"1000/fortnight": must be');
    expect(await dialog.getByLabel('Quota', { exact: true }).getAttribute('aria-invalid')).toBe('true');
    await dialog.getByLabel('Quota', { exact: true }).fill('1000/month');
    await dialog.getByRole('button', { name: 'Save limits' }).click();
    await dialog.waitFor({ state: 'detached' });
    await eventually(() => section.locator('dl').textContent()).toMatch(/^Rate limits100\/sQuota1000\/monthUsed0Remaining1000Starts afresh/);

    await section.getByRole('button', { name: 'Top up' }).click();
    const topUp = page.getByRole('dialog', { name: 'Top up acme' });
    await eventually(() => topUp.getByRole('status').textContent()).toContain('Now 1000/month: 0 used, 1000 left; starts afresh ');
    await topUp.getByLabel('Amount').fill('10');
    await topUp.getByRole('button', { name: 'Top up' }).click();
    await topUp.waitFor({ state: 'detached' });
    await eventually(() => section.locator('dl').textContent()).toContain('Remaining1010');
    expect((await root.get('/v1/tenants/acme/limits')).json).toMatchObject({ rateLimits: ['100/s'], quota: '1000/month', quotaStatus: { remaining: 1010 } });
    await screenshot(page, 'limits-05-tenant');
  });
});

describe('as a tenant admin', () => {
  let page: Page;

  it('is offered no top-up, sees its tenant’s limits read-only, and is told when keygate refuses to remove a limit', async () => {
    page = await signedIn(acmeAdminKey);
    await row(page, 'budgeted').waitFor();
    expect(await limitsOf(page, 'budgeted').textContent()).toMatch(/^1\/10s5\/day · \d left$/);
    expect(await row(page, 'budgeted').getByRole('button', { name: 'Limits of budgeted' }).count()).toBe(1);
    expect(await page.getByRole('button', { name: /^Top up/ }).count()).toBe(0);

    await row(page, 'budgeted').getByRole('button', { name: 'Limits of budgeted' }).click();
    const dialog = page.getByRole('dialog', { name: 'Limits of budgeted' });
    // A key's quota is changed by platform admins only: the field is read-only here.
    expect(await dialog.getByLabel('Quota', { exact: true }).getAttribute('readonly')).not.toBeNull();
    await dialog.getByLabel('Rate limits', { exact: true }).fill('');
    await dialog.getByRole('button', { name: 'Save limits' }).click();
    await eventually(() => dialog.getByRole('alert').textContent()).toContain("only a platform admin may remove a key's rate limits");
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    expect((await t.keys.get(await idOf('budgeted')))!.rateLimits).toEqual(['1/10s']);

    await page.goto(`${t.adminUrl}/console/#/key?id=${await idOf('budgeted')}`);
    const keySection: Locator = page.getByRole('region', { name: 'Rate limits and quota' });
    await eventually(() => keySection.locator('dl').textContent()).toContain('Tenant’s quota1000/month');
    expect(await keySection.getByRole('button', { name: 'Edit limits' }).count()).toBe(1);
    expect(await keySection.getByRole('button', { name: 'Top up' }).count()).toBe(0);

    await page.goto(`${t.adminUrl}/console/#/tenant?name=acme`);
    const section = page.getByRole('region', { name: 'Rate limits and quota' });
    await eventually(() => section.locator('dl').textContent()).toMatch(/^Rate limits100\/sQuota1000\/month/);
    expect(await section.getByRole('button').count()).toBe(0);
    expect(await section.textContent()).toContain('Only a platform admin changes them or tops up the quota.');
    await screenshot(page, 'limits-06-tenant-admin');
  });

  it('broke no page policy and called nothing outside the admin origin', () => {
    expect(seen.requests.filter((url) => new URL(url).origin !== t.adminUrl)).toEqual([]);
    expect(seen.errors.filter((e) => !/^Failed to load resource: the server responded with a status of (401|403|422) /.test(e))).toEqual([]);
  });
});

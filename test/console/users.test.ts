/**
 * The Users and Permission groups pages of the web console in Chromium: a platform admin
 * creates a tenant group and a user in it (the user's key, acting as it, gets the group's
 * permissions through the proxy), moves the user to a group of the configuration (the proxy
 * follows), lists the user's keys, disables the user (the proxy answers 401 user_disabled)
 * and enables it again; deleting a group still in use shows keygate's 409 detail in the
 * dialog; config groups are read-only. A tenant-scoped admin sees only its own tenant's
 * users and groups and creates users there. Dialogs work from the keyboard; nothing left the
 * admin origin or broke the page's policies.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { adminClient, type AdminClient } from '../helpers/admin.ts';
import { expectProblem } from '../helpers/http.ts';
import { startTestKeygate, type TestKeygate } from '../helpers/keygate.ts';
import { startUpstream, type TestUpstream } from '../helpers/upstream.ts';
import { launchChromium, record, screenshot, type PageRecord } from './browser.ts';

// Globals of the page, for the functions handed to page.evaluate (they run in Chromium, not here).
declare const document: any, getComputedStyle: any;

vi.setConfig({ testTimeout: 60_000, hookTimeout: 60_000 });
const ACTION_TIMEOUT = 20_000;
const eventually = <T>(fn: () => T | Promise<T>) => expect.poll(fn, { timeout: ACTION_TIMEOUT, interval: 50 });

let browser: Browser;
let t: TestKeygate;
let up: TestUpstream;
let root: AdminClient;
let rootKey: string;
let acmeAdminKey: string;
let aliceKey: string;
const seen: PageRecord = { requests: [], errors: [] };
const contexts: BrowserContext[] = [];

async function signedIn(key: string, viewport = { width: 1280, height: 900 }): Promise<Page> {
  const context = await browser.newContext({ viewport });
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

async function open(page: Page, link: string): Promise<void> {
  await page.getByRole('link', { name: link }).click();
  await page.getByRole('heading', { name: link, level: 1 }).waitFor();
}

const proxy = (key: string) => fetch(`${t.url}/api/hello`, { headers: { 'x-api-key': key } });
/** What the upstream was told the key may do, or the refusal's status and code. */
async function through(key: string): Promise<string> {
  const res = await proxy(key);
  const body = (await res.json()) as { headers?: Record<string, string>; code?: string };
  return res.status === 200 ? `200 ${body.headers?.['x-auth-permissions'] ?? ''}` : `${res.status} ${body.code}`;
}

const userRow = (page: Page, tenant: string, name: string) => page.locator(`tbody tr[data-user="${tenant}/${name}"]`);
const groupRow = (page: Page, tenant: string, name: string) => page.locator(`tbody tr[data-group="${tenant}/${name}"]`);

beforeAll(async () => {
  browser = await launchChromium();
  up = await startUpstream();
  t = await startTestKeygate({
    permissionGroups: { readers: ['echo:read'] },
    routes: [{ name: 'api', pathPrefix: '/api', upstream: up.url, auth: { permissions: ['echo:read'] } }],
  });
  rootKey = (await t.keys.create({ tenant: 'system', role: 'admin', name: 'root' })).key;
  acmeAdminKey = (await t.keys.create({ tenant: 'acme', name: 'acme-admin', permissions: ['keys:manage', 'echo:read', 'echo:write'] })).key;
  root = adminClient(t.adminUrl, rootKey);
  // Another tenant's group and user, which acme's admin must never see.
  expect((await root.post('/v1/groups', { tenant: 'globex', name: 'globex-ops', permissions: ['echo:read'] })).status).toBe(201);
  expect((await root.post('/v1/users', { tenant: 'globex', name: 'gina', group: 'globex-ops' })).status).toBe(201);
});

afterAll(async () => {
  for (const context of contexts) await context.close().catch(() => {});
  await browser?.close();
  await t?.stop();
  await up?.close();
});

describe('users and permission groups in the console', () => {
  let page: Page;

  it('a platform admin creates a tenant group; the configuration’s group is read-only', async () => {
    page = await signedIn(rootKey);
    await open(page, 'Permission groups');
    await groupRow(page, '', 'readers').waitFor();
    expect(await groupRow(page, '', 'readers').locator('[data-label="Defined in"]').textContent()).toBe('Configuration');
    expect(await groupRow(page, '', 'readers').getByRole('button').count()).toBe(0);
    expect(await groupRow(page, 'globex', 'globex-ops').count()).toBe(1);

    await page.getByRole('button', { name: 'Create group' }).click();
    const dialog = page.getByRole('dialog', { name: 'Create a permission group' });
    await dialog.getByLabel('Tenant', { exact: true }).fill('acme');
    await dialog.getByLabel('Name', { exact: true }).fill('writers');
    await dialog.getByLabel('Permissions', { exact: true }).fill('echo:read, echo:write');
    await dialog.getByRole('button', { name: 'Create group' }).click();
    await dialog.waitFor({ state: 'detached' });
    await groupRow(page, 'acme', 'writers').waitFor();
    expect(await groupRow(page, 'acme', 'writers').locator('[data-label="Permissions"]').textContent()).toBe('echo:readecho:write');
    await eventually(() => page.locator('#toast').textContent()).toContain('Group “writers” created in tenant acme');
    const stored = (await root.get('/v1/groups?tenant=acme')).json.groups.find((g: { name: string }) => g.name === 'writers');
    expect(stored).toMatchObject({ tenant: 'acme', permissions: ['echo:read', 'echo:write'], source: 'tenant' });
    await screenshot(page, 'users-01-groups');
  });

  it('a bad group name is refused in the dialog, naming the field; nothing is written', async () => {
    await page.getByRole('button', { name: 'Create group' }).click();
    const dialog = page.getByRole('dialog', { name: 'Create a permission group' });
    await dialog.getByLabel('Tenant', { exact: true }).fill('acme');
    await dialog.getByLabel('Name', { exact: true }).fill('readers');
    await dialog.getByLabel('Permissions', { exact: true }).fill('echo:read');
    await dialog.getByRole('button', { name: 'Create group' }).click();
    await eventually(() => dialog.getByRole('alert').textContent()).toContain('is a group of the configuration');
    // Escape closes it, and the keyboard is back on the button that opened it.
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'detached' });
    await eventually(() => page.evaluate(() => document.activeElement?.textContent)).toBe('Create group');
    expect((await root.get('/v1/groups?tenant=acme')).json.groups.filter((g: { tenant: string | null }) => g.tenant === 'acme').map((g: { name: string }) => g.name)).toEqual(['writers']);
  });

  it('creates a user with a choice of the tenant’s groups; a key acting as it gets the group’s permissions', async () => {
    await open(page, 'Users');
    await userRow(page, 'globex', 'gina').waitFor();
    await page.getByRole('button', { name: 'Create user' }).click();
    const dialog = page.getByRole('dialog', { name: 'Create a user' });
    await dialog.getByLabel('Tenant', { exact: true }).fill('acme');
    await dialog.getByLabel('Name', { exact: true }).fill('alice');
    await dialog.getByLabel('Display name (optional)').fill('Alice Liddell');
    const group = dialog.getByLabel('Permission group');
    // The tenant's own group and the configuration's, not another tenant's.
    await eventually(() => group.locator('option').allTextContents()).toEqual(['writers: echo:read, echo:write', 'readers: echo:read']);
    await group.selectOption('writers');
    await dialog.getByRole('button', { name: 'Create user' }).click();
    await dialog.waitFor({ state: 'detached' });
    const row = userRow(page, 'acme', 'alice');
    await row.waitFor();
    expect(await row.locator('[data-label="Name"]').textContent()).toBe('aliceAlice Liddell');
    expect(await row.locator('[data-label="Group"]').textContent()).toBe('writersecho:read, echo:write');
    expect(await row.locator('[data-label="Status"]').textContent()).toBe('Enabled');
    expect((await root.get('/v1/users/acme/alice')).json).toMatchObject({ group: 'writers', displayName: 'Alice Liddell', disabled: false });

    const created = await t.keys.create({ tenant: 'acme', name: 'alice-laptop', user: 'alice' });
    expect(created.record.permissionsFrom).toBe('user');
    aliceKey = created.key;
    expect(await through(aliceKey)).toBe('200 echo:read,echo:write');
    await screenshot(page, 'users-02-users');
  });

  it('changes the user’s group: the proxy gives its key the new group at once', async () => {
    await userRow(page, 'acme', 'alice').getByRole('button', { name: 'Edit alice' }).click();
    const dialog = page.getByRole('dialog', { name: 'Edit alice' });
    const group = dialog.getByLabel('Permission group');
    await eventually(() => group.inputValue()).toBe('writers');
    await group.selectOption('readers');
    await dialog.getByRole('button', { name: 'Save' }).click();
    await dialog.waitFor({ state: 'detached' });
    await eventually(() => userRow(page, 'acme', 'alice').locator('[data-label="Group"]').textContent()).toBe('readersecho:read');
    await eventually(() => through(aliceKey)).toBe('200 echo:read');
  });

  it('shows the user’s keys', async () => {
    await userRow(page, 'acme', 'alice').getByRole('button', { name: 'Keys of alice' }).click();
    const dialog = page.getByRole('dialog', { name: 'Keys of alice' });
    await dialog.locator('tbody tr').first().waitFor();
    const cells = await dialog.locator('tbody tr').first().locator('th, td').allTextContents();
    expect(cells.slice(0, 4)).toEqual(['alice-laptop', expect.stringMatching(/^kg_acme_/), 'Active', 'Acts as the user: its group’s permissions']);
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'detached' });
  });

  it('disables the user (confirmed): its key is refused with 401 user_disabled; enabling lets it work again', async () => {
    await userRow(page, 'acme', 'alice').getByRole('button', { name: 'Disable alice' }).click();
    const dialog = page.getByRole('dialog', { name: 'Disable alice?' });
    // Cancel has the focus first: Enter does not disable by accident.
    await eventually(() => page.evaluate(() => document.activeElement?.textContent)).toBe('Cancel');
    await dialog.getByRole('button', { name: 'Disable user' }).click();
    await dialog.waitFor({ state: 'detached' });
    await eventually(() => userRow(page, 'acme', 'alice').locator('[data-label="Status"]').textContent()).toBe('Disabled');
    const refused = await proxy(aliceKey);
    expectProblem({ status: refused.status, headers: refused.headers, text: await refused.clone().text(), json: await refused.json() }, 401, 'user_disabled');
    expect((await root.get('/v1/users/acme/alice')).json.disabled).toBe(true);
    await screenshot(page, 'users-03-disabled');

    await userRow(page, 'acme', 'alice').getByRole('button', { name: 'Enable alice' }).click();
    await eventually(() => userRow(page, 'acme', 'alice').locator('[data-label="Status"]').textContent()).toBe('Enabled');
    await eventually(() => through(aliceKey)).toBe('200 echo:read');
  });

  it('deleting a group still in use shows keygate’s 409 detail; once unused it is deleted', async () => {
    expect((await root.post('/v1/users', { tenant: 'acme', name: 'bob', group: 'writers' })).status).toBe(201);
    await open(page, 'Permission groups');
    await groupRow(page, 'acme', 'writers').getByRole('button', { name: 'Delete writers' }).click();
    const dialog = page.getByRole('dialog', { name: 'Delete writers?' });
    await dialog.getByRole('button', { name: 'Delete group' }).click();
    await eventually(() => dialog.getByRole('alert').textContent()).toContain('Not deleted: group "writers" is used by users bob');
    await screenshot(page, 'users-04-group-in-use');
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    await dialog.waitFor({ state: 'detached' });
    expect(await groupRow(page, 'acme', 'writers').count()).toBe(1);

    expect((await root.patch('/v1/users/acme/bob', { group: 'readers' })).status).toBe(200);
    await groupRow(page, 'acme', 'writers').getByRole('button', { name: 'Delete writers' }).click();
    await page.getByRole('dialog', { name: 'Delete writers?' }).getByRole('button', { name: 'Delete group' }).click();
    await eventually(() => groupRow(page, 'acme', 'writers').count()).toBe(0);
  });

  it('edits a tenant group’s permissions', async () => {
    expect((await root.post('/v1/groups', { tenant: 'acme', name: 'ops', permissions: ['echo:read'] })).status).toBe(201);
    await page.reload();
    await groupRow(page, 'acme', 'ops').getByRole('button', { name: 'Edit permissions of ops' }).click();
    const dialog = page.getByRole('dialog', { name: 'Edit permissions of ops' });
    await dialog.getByLabel('Permissions', { exact: true }).fill('echo:read echo:write');
    await dialog.getByRole('button', { name: 'Save' }).click();
    await dialog.waitFor({ state: 'detached' });
    await eventually(() => groupRow(page, 'acme', 'ops').locator('[data-label="Permissions"]').textContent()).toBe('echo:readecho:write');
    expect((await root.get('/v1/groups?tenant=acme')).json.groups.find((g: { name: string }) => g.name === 'ops').permissions).toEqual(['echo:read', 'echo:write']);
  });

  it('a tenant-scoped admin sees only its tenant’s users and groups, and creates users there', async () => {
    const tenantPage = await signedIn(acmeAdminKey);
    await open(tenantPage, 'Users');
    await userRow(tenantPage, 'acme', 'alice').waitFor();
    expect((await tenantPage.locator('tbody tr').evaluateAll((rows: any[]) => rows.map((r) => r.getAttribute('data-user')))).sort()).toEqual(['acme/alice', 'acme/bob']);
    expect(await tenantPage.getByLabel('Tenant', { exact: true }).count()).toBe(0);
    expect(await tenantPage.locator('.fixed-tenant').textContent()).toBe('Tenant acme');

    await tenantPage.getByRole('button', { name: 'Create user' }).click();
    const dialog = tenantPage.getByRole('dialog', { name: 'Create a user' });
    expect(await dialog.getByLabel('Tenant', { exact: true }).count()).toBe(0);
    await dialog.getByLabel('Name', { exact: true }).fill('carol');
    const group = dialog.getByLabel('Permission group');
    await eventually(() => group.locator('option').allTextContents()).toEqual(['ops: echo:read, echo:write', 'readers: echo:read']);
    await group.selectOption('ops');
    await dialog.getByRole('button', { name: 'Create user' }).click();
    await dialog.waitFor({ state: 'detached' });
    await userRow(tenantPage, 'acme', 'carol').waitFor();
    expect((await root.get('/v1/users/acme/carol')).json).toMatchObject({ tenant: 'acme', group: 'ops' });

    await open(tenantPage, 'Permission groups');
    await groupRow(tenantPage, 'acme', 'ops').waitFor();
    const groups = await tenantPage.locator('tbody tr').evaluateAll((rows: any[]) => rows.map((r) => r.getAttribute('data-group')));
    expect(groups.sort()).toEqual(['/readers', 'acme/ops']);
    expect(await tenantPage.content()).not.toContain('globex');
    await screenshot(tenantPage, 'users-05-tenant-admin');
  });

  it('on a narrow screen each user is a card with labelled lines', async () => {
    const narrow = await signedIn(rootKey, { width: 390, height: 844 });
    await open(narrow, 'Users');
    const row = userRow(narrow, 'acme', 'alice');
    await row.waitFor();
    const label = await row.locator('[data-label="Group"]').evaluate((cell: any) => getComputedStyle(cell, '::before').content);
    expect(label).toBe('"Group"');
    await screenshot(narrow, 'users-06-narrow');
  });

  it('nothing was requested outside the admin origin, and no page broke its policies', () => {
    const origin = new URL(t.adminUrl).origin;
    expect(seen.requests.filter((url) => new URL(url).origin !== origin)).toEqual([]);
    // The 401 (probing for a session before sign-in), the 409 and the 422 the tests provoke are
    // expected; anything else — a CSP or Trusted Types violation, an exception — is not.
    expect(seen.errors.filter((e) => !/^Failed to load resource: the server responded with a status of (401|409|422) /.test(e))).toEqual([]);
  });
});

/**
 * A key's detail view (`#/key?id=…`) and a tenant's view (`#/tenant?name=…`), each with the
 * usage chart of the last 30 UTC days (usage-chart.js, docs/usage.md). The key view shows
 * the key's record as the admin API lists it; the tenant view its key counts and the keys
 * nobody has used for 30 days (the API's `unusedDays`), the ones to review and revoke.
 * Another tenant's key or tenant is "not found", as the API answers a tenant admin.
 */
import { ApiError, query, request } from './api.js';
import { h, replace, time } from './dom.js';
import { listRow, listTable, loadInto } from './list.js';
import { usageChart } from './usage-chart.js';
import { keyLimitsSection, tenantLimitsSection } from './limits.js';

/** @typedef {import('./app.js').PageContext} PageContext */
/** @typedef {import('./usage-chart.js').UsageDay} UsageDay */
/** @typedef {import('./api.js').KeyRecord & { environment?: 'live' | 'sandbox' }} KeyRecord */

const DAYS = 30;
const CAPTION = `Requests per day, last ${DAYS} days (UTC)`;

/** "written by each keygate every few seconds": why today's bar may lag. */
const LAG_NOTE = 'Each keygate instance writes its counts every few seconds (lifecycle.usageFlushMs), so the last minutes may not show yet.';

/**
 * @param {HTMLElement} host
 * @param {unknown} error
 * @param {string} what
 */
function notFound(host, error, what) {
  if (!(error instanceof ApiError) || error.status !== 404) return false;
  replace(host, h('p', { class: 'empty' }, `No such ${what}, or not one you manage.`));
  return true;
}

/** @param {PageContext} ctx */
export function renderKeyDetail(ctx) {
  const id = ctx.params.get('id') ?? '';
  const title = h('h1', { id: 'key-title', tabindex: '-1' }, 'API key');
  const details = h('div', { class: 'table-host' });
  // Its rate limits and quota, with what is left (limits.js).
  const limitsHost = h('div');
  const chartHost = h('div', { class: 'usage-host' });
  replace(
    ctx.main,
    h(
      'section',
      { 'aria-labelledby': 'key-title' },
      h('p', {}, h('a', { href: '#/keys' }, '← API keys')),
      h('div', { class: 'page-head' }, title),
      details,
      limitsHost,
      h('h2', {}, 'Usage'),
      h('p', { class: 'muted' }, LAG_NOTE),
      chartHost,
    ),
  );
  title.focus();
  void loadInto(details, 'the key', async () => {
    /** @type {KeyRecord} */
    let key;
    try {
      key = await request('GET', `/v1/keys/${encodeURIComponent(id)}`);
    } catch (error) {
      if (notFound(details, error, 'key')) return replace(chartHost);
      throw error;
    }
    replace(title, 'API key ', h('span', { class: 'key-name' }, key.name));
    document.title = `${key.name} · keygate console`;
    /** @type {[string, Node | string][]} */
    const facts = [
      ['Key prefix', h('code', {}, key.prefix)],
      ['Tenant', h('a', { href: `#/tenant?name=${encodeURIComponent(key.tenant)}` }, key.tenant)],
      ['Environment', key.environment === 'sandbox' ? 'Sandbox' : 'Live'],
      ['Role', key.role],
      ['Status', key.status],
      ['Created', time(key.createdAt)],
      ['Expires', time(key.expiresAt, 'never')],
      ['Last used', time(key.lastUsedAt, 'never')],
    ];
    replace(details, h('dl', { class: 'facts' }, facts.flatMap(([label, value]) => [h('dt', {}, label), h('dd', {}, value)])));
    replace(limitsHost, keyLimitsSection(ctx, key));
    await loadUsage(chartHost, `/v1/keys/${encodeURIComponent(id)}/usage`);
  });
}

/** @param {PageContext} ctx */
export function renderTenant(ctx) {
  const tenant = ctx.params.get('name') ?? (ctx.info.scope.tenant ?? '');
  // A tenant admin manages its own tenant only; the API would answer 404 anyway.
  if (!ctx.info.scope.platform && tenant !== ctx.info.scope.tenant) {
    replace(ctx.main, h('section', {}, h('h1', { tabindex: '-1' }, 'Tenant'), h('p', { class: 'empty' }, 'No such tenant, or not one you manage.')));
    return;
  }
  const title = h('h1', { id: 'tenant-title', tabindex: '-1' }, 'Tenant ', h('span', {}, tenant));
  const counts = h('p', { class: 'muted', role: 'status' });
  const chartHost = h('div', { class: 'usage-host' });
  const unusedHost = h('div', { class: 'table-host' });
  replace(
    ctx.main,
    h(
      'section',
      { 'aria-labelledby': 'tenant-title' },
      h('p', {}, h('a', { href: `#/keys${query({ tenant: ctx.info.scope.platform ? tenant : undefined })}` }, `← API keys of ${tenant}`)),
      h('div', { class: 'page-head' }, title),
      counts,
      // Its rate limits and quota, all its keys together, with what is left (limits.js).
      tenantLimitsSection(ctx, tenant),
      h('h2', {}, 'Usage of all its keys'),
      h('p', { class: 'muted' }, LAG_NOTE),
      chartHost,
      h('h2', {}, `Keys not used for ${DAYS} days`),
      h('p', { class: 'muted' }, 'Last used more than 30 days ago, or never used and created more than 30 days ago: review them, and revoke the ones nobody needs.'),
      unusedHost,
    ),
  );
  title.focus();
  document.title = `${tenant} · keygate console`;
  void (async () => {
    try {
      /** @type {{ tenants: import('./api.js').TenantSummary[] }} */
      const { tenants } = await request('GET', '/v1/tenants');
      const summary = tenants.find((t) => t.tenant === tenant);
      replace(counts, summary ? `${summary.active} active, ${summary.expired} expired, ${summary.revoked} revoked keys.` : 'No keys yet.');
    } catch {
      replace(counts);
    }
  })();
  void loadUsage(chartHost, `/v1/tenants/${encodeURIComponent(tenant)}/usage`, 'tenant');
  void loadInto(unusedHost, 'the unused keys', async () => {
    /** @type {{ keys: KeyRecord[] }} */
    let answer;
    try {
      answer = await request('GET', `/v1/keys${query({ tenant, unusedDays: String(DAYS) })}`);
    } catch (error) {
      if (notFound(unusedHost, error, 'tenant')) return;
      throw error;
    }
    if (answer.keys.length === 0) return replace(unusedHost, h('p', { class: 'empty' }, `Every key of ${tenant} was used in the last ${DAYS} days.`));
    const rows = answer.keys.map((key) =>
      listRow({ 'data-key-id': key.id }, [
        ['Name', h('a', { class: 'key-name', href: `#/key?id=${encodeURIComponent(key.id)}` }, key.name)],
        ['Key prefix', h('code', {}, key.prefix)],
        ['Created', time(key.createdAt)],
        ['Last used', time(key.lastUsedAt, 'never')],
      ]),
    );
    replace(unusedHost, listTable({ className: 'keys unused', caption: `Keys of ${tenant} not used for ${DAYS} days`, columns: ['Name', 'Key prefix', 'Created', 'Last used'], rows }));
  });
}

/**
 * @param {HTMLElement} host
 * @param {string} path
 * @param {string} [what]
 */
function loadUsage(host, path, what = 'key') {
  return loadInto(host, 'the usage', async () => {
    /** @type {{ days: UsageDay[] }} */
    let usage;
    try {
      usage = await request('GET', `${path}${query({ days: String(DAYS) })}`);
    } catch (error) {
      if (notFound(host, error, what)) return;
      throw error;
    }
    replace(host, usageChart(usage.days, { caption: CAPTION }));
  });
}

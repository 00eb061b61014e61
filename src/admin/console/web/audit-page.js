/**
 * The audit log, newest first, a page at a time (the API's cursor: `next` is where the
 * following, older page starts; the cursors of the pages seen so far make "Newer" work).
 * A tenant-scoped admin sees its tenant's entries only — the API decides that.
 */
import { query, request } from './api.js';
import { button } from './dialogs.js';
import { field, h, replace, time } from './dom.js';
import { listRow, listTable, loadInto } from './list.js';

/** @typedef {import('./api.js').AuditEntry} AuditEntry */

/** @type {Record<string, string>} */
const ACTIONS = {
  'key.create': 'Key created',
  'key.rename': 'Key renamed',
  'key.revoke': 'Key revoked',
  'key.revoke_all': 'All keys revoked',
  'key.rotate': 'Key rotated',
  'key.expire': 'Key expired',
  'secret.create': 'Secret added',
  'secret.rename': 'Secret renamed',
  'secret.remove': 'Secret removed',
  'secret.rewrap': 'Secret re-encrypted',
  'admin.login_failed': 'Admin login failed',
  'console.sign_in': 'Console sign-in',
  'console.sign_out': 'Console sign-out',
};

/** @param {import('./app.js').PageContext} ctx */
export function renderAudit(ctx) {
  const title = h('h1', { id: 'audit-title', tabindex: '-1' }, 'Audit log');
  const size = h('select', { name: 'limit' }, ['25', '50', '100', '200'].map((n) => h('option', { value: n }, n)));
  size.value = ['25', '50', '100', '200'].includes(ctx.params.get('limit') ?? '') ? /** @type {string} */ (ctx.params.get('limit')) : '50';
  /** Cursors of the pages before this one; '' is the first (newest) page. */
  const cursors = [''];
  /** @type {string | null} */
  let next = null;
  const newer = button('Newer', { onclick: () => (cursors.pop(), void load()) });
  const older = button('Older', { onclick: () => next !== null && (cursors.push(next), void load()) });
  const where = h('p', { class: 'muted', role: 'status' });
  const tableHost = h('div', { class: 'table-host' });
  size.addEventListener('change', () => {
    cursors.splice(1);
    ctx.setParams({ limit: size.value });
    void load();
  });
  replace(
    ctx.main,
    h(
      'section',
      { 'aria-labelledby': 'audit-title' },
      h('div', { class: 'page-head' }, title),
      h('p', { class: 'muted' }, ctx.info.scope.platform ? 'Every change to keys and secrets, sign-ins and failed logins, newest first.' : `Changes to the keys of tenant ${ctx.info.scope.tenant}, newest first.`),
      h('div', { class: 'toolbar', role: 'group', 'aria-label': 'Pages' }, field('Entries per page', size), h('div', { class: 'field push pager' }, newer, older)),
      where,
      tableHost,
    ),
  );
  title.focus();

  function load() {
    return loadInto(tableHost, 'the audit log', async () => {
      /** @type {{ entries: AuditEntry[], next: string | null }} */
      const page = await request('GET', `/v1/audit${query({ limit: size.value, before: cursors[cursors.length - 1] || undefined })}`);
      next = page.next;
      newer.disabled = cursors.length === 1;
      older.disabled = next === null;
      replace(where, `Page ${cursors.length}${page.entries.length ? `: ${page.entries.length} entries` : ''}`);
      render(page.entries);
    });
  }

  /** @param {AuditEntry[]} entries */
  function render(entries) {
    if (entries.length === 0) {
      replace(tableHost, h('p', { class: 'empty' }, 'No entries.'));
      return;
    }
    /** @param {string} text */
    const muted = (text) => h('span', { class: 'muted' }, text);
    const rows = entries.map((entry) =>
      listRow({}, [
        ['Time', time(entry.at)],
        ['Action', h('span', {}, ACTIONS[entry.action] ?? entry.action, h('span', { class: 'sub' }, entry.action))],
        ['Actor', entry.actor === null ? muted('unknown') : h('code', {}, entry.actor)],
        ['Tenant', entry.tenant ?? muted('—')],
        ['Target', entry.target === null ? muted('—') : h('code', {}, entry.target)],
        ['Details', h('dl', { class: 'detail' }, Object.entries(entry.detail).flatMap(([name, value]) => [h('dt', {}, name), h('dd', {}, value === null ? '—' : String(value))]))],
      ]),
    );
    replace(tableHost, listTable({ className: 'audit', caption: 'Audit log entries, newest first', columns: ['Time', 'Action', 'Actor', 'Tenant', 'Target', 'Details'], rows }));
  }

  void load();
}

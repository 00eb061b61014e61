/**
 * The audit log, newest first, a page at a time (the API's cursor: `next` is where the
 * following, older page starts; the cursors of the pages seen so far make "Newer" work).
 * A tenant-scoped admin sees its tenant's entries only — the API decides that.
 */
import { ApiError, query, request } from './api.js';
import { button } from './dialogs.js';
import { field, h, replace, time } from './dom.js';

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

  async function load() {
    tableHost.setAttribute('aria-busy', 'true');
    try {
      /** @type {{ entries: AuditEntry[], next: string | null }} */
      const page = await request('GET', `/v1/audit${query({ limit: size.value, before: cursors[cursors.length - 1] || undefined })}`);
      next = page.next;
      newer.disabled = cursors.length === 1;
      older.disabled = next === null;
      replace(where, `Page ${cursors.length}${page.entries.length ? `: ${page.entries.length} entries` : ''}`);
      render(page.entries);
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) return;
      replace(tableHost, h('div', { class: 'error', role: 'alert' }, `Could not load the audit log: ${/** @type {Error} */ (error).message} `, button('Retry', { onclick: () => void load() })));
    } finally {
      tableHost.removeAttribute('aria-busy');
    }
  }

  /** @param {AuditEntry[]} entries */
  function render(entries) {
    if (entries.length === 0) {
      replace(tableHost, h('p', { class: 'empty' }, 'No entries.'));
      return;
    }
    const columns = ['Time', 'Action', 'Actor', 'Tenant', 'Target', 'Details'];
    replace(
      tableHost,
      h(
        'table',
        { class: 'list audit' },
        h('caption', { class: 'visually-hidden' }, 'Audit log entries, newest first'),
        h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col' }, c)))),
        h(
          'tbody',
          {},
          entries.map((entry) =>
            h(
              'tr',
              {},
              h('td', { 'data-label': 'Time' }, time(entry.at)),
              h('th', { scope: 'row', 'data-label': 'Action' }, ACTIONS[entry.action] ?? entry.action, h('span', { class: 'sub' }, entry.action)),
              h('td', { 'data-label': 'Actor' }, entry.actor === null ? h('span', { class: 'muted' }, 'unknown') : h('code', {}, entry.actor)),
              h('td', { 'data-label': 'Tenant' }, entry.tenant ?? h('span', { class: 'muted' }, '—')),
              h('td', { 'data-label': 'Target' }, entry.target === null ? h('span', { class: 'muted' }, '—') : h('code', {}, entry.target)),
              h(
                'td',
                { 'data-label': 'Details' },
                h(
                  'dl',
                  { class: 'detail' },
                  Object.entries(entry.detail).flatMap(([name, value]) => [h('dt', {}, name), h('dd', {}, value === null ? '—' : String(value))]),
                ),
              ),
            ),
          ),
        ),
      ),
    );
  }

  void load();
}

/**
 * What every list page shares: loading into a region (marked busy meanwhile; on failure an
 * alert with a Retry button — except when the session ended, which the app handles) and
 * the table itself (a caption for screen readers, column headers, one row per item; the
 * stylesheet turns rows into cards on narrow screens from each cell's `data-label`).
 */
import { ApiError } from './api.js';
import { button } from './dialogs.js';
import { h, replace } from './dom.js';

/**
 * @param {HTMLElement} host
 * @param {string} what e.g. "the keys", for the error message
 * @param {() => Promise<void>} work
 */
export async function loadInto(host, what, work) {
  host.setAttribute('aria-busy', 'true');
  try {
    await work();
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return;
    replace(host, h('div', { class: 'error', role: 'alert' }, `Could not load ${what}: ${/** @type {Error} */ (error).message} `, button('Retry', { onclick: () => void loadInto(host, what, work) })));
  } finally {
    host.removeAttribute('aria-busy');
  }
}

/**
 * @param {{ className: string, caption: string, columns: string[], rows: HTMLTableRowElement[] }} table
 */
export function listTable(table) {
  return h(
    'table',
    { class: `list ${table.className}` },
    h('caption', { class: 'visually-hidden' }, table.caption),
    h('thead', {}, h('tr', {}, table.columns.map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, table.rows),
  );
}

/**
 * A row: the first cell is the row's header. Each cell is [column label, content].
 * @param {Record<string, string>} props
 * @param {[string, Node | string][]} cells
 */
export function listRow(props, cells) {
  return h('tr', props, cells.map(([label, content], i) => (i === 0 ? h('th', { scope: 'row', 'data-label': label }, content) : h('td', { 'data-label': label }, content))));
}

/**
 * Upstream secrets (platform admins only): the list (metadata only — the API has no way to
 * return a value) with where the configuration in force uses each one, add, rename or move
 * to a new id, remove. A value is typed once into a masked field that is emptied when its
 * dialog closes; it is never put anywhere else. Removing a secret the configuration uses is
 * refused by keygate (409, the detail names every use); the dialog then shows that detail
 * and offers "Remove anyway", which removes it with `?force=true`.
 */
import { ApiError, request } from './api.js';
import { button, openDialog } from './dialogs.js';
import { field, h, replace, time } from './dom.js';
import { fieldOf } from './keys-page.js';
import { listRow, listTable, loadInto } from './list.js';

/** @typedef {import('./api.js').SecretRecord} SecretRecord */
/**
 * Where the configuration in force names a secret (GET /v1/secrets, secrets/usages.ts).
 * @typedef {{ kind: 'route_secret' | 'webhook_verifier', route: string, path: string }} SecretUsage
 * @typedef {SecretRecord & { usages: SecretUsage[] }} ListedSecret
 */

/** @type {Record<SecretUsage['kind'], string>} */
const USAGE_LABELS = { route_secret: 'route', webhook_verifier: 'webhook verifier of route' };

/** "route github-hook (routes[1].secret.id)", as the admin API and the CLI say it. @param {SecretUsage} usage */
export function describeUsage(usage) {
  return `${USAGE_LABELS[usage.kind] ?? usage.kind} ${usage.route} (${usage.path})`;
}

/** The "Used by" cell: one line per use, or "not used". @param {SecretUsage[]} usages */
function usedBy(usages) {
  if (usages.length === 0) return h('span', { class: 'muted' }, 'not used');
  return h(
    'div',
    { class: 'usages' },
    usages.map((u) => h('div', {}, `${USAGE_LABELS[u.kind] ?? u.kind} ${u.route} `, h('code', {}, `(${u.path})`))),
  );
}

const ID_PATTERN = '[a-z0-9][a-z0-9._\\-]{0,63}';

/** @param {import('./app.js').PageContext} ctx */
export function renderSecrets(ctx) {
  const { info, toast } = ctx;
  const title = h('h1', { id: 'secrets-title', tabindex: '-1' }, 'Upstream secrets');
  if (!info.secrets.manage) {
    replace(ctx.main, h('section', { 'aria-labelledby': 'secrets-title' }, title, h('p', {}, 'Only platform admins manage upstream secrets.')));
    title.focus();
    return;
  }
  const addButton = button('Add secret', { kind: 'primary', onclick: () => addDialog(), disabled: !info.secrets.masterKey });
  const status = h('p', { class: 'muted', role: 'status' });
  const tableHost = h('div', { class: 'table-host' });
  replace(
    ctx.main,
    h(
      'section',
      { 'aria-labelledby': 'secrets-title' },
      h('div', { class: 'page-head' }, title, addButton),
      h('p', { class: 'muted' }, 'Credentials keygate injects into upstream requests on the routes that name them. They are stored encrypted; no page or API ever shows a value again.'),
      info.secrets.masterKey ? null : h('p', { class: 'warning', role: 'note' }, 'KEYGATE_MASTER_KEY is not set on this keygate: secrets cannot be added or moved until it is.'),
      status,
      tableHost,
    ),
  );
  title.focus();

  function load() {
    return loadInto(tableHost, 'the secrets', async () => {
      /** @type {{ secrets: ListedSecret[] }} */
      const { secrets } = await request('GET', '/v1/secrets');
      renderTable(secrets);
    });
  }

  /** @param {ListedSecret[]} secrets */
  function renderTable(secrets) {
    replace(status, `${secrets.length} secret${secrets.length === 1 ? '' : 's'}`);
    if (secrets.length === 0) {
      replace(tableHost, h('p', { class: 'empty' }, 'No secrets stored.'));
      return;
    }
    const rows = secrets.map((secret) =>
      listRow({ 'data-secret-id': secret.id }, [
        ['Name', secret.name],
        ['ID', h('code', {}, secret.id)],
        ['Used by', usedBy(secret.usages ?? [])],
        ['Created', time(secret.createdAt)],
        ['Last used', time(secret.lastUsedAt, 'never')],
        ['Encrypted under', h('code', { title: 'master key version' }, secret.keyVersion)],
        [
          'Actions',
          h(
            'div',
            { class: 'row-actions' },
            h('button', { type: 'button', class: 'btn small secondary', 'aria-label': `Rename ${secret.name}`, onclick: () => renameDialog(secret) }, 'Rename'),
            h('button', { type: 'button', class: 'btn small danger', 'aria-label': `Remove ${secret.name}`, onclick: () => removeDialog(secret) }, 'Remove'),
          ),
        ],
      ]),
    );
    replace(tableHost, listTable({ className: 'secrets', caption: 'Upstream secrets', columns: ['Name', 'ID', 'Used by', 'Created', 'Last used', 'Encrypted under', 'Actions'], rows }));
  }

  function addDialog() {
    const id = h('input', { name: 'id', required: true, pattern: ID_PATTERN, autocomplete: 'off', spellcheck: 'false', placeholder: 'openai' });
    const name = h('input', { name: 'name', required: true, maxlength: '128', autocomplete: 'off', placeholder: 'OpenAI production' });
    const value = h('input', { type: 'password', name: 'value', required: true, autocomplete: 'off', spellcheck: 'false', autocapitalize: 'off' });
    const handle = openDialog({
      title: 'Add an upstream secret',
      body: [
        field('ID', id, 'What routes name in secret.id: lower-case letters, digits, ".", "_" and "-".'),
        field('Name', name),
        field('Value', value, 'Typed once: it is encrypted before it is stored and can never be shown again, here or anywhere. It cannot be changed later either: to replace it, add a new secret.'),
      ],
      actions: [button('Cancel', { onclick: () => handle.close() }), button('Add secret', { kind: 'primary', type: 'submit' })],
      async onSubmit(dialog) {
        dialog.busy(true);
        try {
          await request('POST', '/v1/secrets', { id: id.value.trim(), name: name.value.trim(), value: value.value });
        } catch (error) {
          dialog.busy(false);
          return dialog.fail(/** @type {Error} */ (error).message, fieldOf(error));
        }
        dialog.close();
        toast(`Secret “${name.value.trim()}” stored.`);
        void load();
      },
      onClose: () => (value.value = ''),
    });
  }

  /** @param {SecretRecord} secret */
  function renameDialog(secret) {
    const name = h('input', { name: 'name', required: true, maxlength: '128', value: secret.name, autocomplete: 'off' });
    const id = h('input', { name: 'id', required: true, pattern: ID_PATTERN, value: secret.id, autocomplete: 'off', spellcheck: 'false' });
    const handle = openDialog({
      title: `Rename ${secret.name}`,
      body: [
        field('Name', name),
        field('ID', id, 'Changing the ID moves the secret (its value is re-encrypted for the new ID). Routes that name the old ID answer 502 until their configuration is changed.'),
      ],
      actions: [button('Cancel', { onclick: () => handle.close() }), button('Save', { kind: 'primary', type: 'submit' })],
      async onSubmit(dialog) {
        /** @type {{ name?: string, id?: string }} */
        const change = {};
        if (name.value.trim() !== secret.name) change.name = name.value.trim();
        if (id.value.trim() !== secret.id) change.id = id.value.trim();
        if (!change.name && !change.id) return dialog.close();
        dialog.busy(true);
        try {
          await request('PATCH', `/v1/secrets/${encodeURIComponent(secret.id)}`, change);
        } catch (error) {
          dialog.busy(false);
          return dialog.fail(/** @type {Error} */ (error).message, fieldOf(error));
        }
        dialog.close();
        toast(change.id ? `Secret moved to ${change.id}.` : `Secret renamed to “${change.name}”.`);
        void load();
      },
    });
  }

  /**
   * The id must be typed. If keygate refuses because the configuration in force uses the
   * secret (409 conflict — perhaps since this list was loaded), its detail is shown and the
   * button becomes "Remove anyway": a second, explicit confirmation that removes it with force.
   * @param {ListedSecret} secret
   */
  function removeDialog(secret) {
    let force = false;
    const usages = secret.usages ?? [];
    const confirm = button('Remove secret', { kind: 'danger', type: 'submit', disabled: true });
    const typed = h('input', { name: 'confirm', autocomplete: 'off', spellcheck: 'false', autocapitalize: 'off', 'data-autofocus': true, oninput: () => (confirm.disabled = typed.value !== secret.id) });
    const handle = openDialog({
      title: `Remove ${secret.name}?`,
      className: 'danger-dialog',
      body: [
        h('p', {}, 'The value of ', h('code', {}, secret.id), ' is deleted for good. Routes that inject it answer 502 from now on.'),
        usages.length
          ? h('div', { class: 'warning', role: 'note' }, h('p', {}, 'The configuration in force uses it:'), usedBy(usages), h('p', {}, 'keygate refuses to remove it until they point at another secret, unless you confirm a second time.'))
          : h('p', { class: 'muted' }, 'The configuration in force does not use it.'),
        field(`Type ${secret.id} to confirm`, typed),
      ],
      actions: [button('Cancel', { onclick: () => handle.close() }), confirm],
      async onSubmit(dialog) {
        if (typed.value !== secret.id) return dialog.fail(`Type ${secret.id} to confirm.`, 'confirm');
        dialog.busy(true);
        try {
          await request('DELETE', `/v1/secrets/${encodeURIComponent(secret.id)}${force ? '?force=true' : ''}`);
        } catch (error) {
          dialog.busy(false);
          if (error instanceof ApiError && error.code === 'conflict' && !force) {
            force = true;
            replace(confirm, 'Remove anyway');
            return dialog.fail(`Not removed: ${error.detail.replace(/ \(DELETE with \?force=true\)$/, '.')} Select “Remove anyway” to remove it all the same; what uses it stops working.`);
          }
          return dialog.fail(/** @type {Error} */ (error).message);
        }
        dialog.close();
        toast(force ? `Removed “${secret.name}” although the configuration uses it.` : `Removed “${secret.name}”.`);
        void load();
      },
    });
  }

  void load();
}

/**
 * Users: a tenant's named identities, each in a permission group. A key created for a user
 * (on the API keys page, "Acts as user") takes the user's group at each request, so moving a
 * user to another group or disabling it reaches all its keys at once, on every keygate
 * instance: a disabled user's keys are refused (401 user_disabled) and their open
 * WebSockets and streams end. The list (by tenant, searchable), create with a choice of the
 * tenant's groups and the configuration's, edit (display name, group), disable (confirmed)
 * and enable, and each user's keys. Every action is an admin API call; the page adds no rules.
 */
import { ApiError, query, request } from './api.js';
import { button, confirmDialog, openDialog } from './dialogs.js';
import { field, h, replace, time, uid } from './dom.js';
import { fillGroupChoices, fillTenantChoices, groupsOf, permissionsText, TENANT_PATTERN } from './groups-page.js';
import { fieldOf } from './keys-page.js';
import { listRow, listTable, loadInto } from './list.js';

/**
 * @typedef {{ tenant: string, name: string, displayName: string, group: string, disabled: boolean,
 *   createdAt: string, updatedAt: string, disabledAt: string | null }} UserRecord
 * @typedef {import('./api.js').KeyRecord & { environment?: 'live' | 'sandbox', permissionsFrom?: 'key' | 'user' }} KeyRecord
 * @typedef {import('./groups-page.js').GroupRecord} GroupRecord
 */
/** @typedef {import('./app.js').PageContext} PageContext */

/** @param {string} tenant @param {string} name */
const userPath = (tenant, name) => `/v1/users/${encodeURIComponent(tenant)}/${encodeURIComponent(name)}`;

/** @param {UserRecord} user @param {string} q lower-cased search text */
function matches(user, q) {
  return q === '' || user.name.toLowerCase().includes(q) || user.displayName.toLowerCase().includes(q);
}

/** @param {KeyRecord} key */
function keyAccess(key) {
  if (key.permissionsFrom === 'user') return 'Acts as the user: its group’s permissions';
  const own = key.group !== null ? `group ${key.group}` : permissionsText(key.permissions);
  return `Only labelled with the user: ${own}`;
}

/** @param {PageContext} ctx */
export function renderUsers(ctx) {
  const { info, toast } = ctx;
  const platform = info.scope.platform;
  const state = {
    tenant: platform ? (ctx.params.get('tenant') ?? '') : /** @type {string} */ (info.scope.tenant),
    q: ctx.params.get('q') ?? '',
    /** @type {UserRecord[]} */
    users: [],
    /** The permissions of each group the listed users are in, by `tenant/name` (`/name` for the configuration's). @type {Map<string, string[]>} */
    groups: new Map(),
    /** Tenants seen in any answer, for the tenant selector. @type {Set<string>} */
    seen: new Set(),
  };
  const remember = () => ctx.setParams({ tenant: platform ? state.tenant : undefined, q: state.q || undefined });

  const title = h('h1', { id: 'users-title', tabindex: '-1' }, 'Users');
  const createButton = button('Create user', { kind: 'primary', onclick: () => createDialog() });
  const tenantSelect = h('select', { name: 'tenant', onchange: () => ((state.tenant = tenantSelect.value), remember(), void load()) });
  const search = h('input', { type: 'search', name: 'q', value: state.q, placeholder: 'alice', autocomplete: 'off', spellcheck: 'false' });
  search.addEventListener('input', () => {
    state.q = search.value.trim();
    remember();
    renderTable();
  });
  const status = h('p', { class: 'muted', role: 'status', id: uid('users-status') });
  const tableHost = h('div', { class: 'table-host' });
  replace(
    ctx.main,
    h(
      'section',
      { 'aria-labelledby': 'users-title' },
      h('div', { class: 'page-head' }, title, createButton),
      h(
        'p',
        { class: 'muted' },
        'A key created for a user acts as that user and has the permissions of the user’s group as it is at each request. Moving a user to another group, or disabling it, reaches all its keys at once, on every keygate instance.',
      ),
      h(
        'div',
        { class: 'toolbar', role: 'group', 'aria-label': 'Filter users' },
        platform ? field('Tenant', tenantSelect) : h('p', { class: 'fixed-tenant' }, 'Tenant ', h('strong', {}, state.tenant)),
        field('Search by name', search),
      ),
      status,
      tableHost,
    ),
  );
  title.focus();

  function load() {
    return loadInto(tableHost, 'the users', async () => {
      const tenant = platform ? state.tenant : undefined;
      /** @type {[{ users: UserRecord[] }, { groups: GroupRecord[] }]} */
      const [{ users }, { groups }] = await Promise.all([request('GET', `/v1/users${query({ tenant })}`), request('GET', `/v1/groups${query({ tenant })}`)]);
      state.users = users;
      state.groups = new Map(groups.map((g) => [`${g.tenant ?? ''}/${g.name}`, g.permissions]));
      renderTable();
      for (const u of users) state.seen.add(u.tenant);
      if (platform) await fillTenantChoices(tenantSelect, state.tenant, state.seen, toast);
    });
  }

  /** The permissions a user's group gives (the tenant's own group, else the configuration's). @param {UserRecord} user */
  function groupPermissions(user) {
    return state.groups.get(`${user.tenant}/${user.group}`) ?? state.groups.get(`/${user.group}`);
  }

  function renderTable() {
    const q = state.q.toLowerCase();
    const shown = state.users.filter((u) => matches(u, q));
    const total = state.users.length;
    const allTenants = platform && state.tenant === '';
    replace(status, shown.length === total ? `${total} user${total === 1 ? '' : 's'}` : `${shown.length} of ${total} users match “${state.q}”`);
    if (shown.length === 0) {
      replace(tableHost, h('p', { class: 'empty' }, total === 0 ? 'No users yet. Create one, then create keys that act as it on the API keys page.' : 'No user matches the search.'));
      return;
    }
    const columns = ['Name', ...(allTenants ? ['Tenant'] : []), 'Group', 'Status', 'Created', 'Actions'];
    const rows = shown.map((user) => {
      const permissions = groupPermissions(user);
      /** @type {[string, Node | string][]} */
      const cells = [
        ['Name', h('span', {}, h('span', { class: 'user-name' }, user.name), user.displayName !== user.name ? h('span', { class: 'sub' }, user.displayName) : null)],
        ...(allTenants ? /** @type {[string, Node | string][]} */ ([['Tenant', user.tenant]]) : []),
        ['Group', h('span', {}, user.group, h('span', { class: 'sub' }, permissions === undefined ? 'this group no longer exists: the user’s keys have no permissions' : permissionsText(permissions)))],
        [
          'Status',
          user.disabled
            ? h('span', { class: 'status disabled', title: user.disabledAt ? `disabled ${new Date(user.disabledAt).toLocaleString()}: its keys are refused` : null }, 'Disabled')
            : h('span', { class: 'status active' }, 'Enabled'),
        ],
        ['Created', time(user.createdAt)],
        ['Actions', actionsFor(user)],
      ];
      return listRow({ 'data-user': `${user.tenant}/${user.name}` }, cells);
    });
    replace(tableHost, listTable({ className: 'users', caption: allTenants ? 'Users of every tenant' : `Users of tenant ${state.tenant}`, columns, rows }));
  }

  /** @param {UserRecord} user */
  function actionsFor(user) {
    return h(
      'div',
      { class: 'row-actions' },
      h('button', { type: 'button', class: 'btn small secondary', 'aria-label': `Keys of ${user.name}`, onclick: () => keysDialog(user) }, 'Keys'),
      h('button', { type: 'button', class: 'btn small secondary', 'aria-label': `Edit ${user.name}`, onclick: () => editDialog(user) }, 'Edit'),
      user.disabled
        ? h('button', { type: 'button', class: 'btn small secondary', 'aria-label': `Enable ${user.name}`, onclick: () => void enable(user) }, 'Enable')
        : h('button', { type: 'button', class: 'btn small danger', 'aria-label': `Disable ${user.name}`, onclick: () => disableDialog(user) }, 'Disable'),
    );
  }

  /**
   * A group `<select>` that follows the tenant it is for: its choices are loaded (again) by `show(tenant)`.
   * @param {string} [selected]
   */
  function groupPicker(selected) {
    const select = h('select', { name: 'group', required: true });
    const hint = h('p', { class: 'hint', id: uid('hint'), role: 'status' });
    select.setAttribute('aria-describedby', hint.id);
    select.id = uid('f');
    const node = h('div', { class: 'field' }, h('label', { for: select.id }, 'Permission group'), select, hint);
    let asked = '';
    return {
      node,
      select,
      /** @param {string} tenant */
      async show(tenant) {
        if (tenant === asked) return;
        asked = tenant;
        if (!new RegExp(`^${TENANT_PATTERN}$`).test(tenant)) {
          replace(select);
          replace(hint, 'Type the tenant first: its groups are offered here.');
          return;
        }
        replace(hint, 'Loading the groups…');
        try {
          const groups = await groupsOf(tenant);
          if (asked !== tenant) return;
          fillGroupChoices(select, groups, selected);
          replace(hint, groups.length ? 'The user’s keys get this group’s permissions at each request.' : 'No groups yet: create one on the Permission groups page.');
        } catch (error) {
          if (asked === tenant) replace(hint, `Could not load the groups: ${/** @type {Error} */ (error).message}`);
        }
      },
    };
  }

  function createDialog() {
    const tenantInput = h('input', { name: 'tenant', required: true, pattern: TENANT_PATTERN, value: state.tenant, autocomplete: 'off', spellcheck: 'false', list: 'user-tenants' });
    const datalist = h('datalist', { id: 'user-tenants' }, [...tenantSelect.options].filter((o) => o.value).map((o) => h('option', { value: o.value })));
    const name = h('input', { name: 'name', required: true, maxlength: '256', autocomplete: 'off', spellcheck: 'false', placeholder: 'alice@example.com' });
    const displayName = h('input', { name: 'displayName', maxlength: '128', autocomplete: 'off', placeholder: 'Alice Liddell' });
    const picker = groupPicker();
    tenantInput.addEventListener('input', () => void picker.show(tenantInput.value.trim()));
    const handle = openDialog({
      title: 'Create a user',
      body: [
        platform ? field('Tenant', tenantInput, 'Lower-case letters, digits and "-".') : h('p', {}, 'Tenant ', h('strong', {}, state.tenant)),
        platform ? datalist : null,
        field('Name', name, 'Unique in the tenant; what the user’s keys send upstream as the user.'),
        field('Display name (optional)', displayName),
        picker.node,
      ],
      actions: [button('Cancel', { onclick: () => handle.close() }), button('Create user', { kind: 'primary', type: 'submit' })],
      async onSubmit(dialog) {
        if (!picker.select.value) return dialog.fail('Choose a permission group.', 'group');
        /** @type {Record<string, unknown>} */
        const body = { name: name.value.trim(), group: picker.select.value };
        if (displayName.value.trim()) body.displayName = displayName.value.trim();
        if (platform) body.tenant = tenantInput.value.trim();
        dialog.busy(true);
        /** @type {UserRecord} */
        let created;
        try {
          created = await request('POST', '/v1/users', body);
        } catch (error) {
          dialog.busy(false);
          return dialog.fail(/** @type {Error} */ (error).message, fieldOf(error));
        }
        dialog.close();
        toast(`User “${created.name}” created in tenant ${created.tenant}, group ${created.group}.`);
        void load();
      },
    });
    void picker.show(platform ? tenantInput.value.trim() : state.tenant);
  }

  /** @param {UserRecord} user */
  function editDialog(user) {
    const displayName = h('input', { name: 'displayName', maxlength: '128', value: user.displayName, autocomplete: 'off' });
    const picker = groupPicker(user.group);
    const handle = openDialog({
      title: `Edit ${user.name}`,
      body: [
        h('p', {}, 'Tenant ', h('strong', {}, user.tenant)),
        field('Display name', displayName),
        picker.node,
        h('p', { class: 'hint' }, 'A new group reaches every key acting as the user from its next request, on every keygate instance.'),
      ],
      actions: [button('Cancel', { onclick: () => handle.close() }), button('Save', { kind: 'primary', type: 'submit' })],
      async onSubmit(dialog) {
        /** @type {{ displayName?: string, group?: string }} */
        const change = {};
        if (displayName.value.trim() !== user.displayName) change.displayName = displayName.value.trim();
        if (picker.select.value && picker.select.value !== user.group) change.group = picker.select.value;
        if (change.displayName === undefined && change.group === undefined) return dialog.close();
        dialog.busy(true);
        try {
          await request('PATCH', userPath(user.tenant, user.name), change);
        } catch (error) {
          dialog.busy(false);
          return dialog.fail(/** @type {Error} */ (error).message, fieldOf(error));
        }
        dialog.close();
        toast(change.group ? `${user.name} is now in group ${change.group}.` : `${user.name} saved.`);
        void load();
      },
    });
    void picker.show(user.tenant);
  }

  /** @param {UserRecord} user */
  function disableDialog(user) {
    void confirmDialog({
      title: `Disable ${user.name}?`,
      message: [
        h('p', {}, 'User ', h('strong', {}, user.name), ` of tenant ${user.tenant}.`),
        'Every key acting as this user is refused (401 user_disabled) from now on, on every keygate instance, and its open WebSocket connections and streams are closed. The keys are not revoked: enabling the user lets them work again.',
      ],
      confirmLabel: 'Disable user',
      danger: true,
      async action() {
        await request('PATCH', userPath(user.tenant, user.name), { disabled: true });
        toast(`${user.name} is disabled: its keys are refused.`);
        void load();
      },
    });
  }

  /** @param {UserRecord} user */
  async function enable(user) {
    try {
      await request('PATCH', userPath(user.tenant, user.name), { disabled: false });
    } catch (error) {
      if (!(error instanceof ApiError) || error.status !== 401) toast(`${user.name} was not enabled: ${/** @type {Error} */ (error).message}`);
      return;
    }
    toast(`${user.name} is enabled: its keys work again.`);
    await load();
    // The row was re-rendered: keep the keyboard where it was.
    const row = tableHost.querySelector(`tr[data-user="${CSS.escape(`${user.tenant}/${user.name}`)}"]`);
    const next = row?.querySelector('button[aria-label^="Disable"]');
    (next instanceof HTMLElement ? next : title).focus();
  }

  /** The keys that act as the user (or only carry its name), from GET /v1/users/{tenant}/{name}. @param {UserRecord} user */
  function keysDialog(user) {
    const host = h('div', { class: 'table-host' }, h('p', { class: 'muted' }, 'Loading…'));
    const handle = openDialog({
      title: `Keys of ${user.name}`,
      className: 'wide',
      body: [h('p', { class: 'muted' }, `Tenant ${user.tenant}. Create a key for this user on the API keys page, with “Acts as user” set to ${user.name}.`), host],
      actions: [button('Close', { kind: 'primary', onclick: () => handle.close(), autofocus: true })],
    });
    void loadInto(host, 'the keys', async () => {
      /** @type {UserRecord & { keys: KeyRecord[] }} */
      const found = await request('GET', userPath(user.tenant, user.name));
      if (found.keys.length === 0) {
        replace(host, h('p', { class: 'empty' }, 'No keys act as this user.'));
        return;
      }
      const rows = found.keys.map((key) =>
        listRow({ 'data-key-id': key.id }, [
          ['Name', key.name],
          ['Key prefix', h('code', {}, key.prefix)],
          ['Status', h('span', { class: `status ${key.status}` }, key.status === 'active' ? (found.disabled && key.permissionsFrom === 'user' ? 'Active (refused: user disabled)' : 'Active') : key.status === 'expired' ? 'Expired' : 'Revoked')],
          ['Access', keyAccess(key)],
          ['Expires', time(key.expiresAt, 'never')],
          ['Last used', time(key.lastUsedAt, 'never')],
        ]),
      );
      replace(host, listTable({ className: 'user-keys', caption: `Keys of ${user.name}`, columns: ['Name', 'Key prefix', 'Status', 'Access', 'Expires', 'Last used'], rows }));
    });
  }

  void load();
}

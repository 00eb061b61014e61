/**
 * Permission groups: the configuration's (`permissionGroups`, which every tenant sees; shown
 * read-only, they change only in the config file) and each tenant's own, which can be
 * created, given other permissions or rate limits (limits.js) and deleted. A changed group reaches every key of every
 * user in it on its next request, on every instance. Deleting a group that users or keys
 * still use is refused by keygate (409): the dialog shows keygate's detail, naming them.
 * Also the helpers the Users page shares: the group records, a tenant's group choices, the
 * tenant selector's options.
 */
import { ApiError, query, request } from './api.js';
import { button, confirmDialog, openDialog } from './dialogs.js';
import { field, h, replace, time, uid } from './dom.js';
import { fieldOf } from './keys-page.js';
import { listRow, listTable, loadInto } from './list.js';
import { groupRateLimitsDialog, RATE_HINT, rateList, ratesNode } from './limits.js';

/**
 * A group as GET /v1/groups lists it: `tenant: null` and `source: 'config'` for one of the
 * configuration's.
 * @typedef {{ tenant: string | null, name: string, permissions: string[], source: 'config' | 'tenant',
 *   createdAt: string | null, updatedAt: string | null, rateLimits?: string[] }} GroupRecord
 */
/** @typedef {import('./app.js').PageContext} PageContext */

export const TENANT_PATTERN = '[a-z0-9][a-z0-9\\-]{0,62}';
const GROUP_PATTERN = '[A-Za-z0-9_.:\\-]{1,64}';

/** "echo:read, echo:write", or a muted "no permissions". @param {string[]} permissions */
export function permissionsText(permissions) {
  return permissions.length ? permissions.join(', ') : 'no permissions';
}

/**
 * The groups a user of `tenant` may be put in: the tenant's own and the configuration's.
 * @param {string} tenant
 * @returns {Promise<GroupRecord[]>}
 */
export async function groupsOf(tenant) {
  /** @type {{ groups: GroupRecord[] }} */
  const { groups } = await request('GET', `/v1/groups${query({ tenant })}`);
  return groups.filter((g) => g.tenant === null || g.tenant === tenant);
}

/**
 * Fills a `<select>` with group choices (the tenant's own first), keeping `selected` when it is one of them.
 * @param {HTMLSelectElement} select
 * @param {GroupRecord[]} groups
 * @param {string} [selected]
 */
export function fillGroupChoices(select, groups, selected) {
  const own = groups.filter((g) => g.source === 'tenant');
  const configured = groups.filter((g) => g.source === 'config');
  /** @param {GroupRecord} g */
  const option = (g) => h('option', { value: g.name }, `${g.name}: ${permissionsText(g.permissions)}`);
  replace(
    select,
    own.length ? h('optgroup', { label: 'The tenant’s groups' }, own.map(option)) : null,
    configured.length ? h('optgroup', { label: 'Groups of the configuration' }, configured.map(option)) : null,
  );
  if (selected !== undefined && groups.some((g) => g.name === selected)) select.value = selected;
}

/**
 * A platform admin's tenant selector: "All tenants" and every tenant known (those with keys,
 * from GET /v1/tenants, plus `more`, e.g. tenants that have only users or groups).
 * @param {HTMLSelectElement} select
 * @param {string} current
 * @param {Iterable<string>} more
 * @param {(message: string) => void} toast
 */
export async function fillTenantChoices(select, current, more, toast) {
  const names = new Set(more);
  try {
    /** @type {{ tenants: import('./api.js').TenantSummary[] }} */
    const { tenants } = await request('GET', '/v1/tenants');
    for (const t of tenants) names.add(t.tenant);
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 401) toast(`Could not load the tenants: ${/** @type {Error} */ (error).message}`);
  }
  if (current) names.add(current);
  replace(select, h('option', { value: '' }, 'All tenants'), [...names].sort().map((t) => h('option', { value: t }, t)));
  select.value = current;
}

/** Permissions typed as text: separated by spaces or commas. @param {string} text */
export const permissionList = (text) => text.split(/[\s,]+/).filter(Boolean);

/** @param {PageContext} ctx */
export function renderGroups(ctx) {
  const { info, toast } = ctx;
  const platform = info.scope.platform;
  const state = {
    tenant: platform ? (ctx.params.get('tenant') ?? '') : /** @type {string} */ (info.scope.tenant),
    /** @type {GroupRecord[]} */
    groups: [],
    /** Tenants seen in any answer, for the tenant selector. @type {Set<string>} */
    seen: new Set(),
  };
  const remember = () => ctx.setParams({ tenant: platform ? state.tenant : undefined });

  const title = h('h1', { id: 'groups-title', tabindex: '-1' }, 'Permission groups');
  const createButton = button('Create group', { kind: 'primary', onclick: () => createDialog() });
  const tenantSelect = h('select', { name: 'tenant', onchange: () => ((state.tenant = tenantSelect.value), remember(), void load()) });
  const status = h('p', { class: 'muted', role: 'status', id: uid('groups-status') });
  const tableHost = h('div', { class: 'table-host' });
  replace(
    ctx.main,
    h(
      'section',
      { 'aria-labelledby': 'groups-title' },
      h('div', { class: 'page-head' }, title, createButton),
      h(
        'p',
        { class: 'muted' },
        'A user’s keys have the permissions of the user’s group as it is at each request: a change here reaches them at once, on every keygate instance. Groups of the configuration are shared by every tenant and change only in the configuration file.',
      ),
      h(
        'div',
        { class: 'toolbar', role: 'group', 'aria-label': 'Filter groups' },
        platform ? field('Tenant', tenantSelect) : h('p', { class: 'fixed-tenant' }, 'Tenant ', h('strong', {}, state.tenant)),
      ),
      status,
      tableHost,
    ),
  );
  title.focus();

  function load() {
    return loadInto(tableHost, 'the groups', async () => {
      /** @type {{ groups: GroupRecord[] }} */
      const { groups } = await request('GET', `/v1/groups${query({ tenant: platform ? state.tenant : undefined })}`);
      state.groups = groups;
      renderTable();
      for (const g of groups) if (g.tenant !== null) state.seen.add(g.tenant);
      if (platform) await fillTenantChoices(tenantSelect, state.tenant, state.seen, toast);
    });
  }

  function renderTable() {
    const own = state.groups.filter((g) => g.source === 'tenant').length;
    const configured = state.groups.length - own;
    replace(status, `${own} tenant group${own === 1 ? '' : 's'}, ${configured} of the configuration`);
    if (state.groups.length === 0) {
      replace(tableHost, h('p', { class: 'empty' }, 'No groups yet. Create one, then put users in it.'));
      return;
    }
    const rows = state.groups.map((group) =>
      listRow({ 'data-group': `${group.tenant ?? ''}/${group.name}` }, [
        ['Name', group.name],
        ['Tenant', group.tenant ?? h('span', { class: 'muted' }, 'every tenant')],
        ['Permissions', group.permissions.length ? h('span', { class: 'permissions' }, group.permissions.map((p) => h('code', {}, p))) : h('span', { class: 'muted' }, 'no permissions')],
        ['Rate limits', group.source === 'config' ? h('span', { class: 'muted' }, '—') : ratesNode(group.rateLimits)],
        ['Defined in', group.source === 'config' ? h('span', { class: 'badge config', title: 'permissionGroups in the configuration file: read-only here' }, 'Configuration') : 'The tenant'],
        ['Updated', time(group.updatedAt)],
        ['Actions', actionsFor(group)],
      ]),
    );
    replace(tableHost, listTable({ className: 'groups', caption: platform && state.tenant === '' ? 'Permission groups of every tenant' : `Permission groups of tenant ${state.tenant}`, columns: ['Name', 'Tenant', 'Permissions', 'Rate limits', 'Defined in', 'Updated', 'Actions'], rows }));
  }

  /** @param {GroupRecord} group */
  function actionsFor(group) {
    if (group.source === 'config') return h('span', { class: 'muted', title: 'Defined in the configuration file (permissionGroups): change it there' }, 'Read-only');
    return h(
      'div',
      { class: 'row-actions' },
      h('button', { type: 'button', class: 'btn small secondary', 'aria-label': `Edit permissions of ${group.name}`, onclick: () => editDialog(group) }, 'Edit permissions'),
      h('button', { type: 'button', class: 'btn small secondary', 'aria-label': `Rate limits of ${group.name}`, onclick: () => groupRateLimitsDialog(ctx, group, () => void load()) }, 'Rate limits'),
      h('button', { type: 'button', class: 'btn small danger', 'aria-label': `Delete ${group.name}`, onclick: () => deleteDialog(group) }, 'Delete'),
    );
  }

  function createDialog() {
    const tenantInput = h('input', { name: 'tenant', required: true, pattern: TENANT_PATTERN, value: state.tenant, autocomplete: 'off', spellcheck: 'false', list: 'group-tenants' });
    const datalist = h('datalist', { id: 'group-tenants' }, [...tenantSelect.options].filter((o) => o.value).map((o) => h('option', { value: o.value })));
    const name = h('input', { name: 'name', required: true, pattern: GROUP_PATTERN, autocomplete: 'off', spellcheck: 'false', placeholder: 'writers' });
    const permissions = h('input', { name: 'permissions', autocomplete: 'off', spellcheck: 'false', placeholder: 'echo:read echo:write' });
    const rates = h('input', { name: 'rateLimits', autocomplete: 'off', spellcheck: 'false', placeholder: '2/s, 100/1d' });
    const handle = openDialog({
      title: 'Create a permission group',
      body: [
        platform ? field('Tenant', tenantInput, 'Lower-case letters, digits and "-".') : h('p', {}, 'Tenant ', h('strong', {}, state.tenant)),
        platform ? datalist : null,
        field('Name', name, 'Letters, digits, "_", ".", ":" or "-"; not the name of a group of the configuration.'),
        field('Permissions', permissions, 'Separated by spaces or commas. You can give only permissions your own key holds.'),
        field('Rate limits (optional)', rates, `${RATE_HINT} Each key of the group is counted against them on every route.`),
      ],
      actions: [button('Cancel', { onclick: () => handle.close() }), button('Create group', { kind: 'primary', type: 'submit' })],
      async onSubmit(dialog) {
        /** @type {Record<string, unknown>} */
        const body = { name: name.value.trim(), permissions: permissionList(permissions.value) };
        if (platform) body.tenant = tenantInput.value.trim();
        if (rateList(rates.value).length) body.rateLimits = rateList(rates.value);
        dialog.busy(true);
        /** @type {GroupRecord} */
        let created;
        try {
          created = await request('POST', '/v1/groups', body);
        } catch (error) {
          dialog.busy(false);
          return dialog.fail(/** @type {Error} */ (error).message, fieldOf(error));
        }
        dialog.close();
        toast(`Group “${created.name}” created in tenant ${created.tenant}.`);
        void load();
      },
    });
  }

  /** @param {GroupRecord} group */
  function editDialog(group) {
    const permissions = h('input', { name: 'permissions', value: group.permissions.join(' '), autocomplete: 'off', spellcheck: 'false' });
    const handle = openDialog({
      title: `Edit permissions of ${group.name}`,
      body: [
        h('p', {}, 'Tenant ', h('strong', {}, group.tenant ?? '')),
        field('Permissions', permissions, 'Separated by spaces or commas. Every key of every user in this group has exactly these from its next request, on every keygate instance.'),
      ],
      actions: [button('Cancel', { onclick: () => handle.close() }), button('Save', { kind: 'primary', type: 'submit' })],
      async onSubmit(dialog) {
        dialog.busy(true);
        try {
          await request('PATCH', `/v1/groups/${encodeURIComponent(group.tenant ?? '')}/${encodeURIComponent(group.name)}`, { permissions: permissionList(permissions.value) });
        } catch (error) {
          dialog.busy(false);
          return dialog.fail(/** @type {Error} */ (error).message, fieldOf(error));
        }
        dialog.close();
        toast(`Group “${group.name}” saved.`);
        void load();
      },
    });
  }

  /** Refused by keygate (409) while users or keys use the group: its detail names them. @param {GroupRecord} group */
  function deleteDialog(group) {
    void confirmDialog({
      title: `Delete ${group.name}?`,
      message: [
        h('p', {}, 'The group ', h('strong', {}, group.name), ` of tenant ${group.tenant} (${permissionsText(group.permissions)}) is deleted.`),
        'keygate refuses while users of the tenant are in it or keys use it: move them to another group first.',
      ],
      confirmLabel: 'Delete group',
      danger: true,
      async action() {
        try {
          await request('DELETE', `/v1/groups/${encodeURIComponent(group.tenant ?? '')}/${encodeURIComponent(group.name)}`);
        } catch (error) {
          if (error instanceof ApiError && error.code === 'conflict') throw new Error(`Not deleted: ${error.detail}.`);
          throw error;
        }
        toast(`Group “${group.name}” deleted.`);
        void load();
      },
    });
  }

  void load();
}

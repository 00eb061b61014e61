/**
 * Settings → API keys: the list (filter by tenant, environment, name or prefix, revoked ones
 * on request; each key's environment and the user it acts as), and create, the one-time key
 * dialog, rename, rotate, revoke and revoke-all; each key's rate limits and quota, edited and
 * topped up through limits.js.
 * Every action is an admin API call; the page adds no rules of its own beyond not offering
 * what the API would refuse (admin keys outside the system tenant, other tenants).
 */
import { ApiError, query, request } from './api.js';
import { button, confirmDialog, openDialog } from './dialogs.js';
import { field, fromNow, h, replace, time, uid } from './dom.js';
import { listRow, listTable, loadInto } from './list.js';
import { oneTimeKeyDialog } from './one-time-key.js';
import { keyLimitsDialog, keyTopUpDialog, limitFields, limitsCell, userPicker } from './limits.js';

/**
 * A key as the admin API lists it, with the fields this page reads beyond api.js's KeyRecord:
 * `environment` (live or sandbox, docs/sandbox.md) and `permissionsFrom` (`user`: the key
 * takes its permissions from its user's group at each request).
 * @typedef {import('./api.js').KeyRecord & { environment?: 'live' | 'sandbox', permissionsFrom?: 'key' | 'user' }
 *   & { rateLimits?: string[], quota?: string | null, quotaRemaining?: number }} KeyRecord
 */
/** @typedef {import('./app.js').PageContext} PageContext */

const DAY = 86_400_000;
export const EXPIRY_CHOICES = [
  ['30d', '30 days'],
  ['60d', '60 days'],
  ['90d', '90 days'],
  ['180d', '180 days'],
  ['365d', '365 days'],
  ['date', 'On a date…'],
  ['never', 'Never'],
];

/**
 * The row's status. Active, expired or revoked is keygate's own answer (`key.status`, the
 * state the proxy acts on), never worked out again from the dates with this browser's
 * clock; the page only adds detail to an active key (rotating, expires soon).
 * @param {KeyRecord} key @param {number} now @returns {{ label: string, kind: string, title?: string }}
 */
function statusOf(key, now) {
  if (key.status === 'revoked') {
    // A rotated key is refused from the end of its overlap, even before the sweep revokes it.
    if (key.revokedAt === null && key.revokesAt !== null) return { label: 'Revoked', kind: 'revoked', title: `rotated out ${fromNow(Date.parse(key.revokesAt), now)}` };
    return { label: 'Revoked', kind: 'revoked', title: key.revokedAt ? `revoked ${fromNow(Date.parse(key.revokedAt), now)}` : undefined };
  }
  if (key.status === 'expired') return { label: 'Expired', kind: 'expired', title: key.expiresAt ? `expired ${fromNow(Date.parse(key.expiresAt), now)}` : undefined };
  if (key.revokesAt !== null) return { label: 'Rotating', kind: 'soon', title: `replaced by a rotation: revoked ${fromNow(Date.parse(key.revokesAt), now)}` };
  if (key.expiresAt !== null && Date.parse(key.expiresAt) - now < 7 * DAY) return { label: 'Expires soon', kind: 'soon' };
  return { label: 'Active', kind: 'active' };
}

/** @param {KeyRecord} key */
function accessOf(key) {
  if (key.permissionsFrom === 'user') return `the permissions of ${key.user}’s group`;
  if (key.group !== null) return `group ${key.group}`;
  return key.permissions.length ? key.permissions.join(', ') : 'no permissions';
}

/** Keys written before environments existed are live. @param {KeyRecord} key @returns {'live' | 'sandbox'} */
const environmentOf = (key) => key.environment ?? 'live';

/**
 * The environment badge: sandbox keys stand out (their own colour, dashed border, and the
 * word itself — never colour alone), live keys carry a quiet one.
 * @param {KeyRecord} key
 */
function environmentBadge(key) {
  const sandbox = environmentOf(key) === 'sandbox';
  return h(
    'span',
    { class: `badge env ${sandbox ? 'sandbox' : 'live'}`, title: sandbox ? 'Sandbox key: reaches only the sandbox upstream of routes that have one' : 'Live key: reaches the routes’ live upstreams' },
    sandbox ? 'Sandbox' : 'Live',
  );
}

/**
 * Who the key acts as: the user's name, and a marker when the key takes its permissions
 * from that user's group (record.permissionsFrom 'user').
 * @param {KeyRecord} key
 */
function actsAs(key) {
  if (key.user === null) return h('span', { class: 'muted' }, '—');
  if (key.permissionsFrom !== 'user') return key.user;
  return h('span', {}, key.user, h('span', { class: 'badge from-user', title: `Takes its permissions from the group of user ${key.user}, as it is at each request` }, 'user’s group'));
}

/** @param {KeyRecord} key @param {string} q lower-cased search text */
function matches(key, q) {
  if (q === '') return true;
  const prefix = q.replace(/…$/, '');
  return key.name.toLowerCase().includes(q) || key.prefix.toLowerCase().startsWith(prefix) || key.id === q;
}

/**
 * The field a 422 detail names ("body.name: …", "expires: …"), as the form calls it.
 * @param {unknown} error
 */
export function fieldOf(error) {
  if (!(error instanceof ApiError) || error.code !== 'validation_failed') return undefined;
  return /^(?:body\.)?([a-zA-Z]+)/.exec(error.detail)?.[1];
}

/** YYYY-MM-DD of tomorrow, local time (the earliest expiry date offered). */
function tomorrow() {
  const d = new Date(Date.now() + DAY);
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
}

/**
 * An expiry chooser: presets, a date (the key works until the end of that day, local
 * time), or never. `value()` is what the API takes, or null when the date is missing.
 * @param {{ keep?: string | null, initial?: string }} [options] keep: offer "same as before" with this label
 */
export function expiryPicker(options = {}) {
  const select = h('select', { name: 'expires' });
  if (options.keep) select.append(h('option', { value: 'keep' }, options.keep));
  for (const [value, label] of EXPIRY_CHOICES) select.append(h('option', { value }, label));
  select.value = options.initial ?? (options.keep ? 'keep' : '90d');
  const date = h('input', { type: 'date', name: 'expiresDate', min: tomorrow() });
  const dateField = field('Expiry date', date, 'The key stops working at the end of this day (your local time).');
  const sync = () => {
    dateField.hidden = select.value !== 'date';
    date.required = select.value === 'date';
  };
  select.addEventListener('change', sync);
  sync();
  return {
    nodes: [field('Expires', select), dateField],
    /** @returns {string | undefined | null} */
    value() {
      if (select.value === 'keep') return undefined;
      if (select.value !== 'date') return select.value;
      if (!date.value) return null;
      const [y, m, d] = date.value.split('-').map(Number);
      return new Date(/** @type {number} */ (y), /** @type {number} */ (m) - 1, d, 23, 59, 59).toISOString();
    },
  };
}

/** @param {PageContext} ctx */
export function renderKeys(ctx) {
  const { info, toast } = ctx;
  const platform = info.scope.platform;
  const state = {
    tenant: platform ? (ctx.params.get('tenant') ?? '') : /** @type {string} */ (info.scope.tenant),
    revoked: ctx.params.get('revoked') === '1',
    /** '' (every environment), 'live' or 'sandbox' */
    environment: /^(live|sandbox)$/.test(ctx.params.get('env') ?? '') ? /** @type {string} */ (ctx.params.get('env')) : '',
    q: ctx.params.get('q') ?? '',
    /** '' (any), or a number of days nobody has used the key for (the API's unusedDays, docs/usage.md) */
    unused: /^(7|30|90)$/.test(ctx.params.get('unused') ?? '') ? /** @type {string} */ (ctx.params.get('unused')) : '',
    /** @type {KeyRecord[]} */
    keys: [],
    /** @type {Map<string, import('./api.js').TenantSummary>} */
    tenants: new Map(),
  };
  const remember = () => ctx.setParams({ tenant: platform ? state.tenant : undefined, env: state.environment || undefined, revoked: state.revoked ? '1' : undefined, q: state.q || undefined, unused: state.unused || undefined });

  const title = h('h1', { id: 'keys-title', tabindex: '-1' }, 'API keys');
  const createButton = button('Create key', { kind: 'primary', onclick: () => createDialog() });
  const tenantSelect = h('select', { name: 'tenant', onchange: () => ((state.tenant = tenantSelect.value), remember(), syncRevokeAll(), void load()) });
  const search = h('input', { type: 'search', name: 'q', value: state.q, placeholder: 'ci-bot or kg_acme_3f9a', autocomplete: 'off', spellcheck: 'false' });
  search.addEventListener('input', () => {
    state.q = search.value.trim();
    remember();
    renderTable();
  });
  const environmentSelect = h(
    'select',
    { name: 'environment', onchange: () => ((state.environment = environmentSelect.value), remember(), void load()) },
    h('option', { value: '' }, 'All environments'),
    h('option', { value: 'live' }, 'Live'),
    h('option', { value: 'sandbox' }, 'Sandbox'),
  );
  environmentSelect.value = state.environment;
  const unusedSelect = h(
    'select',
    { name: 'unused', onchange: () => ((state.unused = unusedSelect.value), remember(), void load()) },
    h('option', { value: '' }, 'Any time'),
    ['7', '30', '90'].map((n) => h('option', { value: n }, `${n} days`)),
  );
  unusedSelect.value = state.unused;
  // The tenant's own view: its usage chart and the keys nobody uses (usage-page.js).
  const tenantLink = h('a', { class: 'btn secondary' });
  const showRevoked = h('input', { type: 'checkbox', name: 'revoked', checked: state.revoked, onchange: () => ((state.revoked = showRevoked.checked), remember(), void load()) });
  const revokeAllButton = button('Revoke all…', { kind: 'danger', onclick: () => revokeAllDialog() });
  const syncRevokeAll = () => {
    revokeAllButton.disabled = state.tenant === '';
    revokeAllButton.title = state.tenant === '' ? 'Choose a tenant first' : '';
    replace(revokeAllButton, state.tenant === '' ? 'Revoke all…' : `Revoke all keys of ${state.tenant}…`);
    tenantLink.hidden = state.tenant === '';
    tenantLink.href = `#/tenant?name=${encodeURIComponent(state.tenant)}`;
    replace(tenantLink, `Usage of ${state.tenant}`);
  };
  syncRevokeAll();
  const status = h('p', { class: 'muted', role: 'status', id: uid('keys-status') });
  const tableHost = h('div', { class: 'table-host' });

  replace(
    ctx.main,
    h(
      'section',
      { 'aria-labelledby': 'keys-title' },
      h('div', { class: 'page-head' }, title, createButton),
      h('p', { class: 'muted' }, platform ? 'You are a platform admin: you manage the keys of every tenant.' : `You manage the keys of tenant ${info.scope.tenant}.`),
      h(
        'div',
        { class: 'toolbar', role: 'group', 'aria-label': 'Filter keys' },
        platform ? field('Tenant', tenantSelect) : h('p', { class: 'fixed-tenant' }, 'Tenant ', h('strong', {}, state.tenant)),
        field('Environment', environmentSelect),
        field('Not used for', unusedSelect, 'Not used since, or never used and created before'),
        field('Search by name or prefix', search),
        h('div', { class: 'field check' }, showRevoked, h('label', { for: (showRevoked.id = uid('f')) }, 'Show revoked')),
        h('div', { class: 'field push pager' }, tenantLink, revokeAllButton),
      ),
      status,
      tableHost,
    ),
  );
  title.focus();

  async function loadTenants() {
    try {
      /** @type {{ tenants: import('./api.js').TenantSummary[] }} */
      const { tenants } = await request('GET', '/v1/tenants');
      state.tenants = new Map(tenants.map((t) => [t.tenant, t]));
      if (!platform) return;
      const known = new Set(tenants.map((t) => t.tenant));
      if (state.tenant && !known.has(state.tenant)) tenants.push({ tenant: state.tenant, active: 0, expired: 0, revoked: 0 });
      replace(
        tenantSelect,
        h('option', { value: '' }, 'All tenants'),
        tenants.map((t) => h('option', { value: t.tenant }, `${t.tenant} (${t.active} active${t.expired ? `, ${t.expired} expired` : ''})`)),
      );
      tenantSelect.value = state.tenant;
    } catch (error) {
      if (!(error instanceof ApiError) || error.status !== 401) toast(`Could not load the tenants: ${/** @type {Error} */ (error).message}`);
    }
  }

  function load() {
    return loadInto(tableHost, 'the keys', async () => {
      /** @type {{ keys: KeyRecord[] }} */
      const { keys } = await request('GET', `/v1/keys${query({ tenant: platform ? state.tenant : undefined, environment: state.environment || undefined, revoked: state.revoked ? 'true' : undefined, unusedDays: state.unused || undefined })}`);
      state.keys = keys;
      renderTable();
    });
  }

  function renderTable() {
    const now = Date.now();
    const q = state.q.toLowerCase();
    const shown = state.keys.filter((k) => matches(k, q));
    const allTenants = platform && state.tenant === '';
    const total = state.keys.length;
    replace(status, shown.length === total ? `${total} key${total === 1 ? '' : 's'}` : `${shown.length} of ${total} keys match “${state.q}”`);
    if (shown.length === 0) {
      const none = state.unused ? `No ${state.revoked ? '' : 'active '}key unused for ${state.unused} days.` : state.environment ? `No ${state.revoked ? '' : 'active '}${state.environment} keys.` : state.revoked ? 'No keys yet.' : 'No active keys. Create one, or tick “Show revoked”.';
      replace(tableHost, h('p', { class: 'empty' }, total === 0 ? none : 'No key matches the search.'));
      return;
    }
    const columns = ['Name', 'Key prefix', 'Environment', ...(allTenants ? ['Tenant'] : []), 'Role', 'Status', 'Created', 'Expires', 'Last used', 'Acts as', 'Client', 'Limits', 'Actions'];
    const rows = shown.map((key) => {
      const s = statusOf(key, now);
      const own = key.id === info.key.id;
      /** @type {[string, Node | string][]} */
      const cells = [
        ['Name', h('span', {}, h('a', { class: 'key-name', href: `#/key?id=${encodeURIComponent(key.id)}`, title: 'Details and usage' }, key.name), own ? h('span', { class: 'badge' }, 'you') : null, h('span', { class: 'sub' }, accessOf(key)))],
        ['Key prefix', h('code', {}, key.prefix)],
        ['Environment', environmentBadge(key)],
        ...(allTenants ? /** @type {[string, Node | string][]} */ ([['Tenant', key.tenant]]) : []),
        ['Role', key.role],
        ['Status', h('span', { class: `status ${s.kind}`, title: s.title ?? null }, s.label)],
        ['Created', time(key.createdAt)],
        ['Expires', time(key.expiresAt, 'never')],
        ['Last used', time(key.lastUsedAt, 'never')],
        ['Acts as', actsAs(key)],
        ['Client', key.client ?? h('span', { class: 'muted' }, '—')],
        ['Limits', limitsCell(key)],
        ['Actions', actionsFor(key)],
      ];
      return listRow({ 'data-key-id': key.id }, cells);
    });
    replace(tableHost, listTable({ className: 'keys', caption: allTenants ? 'API keys of every tenant' : `API keys of tenant ${state.tenant}`, columns, rows }));
  }

  /** @param {KeyRecord} key */
  function actionsFor(key) {
    if (key.status === 'revoked') return h('span', { class: 'muted' }, '—');
    // Admin-role keys are managed by platform admins only (the API answers 403 to anyone else).
    if (key.role === 'admin' && !platform) return h('span', { class: 'muted', title: 'Only a platform admin manages admin keys' }, '—');
    return h(
      'div',
      { class: 'row-actions' },
      h('button', { type: 'button', class: 'btn small secondary', 'aria-label': `Rename ${key.name}`, onclick: () => renameDialog(key) }, 'Rename'),
      h('button', { type: 'button', class: 'btn small secondary', 'aria-label': `Rotate ${key.name}`, onclick: () => rotateDialog(key) }, 'Rotate'),
      h('button', { type: 'button', class: 'btn small secondary', 'aria-label': `Limits of ${key.name}`, onclick: () => keyLimitsDialog(ctx, key, () => void load()) }, 'Limits'),
      // Top-ups give a key more than it was given: platform admins only (keygate answers 403 to anyone else).
      platform && (key.quota ?? null) !== null ? h('button', { type: 'button', class: 'btn small secondary', 'aria-label': `Top up ${key.name}`, onclick: () => keyTopUpDialog(ctx, key, () => void load()) }, 'Top up') : null,
      h('button', { type: 'button', class: 'btn small danger', 'aria-label': `Revoke ${key.name}`, onclick: () => revokeDialog(key) }, 'Revoke'),
    );
  }

  async function refresh() {
    await Promise.all([load(), loadTenants()]);
  }

  function createDialog() {
    const groups = Object.keys(info.permissionGroups);
    const tenantInput = h('input', { name: 'tenant', required: true, pattern: '[a-z0-9][a-z0-9\\-]{0,62}', value: state.tenant, autocomplete: 'off', spellcheck: 'false', list: 'known-tenants' });
    const datalist = h('datalist', { id: 'known-tenants' }, [...tenantSelect.options].filter((o) => o.value).map((o) => h('option', { value: o.value })));
    const name = h('input', { name: 'name', required: true, maxlength: '128', autocomplete: 'off' });
    // "Acts as user", offering the tenant's users: a key for one of them takes its group, so no access is chosen (syncAccess).
    const picker = userPicker(() => (platform ? tenantInput.value.trim() : state.tenant), () => syncAccess(), platform ? tenantInput : undefined);
    const limits = limitFields();
    const roleUser = h('input', { type: 'radio', name: 'role', value: 'api-user', checked: true, id: uid('f') });
    const roleAdmin = h('input', { type: 'radio', name: 'role', value: 'admin', id: uid('f') });
    const roleSet = h(
      'fieldset',
      { class: 'choices' },
      h('legend', {}, 'Role'),
      h('div', { class: 'check' }, roleUser, h('label', { for: roleUser.id }, 'API user')),
      h('div', { class: 'check' }, roleAdmin, h('label', { for: roleAdmin.id }, 'Admin: a platform admin, manages every tenant and secret')),
    );
    const syncRole = () => {
      roleSet.hidden = !platform || tenantInput.value.trim() !== info.systemTenant;
      if (roleSet.hidden) roleUser.checked = true;
    };
    tenantInput.addEventListener('input', syncRole);
    syncRole();
    const byList = h('input', { type: 'radio', name: 'access', value: 'permissions', checked: true, id: uid('f') });
    const byGroup = h('input', { type: 'radio', name: 'access', value: 'group', id: uid('f'), disabled: groups.length === 0 });
    const permissions = h('input', { name: 'permissions', autocomplete: 'off', spellcheck: 'false', placeholder: 'echo:read mcp:use' });
    const group = h('select', { name: 'group' }, groups.map((g) => h('option', { value: g }, `${g}: ${(info.permissionGroups[g] ?? []).join(', ') || 'no permissions'}`)));
    const permissionsField = field('Permissions', permissions, 'Separated by spaces or commas. Routes list the permissions they need; keys:manage lets a key manage its tenant’s keys.');
    const groupField = field('Permission group', group, 'A group from the configuration: its keys get the group’s permissions as they are at each request.');
    const syncAccess = () => {
      const asUser = picker.user() !== undefined;
      const accessSet = byList.closest('fieldset');
      if (accessSet) accessSet.hidden = asUser;
      permissionsField.hidden = asUser || !byList.checked;
      groupField.hidden = asUser || !byGroup.checked;
    };
    byList.addEventListener('change', syncAccess);
    byGroup.addEventListener('change', syncAccess);
    syncAccess();
    const envLive = h('input', { type: 'radio', name: 'environment', value: 'live', checked: state.environment !== 'sandbox', id: uid('f') });
    const envSandbox = h('input', { type: 'radio', name: 'environment', value: 'sandbox', checked: state.environment === 'sandbox', id: uid('f') });
    const envHint = h('p', { class: 'hint', id: uid('hint') }, 'A sandbox key (kg_sandbox_…) reaches only the sandbox upstream of routes that have one; other routes refuse it.');
    const environmentSet = h(
      'fieldset',
      { class: 'choices', 'aria-describedby': envHint.id },
      h('legend', {}, 'Environment'),
      h('div', { class: 'check' }, envLive, h('label', { for: envLive.id }, 'Live')),
      h('div', { class: 'check' }, envSandbox, h('label', { for: envSandbox.id }, 'Sandbox: for testing, away from live upstreams')),
      envHint,
    );
    const user = picker.input;
    const client = h('input', { name: 'client', maxlength: '64', autocomplete: 'off', placeholder: 'mcp' });
    const expiry = expiryPicker();
    const handle = openDialog({
      title: 'Create an API key',
      body: [
        platform ? field('Tenant', tenantInput, 'Lower-case letters, digits and "-". A new tenant comes into being with its first key.') : h('p', {}, 'Tenant ', h('strong', {}, state.tenant)),
        platform ? datalist : null,
        field('Name', name, 'What the key is for, e.g. "ci-bot" or "claude-desktop".'),
        roleSet,
        environmentSet,
        h(
          'fieldset',
          { class: 'choices' },
          h('legend', {}, 'Access'),
          h('div', { class: 'check' }, byList, h('label', { for: byList.id }, 'A list of permissions')),
          h('div', { class: 'check' }, byGroup, h('label', { for: byGroup.id }, groups.length ? 'A permission group' : 'A permission group (none configured)')),
        ),
        permissionsField,
        groupField,
        ...picker.nodes,
        field('Client (optional)', client, 'e.g. mcp: limits the key to routes that allow this client.'),
        ...limits.nodes,
        ...expiry.nodes,
      ],
      actions: [button('Cancel', { onclick: () => handle.close() }), button('Create key', { kind: 'primary', type: 'submit' })],
      async onSubmit(dialog) {
        const expires = expiry.value();
        if (expires === null) return dialog.fail('Choose the expiry date.', 'expiresDate');
        /** @type {Record<string, unknown>} */
        const body = { name: name.value.trim(), expires };
        if (platform) body.tenant = tenantInput.value.trim();
        if (!roleSet.hidden && roleAdmin.checked) body.role = 'admin';
        if (byGroup.checked) body.group = group.value;
        else body.permissions = permissions.value.split(/[\s,]+/).filter(Boolean);
        if (user.value.trim()) body.user = user.value.trim();
        if (client.value.trim()) body.client = client.value.trim();
        if (envSandbox.checked) body.environment = 'sandbox';
        // A key for an existing user takes the user's group: no permissions or group of its own (keygate refuses them).
        if (picker.user() !== undefined) {
          delete body.group;
          delete body.permissions;
        }
        limits.addTo(body);
        dialog.busy(true);
        /** @type {import('./api.js').CreatedKey} */
        let created;
        try {
          created = await request('POST', '/v1/keys', body);
        } catch (error) {
          dialog.busy(false);
          return dialog.fail(/** @type {Error} */ (error).message, fieldOf(error));
        }
        dialog.close();
        void refresh();
        const sandbox = /** @type {KeyRecord} */ (created).environment === 'sandbox' ? ' It is a sandbox key: it reaches only sandbox upstreams.' : '';
        const acting = /** @type {KeyRecord} */ (created).permissionsFrom === 'user' ? ` It acts as user ${created.user}: it has the permissions of the user’s group, as it is at each request.` : '';
        oneTimeKeyDialog({ key: created.key, title: 'Copy your new key', intro: `Key “${created.name}” (${created.role}) for tenant ${created.tenant} was created.${sandbox}${acting}` });
      },
    });
  }

  /** @param {KeyRecord} key */
  function renameDialog(key) {
    const name = h('input', { name: 'name', required: true, maxlength: '128', value: key.name, autocomplete: 'off' });
    const handle = openDialog({
      title: `Rename ${key.name}`,
      body: [field('New name', name, 'The only attribute of a key that can change.')],
      actions: [button('Cancel', { onclick: () => handle.close() }), button('Rename', { kind: 'primary', type: 'submit' })],
      async onSubmit(dialog) {
        dialog.busy(true);
        try {
          await request('PATCH', `/v1/keys/${encodeURIComponent(key.id)}`, { name: name.value.trim() });
        } catch (error) {
          dialog.busy(false);
          return dialog.fail(/** @type {Error} */ (error).message, fieldOf(error));
        }
        dialog.close();
        toast(`Renamed to “${name.value.trim()}”.`);
        void load();
      },
    });
  }

  /** @param {KeyRecord} key */
  function revokeDialog(key) {
    const own = key.id === info.key.id;
    void confirmDialog({
      title: `Revoke ${key.name}?`,
      message: [
        h('p', {}, h('code', {}, key.prefix), ` in tenant ${key.tenant}.`),
        'Requests with this key are refused at once, on every keygate instance. Revoking cannot be undone.',
        own ? h('p', { class: 'warning' }, 'This is the key you are signed in with: you will be signed out.') : null,
      ].filter((n) => n !== null),
      confirmLabel: 'Revoke key',
      danger: true,
      async action() {
        await request('POST', `/v1/keys/${encodeURIComponent(key.id)}/revoke`);
        toast(`Revoked “${key.name}”.`);
        void refresh();
      },
    });
  }

  function revokeAllDialog() {
    const tenant = state.tenant;
    const summary = state.tenants.get(tenant);
    const count = summary ? `The ${summary.active + summary.expired} unrevoked key${summary.active + summary.expired === 1 ? '' : 's'}` : 'Every unrevoked key';
    const includesOwn = info.key.tenant === tenant;
    void confirmDialog({
      title: `Revoke every key of ${tenant}?`,
      message: [
        `${count} of tenant ${tenant} stop working at once, on every keygate instance. This cannot be undone.`,
        includesOwn ? h('p', { class: 'warning' }, 'This includes the key you are signed in with: you will be signed out.') : null,
      ].filter((n) => n !== null),
      confirmLabel: 'Revoke all keys',
      danger: true,
      typed: tenant,
      async action() {
        /** @type {{ revoked: string[] }} */
        const result = await request('POST', `/v1/tenants/${encodeURIComponent(tenant)}/keys/revoke`);
        toast(`Revoked ${result.revoked.length} key${result.revoked.length === 1 ? '' : 's'} of ${tenant}.`);
        void refresh();
      },
    });
  }

  /** @param {KeyRecord} key */
  function rotateDialog(key) {
    const expired = key.status === 'expired';
    const overlap = h(
      'select',
      { name: 'overlapSeconds' },
      [
        ['0', 'No overlap: revoke the old key now'],
        ['3600', '1 hour'],
        ['86400', '1 day'],
        ['604800', '7 days'],
        ['2592000', '30 days'],
      ].map(([value, label]) => h('option', { value }, label)),
    );
    overlap.value = expired ? '0' : '86400';
    const keepLabel = key.expiresAt === null ? 'Same as now (never)' : `Same as now (${new Date(key.expiresAt).toLocaleDateString()})`;
    const expiry = expiryPicker(expired ? {} : { keep: keepLabel });
    const own = key.id === info.key.id;
    const handle = openDialog({
      title: `Rotate ${key.name}`,
      body: [
        h('p', {}, 'A new key is created with the same name, tenant, environment, role, permissions, user and client. The old key keeps working during the overlap, so clients can switch over, and is then revoked.'),
        field('Old key keeps working for', overlap),
        ...expiry.nodes,
        own ? h('p', { class: 'warning' }, 'This is the key you are signed in with: when it is revoked, you are signed out.') : null,
      ],
      actions: [button('Cancel', { onclick: () => handle.close() }), button('Rotate key', { kind: 'primary', type: 'submit' })],
      async onSubmit(dialog) {
        const expires = expiry.value();
        if (expires === null) return dialog.fail('Choose the expiry date.', 'expiresDate');
        /** @type {Record<string, unknown>} */
        const body = { overlapSeconds: Number(overlap.value) };
        if (expires !== undefined) body.expires = expires;
        dialog.busy(true);
        /** @type {import('./api.js').RotatedKey} */
        let rotated;
        try {
          rotated = await request('POST', `/v1/keys/${encodeURIComponent(key.id)}/rotate`, body);
        } catch (error) {
          dialog.busy(false);
          return dialog.fail(/** @type {Error} */ (error).message, fieldOf(error));
        }
        dialog.close();
        const until = rotated.previous.revokesAt;
        const old = rotated.previous.status === 'revoked' || until === null ? `The old key ${key.prefix} was revoked.` : `The old key ${key.prefix} keeps working until ${new Date(until).toLocaleString()}.`;
        oneTimeKeyDialog({ key: rotated.key, title: 'Copy the new key', intro: `“${rotated.name}” was rotated. ${old}`, onClose: () => void refresh() });
      },
    });
  }

  void refresh();
}

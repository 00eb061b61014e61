/**
 * Rate limits and quotas in the console (docs/limits.md), for the pages that show them: the
 * create dialog's fields and its user picker (a key for an existing user acts as it and
 * takes its group), a key's limits in the list and its detail view, the Limits and Top up
 * dialogs, a group's rate limits, and a tenant's limits and budget. keygate checks every
 * value (a 422 names the field, shown on it) and decides who may do what: a tenant admin may
 * add limits, not remove them; changing a quota, a tenant's limits and top-ups are for
 * platform admins, so the page offers them to platform admins only.
 */
import { ApiError, query, request } from './api.js';
import { button, openDialog } from './dialogs.js';
import { field, h, replace, time, uid } from './dom.js';

/**
 * A key as the admin API answers, with its limits (`quotaRemaining` only in lists, for keys with a quota).
 * @typedef {{ id: string, name: string, tenant: string, rateLimits?: string[], quota?: string | null, quotaRemaining?: number }} LimitedKey
 * @typedef {{ scope: 'key' | 'tenant', quota: string, used: number, remaining: number, resetsAt: string | null }} QuotaStatus
 * @typedef {{ tenant: string, rateLimits: string[], quota: string | null, updatedAt: string | null, quotaStatus?: QuotaStatus | null }} TenantLimits
 * @typedef {{ tenant: string, name: string, displayName: string, group: string, disabled: boolean }} UserChoice
 * @typedef {{ tenant: string | null, name: string, rateLimits?: string[], source: 'config' | 'tenant' }} LimitedGroup
 * @typedef {{ scope: { platform: boolean, tenant: string | null } }} Who
 */

export const RATE_HINT = 'Separated by spaces or commas: <count>/<period>, e.g. 20/s, 100/15m, 50000/1d (units ms, s, m, h, d).';
export const QUOTA_HINT = 'A budget: 10000/day, 300000/month, 5000 credits or 5000 credits/month.';

/** Rate limits typed as text. @param {string} text */
export const rateList = (text) => text.split(/[\s,]+/).filter(Boolean);

/**
 * The field a 422 detail names ("body.rateLimits: …", "quota: …"), as the form calls it.
 * @param {unknown} error
 */
function fieldOf(error) {
  if (!(error instanceof ApiError) || error.code !== 'validation_failed') return undefined;
  return /^(?:body\.)?([a-zA-Z]+)/.exec(error.detail)?.[1];
}

/** `3/day: 2 used, 1 left` (a top-up can leave more than the budget: then only what is left). @param {QuotaStatus} status */
export function statusText(status) {
  return status.used < 0 ? `${status.quota}: topped up, ${status.remaining} left` : `${status.quota}: ${status.used} used, ${status.remaining} left`;
}

/** When a budget starts afresh, or that credits wait for a top-up. @param {QuotaStatus} status */
function resetOf(status) {
  return status.resetsAt === null ? h('span', { class: 'muted' }, 'no refill: a top-up adds more') : h('span', {}, 'starts afresh ', time(status.resetsAt));
}

/** Rate limits as code, or a muted "none". @param {readonly string[] | undefined} rates @param {string} [none] */
export function ratesNode(rates, none = 'none') {
  if (!rates || rates.length === 0) return h('span', { class: 'muted' }, none);
  return h('span', { class: 'limits' }, rates.map((r) => h('code', {}, r)));
}

/**
 * The key list's Limits cell: its rate limits, its quota and what is left of it.
 * @param {LimitedKey} key
 */
export function limitsCell(key) {
  const rates = key.rateLimits ?? [];
  const quota = key.quota ?? null;
  if (rates.length === 0 && quota === null) return h('span', { class: 'muted' }, '—');
  const left = key.quotaRemaining;
  return h(
    'span',
    { class: 'limits' },
    rates.map((r) => h('code', { title: 'Rate limit of the key, on every route' }, r)),
    quota === null
      ? null
      : h(
          'span',
          { class: `quota-left${left === 0 ? ' spent' : ''}` },
          h('code', { title: 'The key’s quota' }, quota),
          left === undefined ? null : ` · ${left} left`,
        ),
  );
}

/**
 * The create dialog's rate limits and quota; `addTo` puts what was typed into the request
 * (keygate checks it: a 422 names `rateLimits` or `quota`, the fields' names).
 */
export function limitFields() {
  const rates = h('input', { name: 'rateLimits', autocomplete: 'off', spellcheck: 'false', placeholder: '20/s, 50000/1d' });
  const quota = h('input', { name: 'quota', autocomplete: 'off', spellcheck: 'false', placeholder: '10000/day' });
  return {
    nodes: [field('Rate limits (optional)', rates, `${RATE_HINT} Counted on every route, besides the route’s, group’s and tenant’s.`), field('Quota (optional)', quota, QUOTA_HINT)],
    /** @param {Record<string, unknown>} body */
    addTo(body) {
      const list = rateList(rates.value);
      if (list.length) body.rateLimits = list;
      if (quota.value.trim()) body.quota = quota.value.trim();
    },
  };
}

/**
 * "Acts as user": a name, with the tenant's users offered (GET /v1/users?tenant=T). When the
 * name is one of them, the key acts as that user and takes its group, so the dialog hides its
 * own choice of permissions (`user()` says which user; `onChange` is told); any other name is
 * only sent upstream as the user's name.
 * @param {() => string} tenantOf the tenant the key is for
 * @param {() => void} onChange
 * @param {HTMLInputElement} [tenantInput] reload the users when it changes
 */
export function userPicker(tenantOf, onChange, tenantInput) {
  const listId = uid('users');
  const input = h('input', { name: 'user', maxlength: '256', autocomplete: 'off', spellcheck: 'false', list: listId });
  const options = h('datalist', { id: listId });
  const note = h('p', { class: 'notice', role: 'status', hidden: true });
  /** @type {UserChoice[]} */
  let users = [];
  let loadedFor = '';
  /** @type {number | undefined} */
  let timer;
  const user = () => users.find((u) => u.name === input.value.trim());
  const sync = () => {
    const chosen = user();
    note.hidden = chosen === undefined;
    if (chosen !== undefined) {
      replace(
        note,
        chosen.disabled
          ? `${chosen.name} is a disabled user of ${chosen.tenant}: enable the user before creating keys for it.`
          : `The key acts as user ${chosen.name} and takes the permissions of the user’s group (${chosen.group}), as it is at each request: no permissions or group are chosen here.`,
      );
    }
    onChange();
  };
  async function load() {
    const tenant = tenantOf();
    if (tenant === loadedFor) return;
    loadedFor = tenant;
    users = [];
    replace(options);
    if (/^[a-z0-9][a-z0-9-]{0,62}$/.test(tenant)) {
      try {
        /** @type {{ users: UserChoice[] }} */
        const answer = await request('GET', `/v1/users${query({ tenant })}`);
        if (tenant !== tenantOf()) return;
        users = answer.users.filter((u) => u.tenant === tenant);
        replace(options, users.map((u) => h('option', { value: u.name }, `${u.displayName} (group ${u.group}${u.disabled ? ', disabled' : ''})`)));
      } catch {
        // Without the list, a name is still accepted: keygate decides whether it is a user.
      }
    }
    sync();
  }
  input.addEventListener('input', sync);
  tenantInput?.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(() => void load(), 250);
  });
  void load();
  return {
    input,
    user,
    nodes: [field('Acts as user (optional)', input, 'A user of the tenant (the list offers them): the key acts as it and takes its group. Any other name is only sent upstream as the user the key acts for.'), options, note],
  };
}

/**
 * A key's rate limits and quota: replaces them (PATCH /v1/keys/{id}). What a tenant admin
 * may not do (remove a limit, change a quota) is refused by keygate, and said here.
 * @param {{ info: Who, toast: (message: string) => void }} ctx
 * @param {LimitedKey} key
 * @param {() => void} onSaved
 */
export function keyLimitsDialog(ctx, key, onSaved) {
  const platform = ctx.info.scope.platform;
  const before = { rates: (key.rateLimits ?? []).join(', '), quota: key.quota ?? '' };
  const rates = h('input', { name: 'rateLimits', value: before.rates, autocomplete: 'off', spellcheck: 'false', placeholder: '20/s, 50000/1d' });
  const quota = h('input', { name: 'quota', value: before.quota, autocomplete: 'off', spellcheck: 'false', placeholder: '10000/day' });
  // A tenant admin may give a key without a quota one, not change it.
  if (!platform && before.quota !== '') quota.readOnly = true;
  const handle = openDialog({
    title: `Limits of ${key.name}`,
    body: [
      h('p', {}, 'Requests with this key are counted against these limits on every route, besides those of its group, its tenant and the route. Every keygate instance applies a change within moments.'),
      field('Rate limits', rates, platform ? `${RATE_HINT} Empty: none.` : `${RATE_HINT} You may add limits; only a platform admin may remove one.`),
      field('Quota', quota, platform ? `${QUOTA_HINT} Empty: none.` : before.quota ? 'Only a platform admin may change or remove a key’s quota.' : `${QUOTA_HINT} Only a platform admin may change it afterwards.`),
    ],
    actions: [button('Cancel', { onclick: () => handle.close() }), button('Save limits', { kind: 'primary', type: 'submit' })],
    async onSubmit(dialog) {
      /** @type {Record<string, unknown>} */
      const body = {};
      const list = rateList(rates.value);
      if (list.join(', ') !== before.rates) body.rateLimits = list;
      if (quota.value.trim() !== before.quota) body.quota = quota.value.trim() || null;
      if (Object.keys(body).length === 0) return dialog.close();
      dialog.busy(true);
      try {
        await request('PATCH', `/v1/keys/${encodeURIComponent(key.id)}`, body);
      } catch (error) {
        dialog.busy(false);
        return dialog.fail(/** @type {Error} */ (error).message, fieldOf(error));
      }
      dialog.close();
      ctx.toast(`Limits of “${key.name}” saved.`);
      onSaved();
    },
  });
}

/**
 * Adds to what is left of a budget now (audited). Platform admins only: the pages do not
 * offer it to anyone else (keygate would answer 403).
 * @param {{ toast: (message: string) => void }} ctx
 * @param {{ title: string, what: string, path: string, statusPath: string, pick: (answer: any) => QuotaStatus | null | undefined }} target
 * @param {() => void} onDone
 */
function topUpDialog(ctx, target, onDone) {
  const amount = h('input', { name: 'amount', type: 'number', min: '1', step: '1', required: true, inputmode: 'numeric', autocomplete: 'off' });
  const now = h('p', { role: 'status' }, 'Loading what is left…');
  void request('GET', target.statusPath).then(
    (answer) => {
      const status = target.pick(answer);
      replace(now, status ? `Now ${statusText(status)}; ` : 'No quota.', status ? resetOf(status) : null, status ? '.' : null);
    },
    () => replace(now),
  );
  const handle = openDialog({
    title: target.title,
    body: [now, field('Amount', amount, 'Added to what is left now; a budget per day or month starts afresh at its reset. Audited.')],
    actions: [button('Cancel', { onclick: () => handle.close() }), button('Top up', { kind: 'primary', type: 'submit' })],
    async onSubmit(dialog) {
      dialog.busy(true);
      /** @type {QuotaStatus} */
      let status;
      try {
        status = await request('POST', target.path, { amount: Number(amount.value) });
      } catch (error) {
        dialog.busy(false);
        return dialog.fail(/** @type {Error} */ (error).message, fieldOf(error) ?? 'amount');
      }
      dialog.close();
      ctx.toast(`Topped up ${target.what} by ${amount.value}: ${status.remaining} left.`);
      onDone();
    },
  });
}

/**
 * @param {{ toast: (message: string) => void }} ctx
 * @param {LimitedKey} key
 * @param {() => void} onDone
 */
export function keyTopUpDialog(ctx, key, onDone) {
  const path = `/v1/keys/${encodeURIComponent(key.id)}/quota`;
  topUpDialog(ctx, { title: `Top up ${key.name}`, what: `“${key.name}”`, path: `${path}/top-up`, statusPath: path, pick: (a) => /** @type {{ quotas: QuotaStatus[] }} */ (a).quotas.find((q) => q.scope === 'key') }, onDone);
}

/**
 * A key's limits in its detail view: its rate limits and budgets (its own and its tenant's,
 * GET /v1/keys/{id}/quota), with Edit limits and, for platform admins, Top up.
 * @param {{ info: Who, toast: (message: string) => void }} ctx
 * @param {LimitedKey & { status?: string }} key
 */
export function keyLimitsSection(ctx, key) {
  const host = h('div', { class: 'limits-host' });
  const titleId = uid('limits-title');
  const section = h('section', { 'aria-labelledby': titleId }, h('h2', { id: titleId }, 'Rate limits and quota'), host);
  const reload = async () => {
    try {
      key = { ...key, ...(await request('GET', `/v1/keys/${encodeURIComponent(key.id)}`)) };
    } catch {
      // Keep what was shown.
    }
    void show();
  };
  async function show() {
    /** @type {QuotaStatus[]} */
    let quotas = [];
    try {
      quotas = (await request('GET', `/v1/keys/${encodeURIComponent(key.id)}/quota`)).quotas;
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) return;
    }
    const own = quotas.find((q) => q.scope === 'key');
    const tenant = quotas.find((q) => q.scope === 'tenant');
    /** @type {[string, Node | string][]} */
    const facts = [
      ['Rate limits', ratesNode(key.rateLimits)],
      ['Quota', own ? h('span', {}, statusText(own), ' · ', resetOf(own)) : h('span', { class: 'muted' }, 'none')],
      ['Tenant’s quota', tenant ? h('span', {}, statusText(tenant), ' · ', resetOf(tenant)) : h('span', { class: 'muted' }, 'none')],
    ];
    const active = key.status === undefined || key.status === 'active';
    replace(
      host,
      h('dl', { class: 'limit-facts' }, facts.flatMap(([label, value]) => [h('dt', {}, label), h('dd', {}, value)])),
      active
        ? h(
            'div',
            { class: 'row-actions limit-actions' },
            button('Edit limits', { onclick: () => keyLimitsDialog(ctx, key, () => void reload()) }),
            ctx.info.scope.platform && (key.quota ?? null) !== null ? button('Top up', { onclick: () => keyTopUpDialog(ctx, key, () => void reload()) }) : null,
          )
        : null,
    );
  }
  void show();
  return section;
}

/**
 * A permission group's rate limits: each key of the group (its own or its user's) is counted
 * against them on every route (PATCH /v1/groups/{tenant}/{name} `rateLimits`).
 * @param {{ toast: (message: string) => void }} ctx
 * @param {LimitedGroup} group
 * @param {() => void} onSaved
 */
export function groupRateLimitsDialog(ctx, group, onSaved) {
  const rates = h('input', { name: 'rateLimits', value: (group.rateLimits ?? []).join(', '), autocomplete: 'off', spellcheck: 'false', placeholder: '2/s, 100/1d' });
  const handle = openDialog({
    title: `Rate limits of ${group.name}`,
    body: [
      h('p', {}, 'Tenant ', h('strong', {}, group.tenant ?? '')),
      field('Rate limits', rates, `${RATE_HINT} Each key of the group — its own, or its user’s — is counted against them on every route. Empty: none. Only a platform admin may remove one.`),
    ],
    actions: [button('Cancel', { onclick: () => handle.close() }), button('Save', { kind: 'primary', type: 'submit' })],
    async onSubmit(dialog) {
      dialog.busy(true);
      try {
        await request('PATCH', `/v1/groups/${encodeURIComponent(group.tenant ?? '')}/${encodeURIComponent(group.name)}`, { rateLimits: rateList(rates.value) });
      } catch (error) {
        dialog.busy(false);
        return dialog.fail(/** @type {Error} */ (error).message, fieldOf(error));
      }
      dialog.close();
      ctx.toast(`Rate limits of “${group.name}” saved.`);
      onSaved();
    },
  });
}

/**
 * A tenant's rate limits and budget, all its keys together (GET /v1/tenants/{tenant}/limits):
 * what is used and left, and for platform admins Edit (PUT) and Top up. A tenant admin sees
 * its own tenant's.
 * @param {{ info: Who, toast: (message: string) => void }} ctx
 * @param {string} tenant
 */
export function tenantLimitsSection(ctx, tenant) {
  const platform = ctx.info.scope.platform;
  const host = h('div', { class: 'limits-host' });
  const titleId = uid('limits-title');
  const section = h(
    'section',
    { 'aria-labelledby': titleId },
    h('h2', { id: titleId }, 'Rate limits and quota'),
    h('p', { class: 'muted' }, platform ? 'All the tenant’s keys together, on every route, besides each key’s, group’s and route’s own.' : 'All your tenant’s keys together, on every route. Only a platform admin changes them or tops up the quota.'),
    host,
  );
  const path = `/v1/tenants/${encodeURIComponent(tenant)}`;
  async function show() {
    /** @type {TenantLimits} */
    let limits;
    try {
      limits = await request('GET', `${path}/limits`);
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) return;
      replace(host, h('div', { class: 'error', role: 'alert' }, `Could not load the tenant’s limits: ${/** @type {Error} */ (error).message} `, button('Retry', { onclick: () => void show() })));
      return;
    }
    const status = limits.quotaStatus ?? null;
    /** @type {[string, Node | string][]} */
    const facts = [
      ['Rate limits', ratesNode(limits.rateLimits)],
      ['Quota', limits.quota === null ? h('span', { class: 'muted' }, 'none') : h('code', {}, limits.quota)],
    ];
    if (status) facts.push(['Used', String(Math.max(0, status.used))], ['Remaining', String(status.remaining)], ['Starts afresh', status.resetsAt === null ? h('span', { class: 'muted' }, 'never: a top-up adds more') : time(status.resetsAt)]);
    replace(
      host,
      h('dl', { class: 'limit-facts' }, facts.flatMap(([label, value]) => [h('dt', {}, label), h('dd', {}, value)])),
      platform
        ? h(
            'div',
            { class: 'row-actions limit-actions' },
            button('Edit tenant limits', { onclick: () => editDialog(limits) }),
            limits.quota !== null
              ? button('Top up', {
                  onclick: () => topUpDialog(ctx, { title: `Top up ${tenant}`, what: `tenant ${tenant}`, path: `${path}/quota/top-up`, statusPath: `${path}/limits`, pick: (a) => /** @type {TenantLimits} */ (a).quotaStatus }, () => void show()),
                })
              : null,
          )
        : null,
    );
  }

  /** @param {TenantLimits} limits */
  function editDialog(limits) {
    const rates = h('input', { name: 'rateLimits', value: limits.rateLimits.join(', '), autocomplete: 'off', spellcheck: 'false', placeholder: '200/s, 1000000/1d' });
    const quota = h('input', { name: 'quota', value: limits.quota ?? '', autocomplete: 'off', spellcheck: 'false', placeholder: '1000000/month' });
    const handle = openDialog({
      title: `Limits of tenant ${tenant}`,
      body: [
        h('p', {}, 'All the tenant’s keys together, on every route. Every keygate instance applies a change within moments.'),
        field('Rate limits', rates, `${RATE_HINT} Empty: none.`),
        field('Quota', quota, `${QUOTA_HINT} Empty: none.`),
      ],
      actions: [button('Cancel', { onclick: () => handle.close() }), button('Save limits', { kind: 'primary', type: 'submit' })],
      async onSubmit(dialog) {
        dialog.busy(true);
        try {
          await request('PUT', `${path}/limits`, { rateLimits: rateList(rates.value), quota: quota.value.trim() || null });
        } catch (error) {
          dialog.busy(false);
          return dialog.fail(/** @type {Error} */ (error).message, fieldOf(error));
        }
        dialog.close();
        ctx.toast(`Limits of tenant ${tenant} saved.`);
        void show();
      },
    });
  }

  void show();
  return section;
}

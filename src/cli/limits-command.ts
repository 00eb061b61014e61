/**
 * `keygate keys limits|quota` and `keygate tenants limits|quota` (docs/limits.md): a key's
 * rate limits and budget, a tenant's, what is left of a budget, and top-ups. The rules are
 * the services' (keys/service.ts setRateLimits and setQuota, users/service.ts
 * setTenantLimits, limits/quota-service.ts status and top-ups); the CLI is CLI_CALLER, a
 * platform admin, so it may also remove limits, change a quota and top up. Bad input exits 2
 * naming the flag; an unknown key, or a top-up of something without a quota, exits 1.
 * A change reaches every running instance through the store (as a revocation does); budgets
 * are the store's counters, shared with the servers.
 */
import { isKeygateError, KeygateError } from '../http/problem.ts';
import { TENANT_PATTERN } from '../keys/format.ts';
import { toPublic, type KeyRecord } from '../keys/record.ts';
import { checkQuota, checkRates, CLI_CALLER, type KeyService } from '../keys/service.ts';
import type { QuotaStatus } from '../limits/quota-service.ts';
import type { TenantRecord } from '../users/records.ts';
import type { UserService } from '../users/service.ts';
import { parseFlags, usageError } from './args.ts';
import { configFrom, withQuotaService, type Io } from './context.ts';

const common = { config: { type: 'string' }, json: { type: 'boolean' } } as const;

/**
 * The services' bad input as the CLI says it, naming the flag a field came from
 * (`rateLimits` → `--rate-limit`): `--rate-limit: "2/x": must be <count>/<period>, …` (exit 2).
 */
export async function withFlags<T>(flags: Readonly<Record<string, string>>, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (isKeygateError(error, 'validation_failed') && error.field !== undefined && Object.hasOwn(flags, error.field)) {
      const rule = error.message.startsWith(`${error.field}: `) ? error.message.slice(error.field.length + 2) : error.message;
      throw usageError(`${flags[error.field]}: ${rule}`);
    }
    throw error;
  }
}

/**
 * Rate limits as typed: comma-separated (`20/s,50000/1d`), each flag of a repeatable one
 * too. `none` (or nothing) is none. Each is checked by the service, which names the field.
 */
export function rateList(values: string | readonly string[] | undefined): string[] {
  const texts = values === undefined ? [] : typeof values === 'string' ? [values] : values;
  const rates = texts.flatMap((text) => text.split(',')).map((r) => r.trim()).filter(Boolean);
  return rates.length === 1 && rates[0] === 'none' ? [] : rates;
}

/** `--top-up N`: a whole number of 1 or more (the service checks its upper bound, naming the flag too). */
function amountFlag(value: string): number {
  if (!/^[0-9]{1,16}$/.test(value) || Number(value) < 1) throw usageError(`--top-up must be a whole number from 1 to 1000000000000, got "${value}"`);
  return Number(value);
}

const list = (rates: readonly string[]) => (rates.length ? rates.join(', ') : 'none');

function when(iso: string): string {
  return `${iso.slice(0, 16).replace('T', ' ')} UTC`;
}

/** `3/day: 2 used, 1 left, starts afresh 2026-05-02 00:00 UTC`. */
export function describeStatus(status: QuotaStatus): string {
  const reset = status.resetsAt === null ? 'no refill: a top-up adds more' : `starts afresh ${when(status.resetsAt)}`;
  // A top-up makes `used` negative (the API's answer keeps it so): say what is left.
  const used = status.used < 0 ? 'topped up' : `${status.used} used`;
  return `${status.quota}: ${used}, ${status.remaining} left; ${reset}`;
}

function columns(rows: string[][]): string {
  const width = Math.max(...rows.map((row) => row[0]!.length));
  return rows.map(([label, text]) => `  ${label!.padEnd(width)}  ${text}`).join('\n');
}

async function keyOrFail(keys: KeyService, id: string): Promise<KeyRecord> {
  try {
    return await keys.get(CLI_CALLER, id);
  } catch (error) {
    if (isKeygateError(error, 'not_found')) throw new KeygateError('not_found', `no key with id "${id}"`);
    throw error;
  }
}

function keyArgument(positionals: string[], command: string): string {
  const id = positionals[0];
  if (id === undefined || id === '') throw usageError(`keys ${command} needs a <key-id>`);
  return id;
}

const who = (record: KeyRecord) => `${record.id} ("${record.name}", tenant "${record.tenant}")`;

/** The group whose rate limits a key is also counted against: its own, or its user's (users/directory.ts limitsOf). */
async function groupLimits(keys: KeyService, users: UserService, record: KeyRecord): Promise<{ name: string; rateLimits: readonly string[] } | null> {
  let name = record.group;
  if (record.permissionsFrom === 'user' && record.user !== null) name = (await keys.directoryFor(record.tenant)).user(record.tenant, record.user)?.group ?? null;
  if (name === null) return null;
  const group = (await users.listGroups(CLI_CALLER, record.tenant)).groups.find((g) => g.name === name);
  return { name, rateLimits: group?.rateLimits ?? [] };
}

/** `keygate keys limits <key-id> [--set 20/s,50000/1d | --clear] [--json]` */
export async function keyLimits(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parseFlags(args, { ...common, set: { type: 'string' }, clear: { type: 'boolean' } }, 1);
  const id = keyArgument(positionals, 'limits');
  if (values.set !== undefined && values.clear) throw usageError('give either --set or --clear, not both');
  const rates = values.set === undefined ? undefined : rateList(values.set);
  if (rates !== undefined && rates.length === 0) throw usageError('--set: give at least one rate limit, e.g. --set 20/s,50000/1d (--clear removes them)');
  // Bad input is exit 2 whether or not the key exists: the service's own check, before any lookup.
  if (rates !== undefined) await withFlags({ rateLimits: '--set' }, async () => checkRates(rates, 'rateLimits'));
  const config = configFrom(values.config, io);
  const result = await withQuotaService(config, io, async ({ keys: keyService, users }) => {
    const keys = keyService();
    const before = await keyOrFail(keys, id);
    const after = rates === undefined && !values.clear ? before : await withFlags({ rateLimits: '--set' }, () => keys.setRateLimits(CLI_CALLER, id, rates ?? []));
    const [group, tenant] = await Promise.all([groupLimits(keys, users, after), users.tenantLimits(CLI_CALLER, after.tenant)]);
    return { before, after, group, tenant };
  });
  const { before, after, group, tenant } = result;
  if (values.json) {
    io.out(JSON.stringify(toPublic(after)));
    return 0;
  }
  const changed = rates !== undefined || values.clear;
  const headline = !changed
    ? `Rate limits of key ${who(after)}:`
    : list(before.rateLimits) === list(after.rateLimits)
      ? `The rate limits of key ${who(after)} are unchanged:`
      : `Key ${who(after)} now has ${after.rateLimits.length ? `the rate limits ${list(after.rateLimits)}` : 'no rate limits of its own'} (was ${list(before.rateLimits)}); every instance applies this within moments. All that apply:`;
  io.out(
    [
      headline,
      columns([
        ['key', list(after.rateLimits)],
        ['group', group === null ? 'none' : `${group.name}: ${list(group.rateLimits)} (each key of the group)`],
        ['tenant', `${tenant.tenant}: ${list(tenant.rateLimits)} (all its keys together)`],
      ]),
      'Routes may have their own (routes[].limits in the configuration). A request must be within every one.',
    ].join('\n'),
  );
  return 0;
}

/** `keygate keys quota <key-id> [--set Q | --clear | --top-up N] [--json]` */
export async function keyQuota(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parseFlags(args, { ...common, set: { type: 'string' }, clear: { type: 'boolean' }, 'top-up': { type: 'string' } }, 1);
  const id = keyArgument(positionals, 'quota');
  const actions = [values.set !== undefined, values.clear === true, values['top-up'] !== undefined].filter(Boolean).length;
  if (actions > 1) throw usageError('give one of --set Q, --clear or --top-up N');
  if (values.set !== undefined && values.set.trim() === '') throw usageError('--set: give a quota, e.g. 10000/day, 300000/month or 5000 credits (--clear removes it)');
  const amount = values['top-up'] === undefined ? undefined : amountFlag(values['top-up']);
  const flags = { quota: '--set', amount: '--top-up' };
  // Bad input is exit 2 whether or not the key exists: the service's own check, before any lookup.
  if (values.set !== undefined) await withFlags(flags, async () => checkQuota(values.set!, 'quota'));
  const config = configFrom(values.config, io);

  if (amount !== undefined) {
    const { record, status } = await withQuotaService(config, io, async ({ keys, quotas }) => {
      const record = await keyOrFail(keys(), id);
      return { record, status: await withFlags(flags, () => quotas.topUpKey(CLI_CALLER, record, amount)) };
    });
    if (values.json) io.out(JSON.stringify(status));
    else io.out(`Topped up the quota of key ${who(record)} by ${amount}. Now ${describeStatus(status)}.${status.resetsAt === null ? '' : ' (A top-up lasts until the budget starts afresh.)'}`);
    return 0;
  }

  if (values.set !== undefined || values.clear) {
    const { before, after } = await withQuotaService(config, io, async ({ keys: keyService }) => {
      const keys = keyService();
      const before = await keyOrFail(keys, id);
      return { before, after: await withFlags(flags, () => keys.setQuota(CLI_CALLER, id, values.clear ? null : values.set!)) };
    });
    if (values.json) io.out(JSON.stringify(toPublic(after)));
    else if (before.quota === after.quota) io.out(`The quota of key ${who(after)} is unchanged (${after.quota ?? 'none'}).`);
    else if (after.quota === null) io.out(`Removed the quota of key ${who(after)} (was ${before.quota}); every instance applies this within moments.`);
    else io.out(`Key ${who(after)} now has the quota ${after.quota} (was ${before.quota ?? 'none'}); every instance applies it within moments. See what is left: keygate keys quota ${after.id}`);
    return 0;
  }

  const { record, statuses } = await withQuotaService(config, io, async ({ keys, users, quotas }) => {
    const record = await keyOrFail(keys(), id);
    const tenant = await users.tenantLimits(CLI_CALLER, record.tenant);
    const statuses = await Promise.all([quotas.keyStatus(record), quotas.tenantStatus(record.tenant, tenant.quota)]);
    return { record, statuses };
  });
  const [own, tenant] = statuses;
  if (values.json) {
    // As GET /v1/keys/{id}/quota answers.
    io.out(JSON.stringify({ id: record.id, quotas: statuses.filter((s) => s !== null) }));
    return 0;
  }
  io.out(
    [
      `Quotas of key ${who(record)}:`,
      columns([
        ['key', own === null ? `none (set one: keygate keys quota ${record.id} --set 10000/day)` : describeStatus(own)],
        ['tenant', tenant === null ? 'none' : `${describeStatus(tenant)} (all its keys together)`],
      ]),
    ].join('\n'),
  );
  return 0;
}

// ---- tenants ------------------------------------------------------------------------------

function tenantArgument(positionals: string[], command: string): string {
  const tenant = positionals[0];
  if (tenant === undefined) throw usageError(`tenants ${command} needs a <tenant>`);
  if (!TENANT_PATTERN.test(tenant)) throw usageError(`<tenant>: must match [a-z0-9][a-z0-9-]{0,62}, got "${tenant}"`);
  return tenant;
}

/** A tenant's settings as the admin API shows them (GET/PUT /v1/tenants/{tenant}/limits). */
function publicTenantLimits(t: TenantRecord) {
  return { tenant: t.tenant, rateLimits: t.rateLimits, quota: t.quota, updatedAt: t.updatedAt === 0 ? null : new Date(t.updatedAt).toISOString() };
}

/** `keygate tenants limits <tenant> [--rate-limits 200/s,… | none] [--quota Q | --clear-quota] [--json]` */
export async function tenantLimits(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parseFlags(args, { ...common, 'rate-limits': { type: 'string' }, quota: { type: 'string' }, 'clear-quota': { type: 'boolean' } }, 1);
  const tenant = tenantArgument(positionals, 'limits');
  if (values.quota !== undefined && values['clear-quota']) throw usageError('give either --quota or --clear-quota, not both');
  if (values.quota !== undefined && values.quota.trim() === '') throw usageError('--quota: give a quota, e.g. 1000000/month (--clear-quota removes it)');
  const rates = values['rate-limits'] === undefined ? undefined : rateList(values['rate-limits']);
  const quota = values['clear-quota'] ? null : values.quota;
  const changes = rates !== undefined || quota !== undefined;
  const config = configFrom(values.config, io);
  const { before, after, status } = await withQuotaService(config, io, async ({ users, quotas }) => {
    const before = await users.tenantLimits(CLI_CALLER, tenant);
    const after = changes ? await withFlags({ rateLimits: '--rate-limits', quota: '--quota', tenant: '<tenant>' }, () => users.setTenantLimits(CLI_CALLER, tenant, rates ?? before.rateLimits, quota)) : before;
    return { before, after, status: await quotas.tenantStatus(tenant, after.quota) };
  });
  if (values.json) {
    io.out(JSON.stringify(changes ? publicTenantLimits(after) : { ...publicTenantLimits(after), quotaStatus: status }));
    return 0;
  }
  const lines = [];
  if (changes) {
    const said: string[] = [];
    if (list(before.rateLimits) !== list(after.rateLimits)) said.push(`${after.rateLimits.length ? `rate limits ${list(after.rateLimits)}` : 'no rate limits'} (was ${list(before.rateLimits)})`);
    if (before.quota !== after.quota) said.push(`${after.quota === null ? 'no quota' : `quota ${after.quota}`} (was ${before.quota ?? 'none'})`);
    lines.push(said.length ? `Tenant "${tenant}" now has ${said.join(' and ')}; every instance applies this within moments.` : `The limits of tenant "${tenant}" are unchanged.`);
  } else lines.push(`Limits of tenant "${tenant}", all its keys together:`);
  lines.push(columns([['rate limits', list(after.rateLimits)], ['quota', status === null ? 'none' : describeStatus(status)]]));
  io.out(lines.join('\n'));
  return 0;
}

/** `keygate tenants quota <tenant> [--top-up N] [--json]` */
export async function tenantQuota(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parseFlags(args, { ...common, 'top-up': { type: 'string' } }, 1);
  const tenant = tenantArgument(positionals, 'quota');
  const amount = values['top-up'] === undefined ? undefined : amountFlag(values['top-up']);
  const config = configFrom(values.config, io);
  const { limits, status } = await withQuotaService(config, io, async ({ users, quotas }) => {
    const limits = await users.tenantLimits(CLI_CALLER, tenant);
    const status = amount === undefined ? await quotas.tenantStatus(tenant, limits.quota) : await withFlags({ amount: '--top-up' }, () => quotas.topUpTenant(CLI_CALLER, tenant, limits.quota, amount));
    return { limits, status };
  });
  if (values.json) {
    // A top-up answers like POST /v1/tenants/{tenant}/quota/top-up; the status like GET /v1/tenants/{tenant}/limits.
    io.out(JSON.stringify(amount === undefined ? { ...publicTenantLimits(limits), quotaStatus: status } : status));
    return 0;
  }
  if (status === null) io.out(`Tenant "${tenant}" has no quota (set one: keygate tenants limits ${tenant} --quota 1000000/month).`);
  else if (amount !== undefined) io.out(`Topped up the quota of tenant "${tenant}" by ${amount}. Now ${describeStatus(status)}.${status.resetsAt === null ? '' : ' (A top-up lasts until the budget starts afresh.)'}`);
  else io.out(`Quota of tenant "${tenant}", all its keys together: ${describeStatus(status)}.`);
  return 0;
}

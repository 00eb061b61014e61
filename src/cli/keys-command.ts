/**
 * `keygate keys create|list|revoke|rotate` (and `keys limits|quota`, limits-command.ts)
 *
 * The CLI is the operator: it opens the store itself, so it acts as a platform admin
 * (CLI_CALLER) — it may grant any permission and manage admin-role keys. Statuses it prints
 * are keyState's, the same the proxy acts on.
 */
import { keyState } from '../keys/key-state.ts';
import { ENVIRONMENTS, type Environment } from '../keys/format.ts';
import { toPublic, type KeyRecord, type Role } from '../keys/record.ts';
import { CLI_CALLER, orNullIfNotFound } from '../keys/service.ts';
import { isKeygateError } from '../http/problem.ts';
import { parseFlags, requireFlag, runSubcommand, usageError } from './args.ts';
import { usageDays, usageReport, type UsageDay } from '../events/usage-report.ts';
import { configFrom, withKeyService, type Io } from './context.ts';
import { keyLimits, keyQuota, rateList } from './limits-command.ts';

const USAGE = `usage:
  keygate keys create --tenant T --name N [--role api-user|admin] [--permissions p1,p2]
                      [--group G] [--user U] [--client C] [--expires 30d|90d|365d|never|<ISO date>]
                      [--environment live|sandbox] [--rate-limit 20/s]… [--quota 10000/day] [--json]
  keygate keys list [--tenant T] [--environment live|sandbox] [--unused-days N] [--revoked] [--json]

  --environment sandbox: a sandbox key (<prefix>_sandbox_<tenant>_…) reaches only routes'
  sandbox upstreams (routes[].sandbox.upstream); live (the default) only their upstream.
  keygate keys revoke <key-id>
  keygate keys revoke --all --tenant T
  keygate keys rotate <key-id> --overlap 0|<N>s|<N>m|<N>h|<N>d [--expires 30d|…|never|<ISO date>] [--json]
  keygate keys usage <key-id> [--days N] [--json]

  --unused-days N: only keys not used for N days (last used before then, or never used and
  created before then). keys usage: the key's requests per UTC day (1-35 days, default 30)
  by route and status class (docs/usage.md).

  keygate keys limits <key-id> [--set 20/s,50000/1d | --clear] [--json]
  keygate keys quota <key-id> [--set Q | --clear | --top-up N] [--json]

  --rate-limit (repeatable) and limits --set: <count>/<period>, units ms, s, m, h, d; the key
  is counted against its own, its group's, its tenant's and the route's limits. --quota and
  quota --set: <count>/day, <count>/month, <count> credits or <count> credits/<day|month>.
  keys quota shows what is left of the key's and its tenant's budgets; --top-up N adds N
  (audited). Every instance applies a change within moments (docs/limits.md).`;

const common = { config: { type: 'string' }, json: { type: 'boolean' } } as const;

function list(value: string | undefined): string[] {
  return value === undefined ? [] : value.split(',').map((p) => p.trim()).filter(Boolean);
}

/** `--environment`: live or sandbox (undefined when the flag is not given). */
function environmentFlag(value: string | undefined): Environment | undefined {
  if (value === undefined) return undefined;
  if (!(ENVIRONMENTS as readonly string[]).includes(value)) throw usageError(`--environment must be "live" or "sandbox", got "${value}"`);
  return value as Environment;
}

function date(ms: number | null): string {
  return ms === null ? '-' : new Date(ms).toISOString().slice(0, 16).replace('T', ' ');
}

function table(records: KeyRecord[], now: number): string {
  const rows = [['ID', 'TENANT', 'NAME', 'PREFIX', 'ENV', 'ROLE', 'STATUS', 'CREATED', 'EXPIRES', 'LAST USED']];
  // keyState: what the proxy does with the key now (active, expired or revoked). A rotated
  // key still in its overlap shows when the overlap ends: it is refused from then on.
  const status = (r: KeyRecord) => {
    const state = keyState(r, now);
    return state === 'active' && r.revokesAt !== null ? `active until ${date(r.revokesAt)}` : state;
  };
  for (const r of records) rows.push([r.id, r.tenant, r.name, r.prefix, r.environment, r.role, status(r), date(r.createdAt), r.expiresAt === null ? 'never' : date(r.expiresAt), date(r.lastUsedAt)]);
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  return rows.map((row) => row.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

async function create(args: string[], io: Io): Promise<number> {
  const { values } = parseFlags(args, {
    ...common,
    tenant: { type: 'string' },
    name: { type: 'string' },
    role: { type: 'string' },
    permissions: { type: 'string' },
    group: { type: 'string' },
    user: { type: 'string' },
    client: { type: 'string' },
    expires: { type: 'string' },
    environment: { type: 'string' },
    'rate-limit': { type: 'string', multiple: true },
    quota: { type: 'string' },
  });
  const tenant = requireFlag(values, 'tenant');
  const name = requireFlag(values, 'name');
  if (values.role !== undefined && values.role !== 'api-user' && values.role !== 'admin') throw usageError(`--role must be "api-user" or "admin", got "${values.role}"`);
  if (values.permissions !== undefined && values.group !== undefined) throw usageError('--permissions and --group cannot be used together');
  const environment = environmentFlag(values.environment);
  const config = configFrom(values.config, io);
  const created = await withKeyService(config, io, async (service) => {
    try {
      const made = await service.create(CLI_CALLER, {
        tenant,
        name,
        role: values.role as Role | undefined,
        permissions: list(values.permissions),
        group: values.group ?? null,
        user: values.user ?? null,
        client: values.client ?? null,
        environment: environment ?? 'live',
        expires: values.expires ?? 'never',
        rateLimits: rateList(values['rate-limit']),
        quota: values.quota ?? null,
      });
      // A key for an existing user takes that user's group at each request: say which it is now.
      return { ...made, userGroup: made.record.permissionsFrom === 'user' ? (await service.directoryFor(tenant)).user(tenant, made.record.user!)?.group : undefined };
    } catch (error) {
      if (isKeygateError(error, 'validation_failed')) throw usageError(`--${error.message.replace(/^rateLimits: /, 'rate-limit: ')}`);
      throw error;
    }
  });
  const record = toPublic(created.record);
  if (values.json) {
    io.out(JSON.stringify({ ...record, key: created.key }));
    return 0;
  }
  const where = record.environment === 'sandbox' ? ', sandbox: it reaches only sandbox upstreams' : '';
  const acts =
    record.permissionsFrom === 'user'
      ? `\nIt acts as user "${record.user}" of tenant "${record.tenant}": it has no permissions of its own but those of the user's group (now "${created.userGroup}"), as it is at each request (permissionsFrom: user).`
      : record.user !== null
        ? `\n"${record.user}" is not a user of tenant "${record.tenant}": it is only sent upstream as the user's name; the key's permissions are its own.`
        : '';
  const limits = record.rateLimits.length || record.quota !== null ? `\nRate limits: ${record.rateLimits.join(', ') || 'none'}; quota: ${record.quota ?? 'none'}.` : '';
  showOnce(io, `Created ${record.id} for tenant "${record.tenant}" (${record.name}, role ${record.role}, expires ${record.expiresAt ?? 'never'}${where}).${acts}${limits}`, created.key);
  return 0;
}

/** A new key, the only time it is ever printed. */
function showOnce(io: Io, headline: string, key: string): void {
  io.out([headline, '', `  ${key}`, '', 'Store this key now: keygate keeps only a hash and cannot show it again.'].join('\n'));
}

async function listKeys(args: string[], io: Io): Promise<number> {
  const { values } = parseFlags(args, { ...common, tenant: { type: 'string' }, revoked: { type: 'boolean' }, environment: { type: 'string' }, 'unused-days': { type: 'string' } });
  const environment = environmentFlag(values.environment);
  const unused = values['unused-days'];
  if (unused !== undefined && !/^[1-9]\d{0,4}$/.test(unused)) throw usageError(`--unused-days must be a whole number of days from 1 to 36500, got "${unused}"`);
  const config = configFrom(values.config, io);
  const records = await withKeyService(config, io, async (service) => {
    try {
      return await service.list(CLI_CALLER, { tenant: values.tenant, includeRevoked: values.revoked ?? false, environment, unusedDays: unused === undefined ? undefined : Number(unused) });
    } catch (error) {
      if (isKeygateError(error, 'validation_failed') && error.field === 'unusedDays') throw usageError(`--unused-days${error.message.slice(error.field.length)}`);
      throw error;
    }
  });
  const now = Date.now();
  if (values.json) io.out(JSON.stringify(records.map((r) => toPublic(r, now))));
  else if (records.length) io.out(table(records, now));
  else if (unused !== undefined) io.out(`No ${values.revoked ? '' : 'active '}keys unused for ${unused} days.`);
  else io.out(values.revoked ? 'No keys.' : 'No active keys (revoked keys are listed with --revoked).');
  return 0;
}

async function revoke(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parseFlags(args, { ...common, all: { type: 'boolean' }, tenant: { type: 'string' } }, 1);
  const id = positionals[0];
  if (values.all) {
    if (id !== undefined) throw usageError('give either <key-id> or --all --tenant T, not both');
    const tenant = requireFlag(values, 'tenant');
    const config = configFrom(values.config, io);
    const ids = await withKeyService(config, io, (service) => service.revokeTenant(CLI_CALLER, tenant));
    io.out(values.json ? JSON.stringify({ tenant, revoked: ids }) : `Revoked ${ids.length} key${ids.length === 1 ? '' : 's'} of tenant "${tenant}".`);
    return 0;
  }
  if (id === undefined) throw usageError('keys revoke needs a <key-id> (or --all --tenant T)');
  if (values.tenant !== undefined) throw usageError('--tenant is only used with --all');
  const config = configFrom(values.config, io);
  const result = await withKeyService(config, io, (service) => orNullIfNotFound(service.revoke(CLI_CALLER, id)));
  if (result === null) {
    io.err(`keygate: no key with id "${id}"`);
    return 1;
  }
  if (values.json) io.out(JSON.stringify(toPublic(result.record)));
  else io.out(result.changed ? `Revoked ${id}. It is refused from now on.` : `${id} was already revoked.`);
  return 0;
}

const OVERLAP_UNIT: Record<string, number> = { '': 1, s: 1, m: 60, h: 3600, d: 86_400 };

/** `--overlap` in seconds: `0`, `90` (seconds), `90s`, `15m`, `2h`, `7d`. */
function overlapSeconds(value: string): number {
  const match = /^(\d{1,7})([smhd]?)$/.exec(value);
  if (!match) throw usageError(`--overlap must be 0 or a duration like 90s, 15m, 2h or 7d, got "${value}"`);
  return Number(match[1]) * OVERLAP_UNIT[match[2]!]!;
}

async function rotate(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parseFlags(args, { ...common, overlap: { type: 'string' }, expires: { type: 'string' } }, 1);
  const id = positionals[0];
  if (id === undefined) throw usageError('keys rotate needs a <key-id>');
  // No default: how long the old key keeps working is a decision, not an accident.
  const overlap = overlapSeconds(requireFlag(values, 'overlap'));
  const config = configFrom(values.config, io);
  const rotated = await withKeyService(config, io, async (service) => {
    try {
      return await orNullIfNotFound(service.rotate(CLI_CALLER, id, overlap, values.expires));
    } catch (error) {
      if (isKeygateError(error, 'validation_failed') && error.field !== undefined) throw usageError(`--${error.field === 'overlapSeconds' ? 'overlap' : error.field}: ${error.message.slice(error.field.length + 2)}`);
      throw error;
    }
  });
  if (rotated === null) {
    io.err(`keygate: no key with id "${id}"`);
    return 1;
  }
  const record = toPublic(rotated.record);
  const previous = toPublic(rotated.previous);
  if (values.json) {
    io.out(JSON.stringify({ ...record, key: rotated.key, previous }));
    return 0;
  }
  const old = previous.status === 'revoked' || previous.revokesAt === null ? `${previous.id} is revoked.` : `${previous.id} keeps working until ${previous.revokesAt}, then is refused.`;
  showOnce(io, `Rotated ${previous.id} to ${record.id} (tenant "${record.tenant}", ${record.name}, expires ${record.expiresAt ?? 'never'}). ${old}`, rotated.key);
  return 0;
}

/** One line per UTC day: its total and, by route, its counts by class (or keygate's own status). */
function usageTable(days: UsageDay[]): string {
  const rows = [['DATE', 'TOTAL', 'BY ROUTE']];
  for (const day of days) {
    const routes = Object.entries(day.byRoute).map(([route, counts]) => `${route}: ${Object.entries(counts).map(([c, n]) => `${c} ${n}`).join(', ')}`);
    rows.push([day.date, String(day.total), routes.join('; ') || '-']);
  }
  rows.push(['TOTAL', String(days.reduce((sum, d) => sum + d.total, 0)), '']);
  const widths = [10, Math.max(...rows.map((r) => r[1]!.length))];
  return rows.map(([date, total, routes]) => `${date!.padEnd(widths[0]!)}  ${total!.padStart(widths[1]!)}  ${routes}`.trimEnd()).join('\n');
}

async function usage(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parseFlags(args, { ...common, days: { type: 'string' } }, 1);
  const id = positionals[0];
  if (id === undefined) throw usageError('keys usage needs a <key-id>');
  let days: number;
  try {
    days = usageDays(values.days, '--days');
  } catch (error) {
    if (isKeygateError(error, 'validation_failed')) throw usageError(error.message.replace(/^--days: /, '--days '));
    throw error;
  }
  const config = configFrom(values.config, io);
  const report = await withKeyService(config, io, async (service, store) => {
    const record = await orNullIfNotFound(service.get(CLI_CALLER, id));
    return record === null ? null : { id: record.id, tenant: record.tenant, days: await usageReport(store, 'k', record.id, days) };
  });
  if (report === null) {
    io.err(`keygate: no key with id "${id}"`);
    return 1;
  }
  if (values.json) io.out(JSON.stringify(report));
  else io.out(`Requests of ${report.id} (tenant "${report.tenant}"), last ${days} day${days === 1 ? '' : 's'} (UTC); written by each keygate every lifecycle.usageFlushMs:\n\n${usageTable(report.days)}`);
  return 0;
}

export function keysCommand(args: string[], io: Io): Promise<number> {
  return runSubcommand('keys', USAGE, { create, list: listKeys, revoke, rotate, usage, limits: keyLimits, quota: keyQuota }, args, io);
}

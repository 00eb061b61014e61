/**
 * `keygate groups list|create|update|delete`: a tenant's own permission groups, beside the
 * config's `permissionGroups` (which every tenant sees and only the config file changes).
 * A changed group reaches every key of every user in it, and every key created with
 * `--group` naming it, on every instance (docs/users.md). The rules are users/service.ts's;
 * the CLI is CLI_CALLER, a platform admin. Exit 2 for bad input, 1 for an unknown group or
 * a group still in use.
 */
import { isKeygateError, KeygateError } from '../http/problem.ts';
import { TENANT_PATTERN } from '../keys/format.ts';
import { CLI_CALLER } from '../keys/service.ts';
import { GROUP_NAME_PATTERN, GROUP_NAME_RULE, toPublicGroup, type GroupRecord } from '../users/records.ts';
import type { Config } from '../config/schema.ts';
import { parseFlags, requireFlag, runSubcommand, usageError } from './args.ts';
import { configFrom, withUserService, type Io } from './context.ts';
import { cliRules, columns, tenantArgument } from './users-command.ts';
import { rateList, withFlags } from './limits-command.ts';

const USAGE = `usage:
  keygate groups list [--tenant T] [--json]            (the config's groups and the tenants' own)
  keygate groups create --tenant T --name N --permissions p1,p2 [--rate-limits 2/s,100/1d] [--json]
  keygate groups update <tenant> <name> [--permissions p1,p2] [--rate-limits 2/s,100/1d|none] [--json]
  keygate groups delete <tenant> <name> [--json]       (refused while users or keys use it)

  A tenant's own permission group: users of the tenant are put in it (keygate users --help),
  and keys take its permissions at each request, so a change reaches them on every instance.
  Groups of the config (permissionGroups) are listed too; they change only in the config file.
  --rate-limits: each key of the group (its own or its user's) is counted against them on
  every route (<count>/<period>, units ms, s, m, h, d); update replaces them, none removes them.`;

const common = { config: { type: 'string' }, json: { type: 'boolean' } } as const;

function permissionList(value: string): string[] {
  return value.split(',').map((p) => p.trim()).filter(Boolean);
}

function groupArguments(positionals: string[], command: string): { tenant: string; name: string } {
  const tenant = tenantArgument(positionals[0], `groups ${command}`);
  const name = positionals[1];
  if (name === undefined) throw usageError(`groups ${command} needs <tenant> <name>`);
  if (!GROUP_NAME_PATTERN.test(name)) throw usageError(`<name>: ${GROUP_NAME_RULE}`);
  return { tenant, name };
}

/** not_found as the CLI says it (exit 1): a group of the config is named as such. */
function noSuchGroup(error: unknown, config: Config, tenant: string, name: string): unknown {
  if (!isKeygateError(error, 'not_found')) return error;
  if (Object.hasOwn(config.permissionGroups, name)) return new KeygateError('not_found', `"${name}" is a group of the configuration (permissionGroups), not of tenant "${tenant}": change it in the config file`);
  return new KeygateError('not_found', `tenant "${tenant}" has no group "${name}"`);
}

type PublicGroup = ReturnType<typeof toPublicGroup>;

function table(groups: PublicGroup[]): string {
  // RATE LIMITS only when some group has them (most have none).
  const limited = groups.some((g) => g.rateLimits.length > 0);
  const rows = [['TENANT', 'NAME', 'SOURCE', 'PERMISSIONS', ...(limited ? ['RATE LIMITS'] : [])]];
  for (const g of groups) rows.push([g.tenant ?? '-', g.name, g.source, g.permissions.join(',') || '(none)', ...(limited ? [g.rateLimits.join(',') || '-'] : [])]);
  return columns(rows);
}

const describe = (permissions: readonly string[]) => permissions.join(', ') || 'no permissions';
/** `; rate limits 2/s, 100/1d for each of its keys`, or nothing. */
const limitsText = (rates: readonly string[]) => (rates.length ? `; rate limits ${rates.join(', ')} for each of its keys` : '');
const RATE_FLAG = { rateLimits: '--rate-limits' };

async function list(args: string[], io: Io): Promise<number> {
  const { values } = parseFlags(args, { ...common, tenant: { type: 'string' } });
  if (values.tenant !== undefined && !TENANT_PATTERN.test(values.tenant)) throw usageError(`--tenant: must match [a-z0-9][a-z0-9-]{0,62}, got "${values.tenant}"`);
  const config = configFrom(values.config, io);
  const { global, groups } = await withUserService(config, io, (service) => service.listGroups(CLI_CALLER, values.tenant));
  const all = [...Object.entries(global).map(([name, permissions]) => toPublicGroup({ tenant: null, name, permissions })), ...groups.map(toPublicGroup)];
  if (values.json) io.out(JSON.stringify(all));
  else io.out(all.length ? table(all) : values.tenant === undefined ? 'No groups.' : `No groups for tenant "${values.tenant}" (and none in the config).`);
  return 0;
}

async function create(args: string[], io: Io): Promise<number> {
  const { values } = parseFlags(args, { ...common, tenant: { type: 'string' }, name: { type: 'string' }, permissions: { type: 'string' }, 'rate-limits': { type: 'string' } });
  const tenant = requireFlag(values, 'tenant');
  const name = requireFlag(values, 'name');
  const permissions = permissionList(requireFlag(values, 'permissions'));
  const rateLimits = rateList(values['rate-limits']);
  const config = configFrom(values.config, io);
  const group = await withUserService(config, io, (service) => cliRules(() => withFlags(RATE_FLAG, () => service.createGroup(CLI_CALLER, { tenant, name, permissions, rateLimits }))));
  if (values.json) io.out(JSON.stringify(toPublicGroup(group)));
  else io.out(`Created group "${group.name}" in tenant "${group.tenant}" (${describe(group.permissions)}${limitsText(group.rateLimits)}). Put users in it: keygate users create --tenant ${group.tenant} --name N --group ${group.name}`);
  return 0;
}

async function update(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parseFlags(args, { ...common, permissions: { type: 'string' }, 'rate-limits': { type: 'string' } }, 2);
  const { tenant, name } = groupArguments(positionals, 'update');
  if (values.permissions === undefined && values['rate-limits'] === undefined) throw usageError('--permissions is required (or --rate-limits, to change only the rate limits)');
  const permissions = values.permissions === undefined ? undefined : permissionList(requireFlag(values, 'permissions'));
  const rateLimits = values['rate-limits'] === undefined ? undefined : rateList(values['rate-limits']);
  const config = configFrom(values.config, io);
  const { before, after } = await withUserService(config, io, (service) =>
    cliRules(async () => {
      try {
        const found: GroupRecord | undefined = (await service.listGroups(CLI_CALLER, tenant)).groups.find((g) => g.name === name);
        return { before: found, after: await withFlags(RATE_FLAG, () => service.updateGroup(CLI_CALLER, tenant, name, { permissions, rateLimits })) };
      } catch (error) {
        throw noSuchGroup(error, config, tenant, name);
      }
    }),
  );
  if (values.json) io.out(JSON.stringify(toPublicGroup(after)));
  else if (before !== undefined && before.updatedAt === after.updatedAt) io.out(`Group "${name}" of tenant "${tenant}" is unchanged (${describe(after.permissions)}${limitsText(after.rateLimits)}).`);
  else if (permissions === undefined || describe(after.permissions) === describe(before?.permissions ?? [])) {
    io.out(`Group "${name}" of tenant "${tenant}" now has the rate limits ${after.rateLimits.join(', ') || 'none'} (was ${before?.rateLimits.join(', ') || 'none'}) for each of its keys. The keys of its users, and keys created with --group ${name}, are counted against them from their next request, on every instance.`);
  } else io.out(`Group "${name}" of tenant "${tenant}" now has ${describe(after.permissions)} (was ${describe(before?.permissions ?? [])})${limitsText(after.rateLimits)}. The keys of its users, and keys created with --group ${name}, have them from their next request, on every instance.`);
  return 0;
}

async function remove(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parseFlags(args, common, 2);
  const { tenant, name } = groupArguments(positionals, 'delete');
  const config = configFrom(values.config, io);
  const group = await withUserService(config, io, async (service) => {
    try {
      return await service.deleteGroup(CLI_CALLER, tenant, name);
    } catch (error) {
      throw noSuchGroup(error, config, tenant, name);
    }
  });
  if (values.json) io.out(JSON.stringify({ ...toPublicGroup(group), deleted: true }));
  else io.out(`Deleted group "${name}" of tenant "${tenant}" (it had ${describe(group.permissions)}).`);
  return 0;
}

export function groupsCommand(args: string[], io: Io): Promise<number> {
  return runSubcommand('groups', USAGE, { list, create, update, delete: remove }, args, io);
}

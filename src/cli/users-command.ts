/**
 * `keygate users list|create|show|update|disable|enable`: a tenant's users (docs/users.md).
 * A key created for an existing user (`keygate keys create --user U`) takes the user's
 * group at each request, so what these commands change reaches all the user's keys on every
 * instance through the store's feed. The rules are users/service.ts's, shared with the
 * admin API; the CLI is CLI_CALLER, a platform admin. Bad input (a flag, an argument, a group
 * that does not exist) exits 2 naming it; an unknown user or a conflict exits 1.
 */
import { isKeygateError, KeygateError } from '../http/problem.ts';
import { TENANT_PATTERN } from '../keys/format.ts';
import { keyState } from '../keys/key-state.ts';
import { USER_PATTERN } from '../keys/patterns.ts';
import { toPublic, type KeyRecord } from '../keys/record.ts';
import { CLI_CALLER } from '../keys/service.ts';
import { toPublicUser, USER_NAME_RULE, type UserRecord } from '../users/records.ts';
import type { UserService } from '../users/service.ts';
import { parseFlags, requireFlag, runSubcommand, usageError } from './args.ts';
import { configFrom, withUserService, type Io } from './context.ts';

const USAGE = `usage:
  keygate users list [--tenant T] [--json]
  keygate users create --tenant T --name N --group G [--display-name D] [--json]
  keygate users show <tenant> <name> [--json]          (with the keys that act as it or name it)
  keygate users update <tenant> <name> [--group G] [--display-name D] [--json]
  keygate users disable <tenant> <name> [--json]       (its keys get 401 user_disabled everywhere)
  keygate users enable <tenant> <name> [--json]

  A user is a tenant's named identity with a permission group: one of the tenant's own
  (keygate groups --help) or of the config's permissionGroups. A key created for it,
  keygate keys create --tenant T --name N --user <name>, takes the user's group at each
  request: a new group or a disabled user reaches all its keys on every instance, without
  touching a key (docs/users.md).`;

const common = { config: { type: 'string' }, json: { type: 'boolean' } } as const;

/** The flag a service field is given with. */
const FLAGS: Record<string, string> = { displayName: '--display-name', tenant: '--tenant', name: '--name', group: '--group', permissions: '--permissions' };

/**
 * The service's bad input as the CLI says it: `--group: "x" is neither …` (exit 2). `positional`
 * names the fields that came as arguments (`<tenant>`, `<name>`) rather than flags.
 */
export async function cliRules<T>(work: () => Promise<T>, positional: readonly string[] = []): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (isKeygateError(error, 'validation_failed') && error.field !== undefined) {
      const rule = error.message.startsWith(`${error.field}: `) ? error.message.slice(error.field.length + 2) : error.message;
      const name = positional.includes(error.field) ? `<${error.field}>` : (FLAGS[error.field] ?? `--${error.field}`);
      throw usageError(`${name}: ${rule}`);
    }
    throw error;
  }
}

/** `<tenant>` as an argument: bad input (exit 2) when it cannot be a tenant. */
export function tenantArgument(tenant: string | undefined, command: string): string {
  if (tenant === undefined) throw usageError(`${command} needs <tenant> <name>`);
  if (!TENANT_PATTERN.test(tenant)) throw usageError(`<tenant>: must match [a-z0-9][a-z0-9-]{0,62}, got "${tenant}"`);
  return tenant;
}

function userArguments(positionals: string[], command: string): { tenant: string; name: string } {
  const tenant = tenantArgument(positionals[0], `users ${command}`);
  const name = positionals[1];
  if (name === undefined) throw usageError(`users ${command} needs <tenant> <name>`);
  if (!USER_PATTERN.test(name)) throw usageError(`<name>: ${USER_NAME_RULE}`);
  return { tenant, name };
}

/** not_found as the CLI says it (exit 1). */
function noSuchUser(error: unknown, tenant: string, name: string): unknown {
  return isKeygateError(error, 'not_found') ? new KeygateError('not_found', `tenant "${tenant}" has no user "${name}"`) : error;
}

function date(ms: number | null): string {
  return ms === null ? '-' : new Date(ms).toISOString().slice(0, 16).replace('T', ' ');
}

export function columns(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  return rows.map((row) => row.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

const statusOf = (user: UserRecord) => (user.disabledAt === null ? 'enabled' : `disabled since ${date(user.disabledAt)}`);

function usersTable(users: UserRecord[]): string {
  const rows = [['TENANT', 'NAME', 'DISPLAY NAME', 'GROUP', 'STATUS', 'CREATED']];
  for (const u of users) rows.push([u.tenant, u.name, u.displayName, u.group, statusOf(u), date(u.createdAt)]);
  return columns(rows);
}

/** Keys that act as the user (their permissions are its group's) and still work. */
function actingKeys(keys: KeyRecord[], now = Date.now()): KeyRecord[] {
  return keys.filter((k) => k.permissionsFrom === 'user' && keyState(k, now) === 'active');
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

function keysTable(keys: KeyRecord[], now: number): string {
  const rows = [['ID', 'NAME', 'PREFIX', 'ENV', 'STATUS', 'PERMISSIONS', 'EXPIRES', 'LAST USED']];
  for (const k of keys) {
    const permissions = k.permissionsFrom === 'user' ? "the user's group" : k.group !== null ? `group ${k.group} (only labelled with the user)` : `${k.permissions.join(',') || 'none'} (only labelled with the user)`;
    rows.push([k.id, k.name, k.prefix, k.environment, keyState(k, now), permissions, k.expiresAt === null ? 'never' : date(k.expiresAt), date(k.lastUsedAt)]);
  }
  return columns(rows);
}

async function groupMembers(service: UserService, tenant: string, group: string): Promise<readonly string[] | undefined> {
  const { global, groups } = await service.listGroups(CLI_CALLER, tenant);
  return groups.find((g) => g.name === group)?.permissions ?? (Object.hasOwn(global, group) ? global[group] : undefined);
}

async function list(args: string[], io: Io): Promise<number> {
  const { values } = parseFlags(args, { ...common, tenant: { type: 'string' } });
  if (values.tenant !== undefined && !TENANT_PATTERN.test(values.tenant)) throw usageError(`--tenant: must match [a-z0-9][a-z0-9-]{0,62}, got "${values.tenant}"`);
  const config = configFrom(values.config, io);
  const users = await withUserService(config, io, (service) => service.listUsers(CLI_CALLER, values.tenant));
  if (values.json) io.out(JSON.stringify(users.map(toPublicUser)));
  else io.out(users.length ? usersTable(users) : values.tenant === undefined ? 'No users.' : `No users in tenant "${values.tenant}".`);
  return 0;
}

async function create(args: string[], io: Io): Promise<number> {
  const { values } = parseFlags(args, { ...common, tenant: { type: 'string' }, name: { type: 'string' }, group: { type: 'string' }, 'display-name': { type: 'string' } });
  const tenant = requireFlag(values, 'tenant');
  const name = requireFlag(values, 'name');
  const group = requireFlag(values, 'group');
  const config = configFrom(values.config, io);
  const user = await withUserService(config, io, (service) => cliRules(() => service.createUser(CLI_CALLER, { tenant, name, group, displayName: values['display-name'] })));
  if (values.json) io.out(JSON.stringify(toPublicUser(user)));
  else io.out(`Created user "${user.name}" in tenant "${user.tenant}" (group ${user.group}). Keys created with --user, e.g.\n  keygate keys create --tenant ${user.tenant} --name <key name> --user ${shellWord(user.name)}\nact as it and take its group's permissions at each request.`);
  return 0;
}

/** A name as a shell word (quoted when it holds anything but safe characters). */
function shellWord(text: string): string {
  return /^[A-Za-z0-9_.:@%+=,/-]+$/.test(text) ? text : `'${text.replace(/'/g, `'\\''`)}'`;
}

async function show(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parseFlags(args, common, 2);
  const { tenant, name } = userArguments(positionals, 'show');
  const config = configFrom(values.config, io);
  const { user, keys, members } = await withUserService(config, io, async (service) => {
    try {
      const found = await service.getUser(CLI_CALLER, tenant, name);
      return { ...found, members: await groupMembers(service, tenant, found.user.group) };
    } catch (error) {
      throw noSuchUser(error, tenant, name);
    }
  });
  const now = Date.now();
  if (values.json) {
    io.out(JSON.stringify({ ...toPublicUser(user), keys: keys.map((k) => toPublic(k, now)) }));
    return 0;
  }
  const acting = actingKeys(keys, now);
  const lines = [
    `User "${user.name}" of tenant "${user.tenant}"`,
    columns([
      ['  display name', user.displayName],
      ['  group', `${user.group} (${members === undefined ? 'no longer exists: its keys have no permissions' : members.join(', ') || 'no permissions'})`],
      ['  status', user.disabledAt === null ? 'enabled' : `disabled since ${date(user.disabledAt)}: its keys are refused (401 user_disabled)`],
      ['  created', date(user.createdAt)],
      ['  updated', date(user.updatedAt)],
    ]),
    '',
    keys.length === 0
      ? `No keys act as it or name it. Create one: keygate keys create --tenant ${user.tenant} --name <key name> --user ${shellWord(user.name)}`
      : `Keys (${plural(acting.length, 'working key')} acting as it):\n${keysTable(keys, now)}`,
  ];
  io.out(lines.join('\n'));
  return 0;
}

/** Reads the user with its keys, changes it, and says what changed for its keys. */
async function change(args: string[], io: Io, command: 'update' | 'disable' | 'enable'): Promise<number> {
  const options = command === 'update' ? { ...common, group: { type: 'string' }, 'display-name': { type: 'string' } } as const : common;
  const { values, positionals } = parseFlags(args, options, 2);
  const { tenant, name } = userArguments(positionals, command);
  const flags = values as { group?: string; 'display-name'?: string; json?: boolean; config?: string };
  if (command === 'update' && flags.group === undefined && flags['display-name'] === undefined) throw usageError('users update needs --group G, --display-name D, or both');
  if (flags.group === '') throw usageError('--group: must not be empty');
  const config = configFrom(flags.config, io);
  const { before, after, acting } = await withUserService(config, io, (service) =>
    cliRules(async () => {
      try {
        const { user, keys } = await service.getUser(CLI_CALLER, tenant, name);
        const input = command === 'update' ? { group: flags.group, displayName: flags['display-name'] } : { disabled: command === 'disable' };
        return { before: user, after: await service.updateUser(CLI_CALLER, tenant, name, input), acting: actingKeys(keys).length };
      } catch (error) {
        throw noSuchUser(error, tenant, name);
      }
    }),
  );
  if (flags.json) {
    io.out(JSON.stringify(toPublicUser(after)));
    return 0;
  }
  const who = `user "${name}" of tenant "${tenant}"`;
  const keys = plural(acting, 'key');
  /** The verb for "its N keys": `is`/`are`, `works`/`work`, `has`/`have`. */
  const verb = (one: string, many: string) => (acting === 1 ? one : many);
  if (command === 'disable') {
    io.out(
      before.disabledAt !== null
        ? `The ${who} was already disabled.`
        : `Disabled the ${who}. Its ${keys} acting as it ${verb('is', 'are')} refused (401 user_disabled) on every instance from now on; open WebSockets and streams of ${verb('it', 'them')} are closed.`,
    );
  } else if (command === 'enable') {
    io.out(before.disabledAt === null ? `The ${who} was already enabled.` : `Enabled the ${who}. Its ${keys} acting as it ${verb('works', 'work')} again, with the permissions of group ${after.group}.`);
  } else if (after.updatedAt === before.updatedAt) {
    io.out(`The ${who} is unchanged.`);
  } else {
    const changes: string[] = [];
    if (after.displayName !== before.displayName) changes.push(`display name "${before.displayName}" → "${after.displayName}"`);
    if (after.group !== before.group) changes.push(`group ${before.group} → ${after.group}`);
    const reach = after.group !== before.group ? ` Its ${keys} acting as it ${verb('has', 'have')} the permissions of group ${after.group} from ${verb('its', 'their')} next request, on every instance.` : '';
    io.out(`Updated the ${who}: ${changes.join(', ')}.${reach}`);
  }
  return 0;
}

export function usersCommand(args: string[], io: Io): Promise<number> {
  return runSubcommand(
    'users',
    USAGE,
    {
      list,
      create,
      show,
      update: (rest, out) => change(rest, out, 'update'),
      disable: (rest, out) => change(rest, out, 'disable'),
      enable: (rest, out) => change(rest, out, 'enable'),
    },
    args,
    io,
  );
}

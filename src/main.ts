/**
 * keygate's entry point: `keygate serve|keys|users|groups|tenants|secrets|config …`. Exit status: 0 success,
 * 1 runtime failure, 2 bad usage or invalid config.
 */
import { exitStatus, wantsHelp } from './cli/args.ts';
import type { Io } from './cli/context.ts';
import { keysCommand } from './cli/keys-command.ts';
import { secretsCommand } from './cli/secrets-command.ts';
import { usersCommand } from './cli/users-command.ts';
import { groupsCommand } from './cli/groups-command.ts';
import { tenantsCommand } from './cli/tenants-command.ts';
import { configCommand } from './cli/config-command.ts';
import { serveCommand } from './cli/serve-command.ts';

const USAGE = `usage: keygate <command>

  serve [--config FILE]          run the gateway
  keys create|list|revoke|rotate|usage|limits|quota …
                                 manage API keys, their rate limits and quotas (keygate keys --help)
  users list|create|show|update|disable|enable …
                                 manage a tenant's users (keygate users --help)
  groups list|create|update|delete …
                                 manage tenants' permission groups (keygate groups --help)
  tenants limits|quota …         a tenant's rate limits and quota, top-ups (keygate tenants --help)
  secrets add|list|rename|remove|usages|rewrap …
                                 manage upstream secrets (keygate secrets --help)
  config check [--config FILE]   validate the configuration

The config file is --config FILE, else $KEYGATE_CONFIG, else config/keygate.yaml.`;

export async function run(argv: string[], io: Io): Promise<number> {
  const [command, ...rest] = argv;
  try {
    // `keygate serve --help`, `keygate config check --help`: the usage, not "unknown option".
    if ((command === 'serve' || command === 'config') && wantsHelp(rest)) {
      io.out(USAGE);
      return 0;
    }
    switch (command) {
      case 'serve':
        return await serveCommand(rest, io);
      case 'keys':
        return await keysCommand(rest, io);
      case 'users':
        return await usersCommand(rest, io);
      case 'groups':
        return await groupsCommand(rest, io);
      case 'tenants':
        return await tenantsCommand(rest, io);
      case 'secrets':
        return await secretsCommand(rest, io);
      case 'config':
        return await configCommand(rest, io);
      case '--help':
      case '-h':
      case 'help':
        io.out(USAGE);
        return 0;
      default:
        io.err(command === undefined ? USAGE : `keygate: unknown command "${command}"\n\n${USAGE}`);
        return 2;
    }
  } catch (error) {
    io.err(`keygate: ${(error as Error).message ?? String(error)}`);
    return exitStatus(error);
  }
}

export const processIo: Io = {
  out: (text) => process.stdout.write(`${text}\n`),
  err: (text) => process.stderr.write(`${text}\n`),
  env: process.env,
  stdin: process.stdin,
};

/**
 * Flag parsing for every command (node:util parseArgs, strict), turning its errors into
 * usage errors (exit 2) with a message that names the flag.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { isKeygateError, KeygateError } from '../http/problem.ts';

/** Bad usage — a flag, an argument, the value on stdin: validation_failed, so exit 2. */
export function usageError(message: string): KeygateError {
  return new KeygateError('validation_failed', message);
}

/**
 * The exit status for an error that ends a command: 2 for bad input (validation_failed:
 * usage, configuration, the environment's KEYGATE_PEPPER or master key), 1 for anything
 * else (a runtime failure: the store, a missing id, a conflict).
 */
export function exitStatus(error: unknown): 1 | 2 {
  return isKeygateError(error, 'validation_failed') ? 2 : 1;
}

type Options = NonNullable<ParseArgsConfig['options']>;

export function parseFlags<const O extends Options>(args: string[], options: O, positionals = 0) {
  let parsed;
  try {
    parsed = parseArgs({ args, options, strict: true, allowPositionals: positionals > 0 });
  } catch (error) {
    const message = (error as Error).message.replace(/\. To specify a positional argument.*$/s, '');
    throw usageError(message);
  }
  if (parsed.positionals.length > positionals) throw usageError(`unexpected argument "${parsed.positionals[positionals]}"`);
  return parsed;
}

export type Subcommand<Io> = (args: string[], io: Io) => Promise<number>;

/** `keygate <group> <sub> …`: runs the subcommand, or prints usage (exit 2 when none was given). */
export function runSubcommand<Io extends { out(text: string): void }>(group: string, usage: string, table: Record<string, Subcommand<Io>>, args: string[], io: Io): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === undefined || sub === 'help' || sub === '--help') {
    io.out(usage);
    return Promise.resolve(sub === undefined ? 2 : 0);
  }
  const command = Object.hasOwn(table, sub) ? table[sub] : undefined;
  if (command === undefined) throw usageError(`unknown command "${group} ${sub}"\n${usage}`);
  // `keygate keys create --help`: the group's usage, which lists every subcommand's flags.
  if (wantsHelp(rest)) {
    io.out(usage);
    return Promise.resolve(0);
  }
  return command(rest, io);
}

/** `--help` or `-h` anywhere among a command's arguments. */
export function wantsHelp(args: readonly string[]): boolean {
  return args.includes('--help') || args.includes('-h');
}

export function requireFlag(values: Record<string, unknown>, name: string): string {
  const value = values[name];
  if (typeof value !== 'string' || value === '') throw usageError(`--${name} is required`);
  return value;
}

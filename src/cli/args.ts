/**
 * Flag parsing for every command (node:util parseArgs, strict), turning its errors into
 * UsageError (exit 2) with a message that names the flag.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';

export class UsageError extends Error {
  override name = 'UsageError';
}

type Options = NonNullable<ParseArgsConfig['options']>;

export function parseFlags<const O extends Options>(args: string[], options: O, positionals = 0) {
  let parsed;
  try {
    parsed = parseArgs({ args, options, strict: true, allowPositionals: positionals > 0 });
  } catch (error) {
    const message = (error as Error).message.replace(/\. To specify a positional argument.*$/s, '');
    throw new UsageError(message);
  }
  if (parsed.positionals.length > positionals) throw new UsageError(`unexpected argument "${parsed.positionals[positionals]}"`);
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
  if (command === undefined) throw new UsageError(`unknown command "${group} ${sub}"\n${usage}`);
  return command(rest, io);
}

export function requireFlag(values: Record<string, unknown>, name: string): string {
  const value = values[name];
  if (typeof value !== 'string' || value === '') throw new UsageError(`--${name} is required`);
  return value;
}

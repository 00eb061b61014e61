/** `keygate config check`: validates the config (file + environment) without starting anything. */
import { parseFlags, UsageError } from './args.ts';
import { configFrom, type Io } from './context.ts';
import { resolveConfigPath } from '../config/load.ts';

export async function configCommand(args: string[], io: Io): Promise<number> {
  const [sub, ...rest] = args;
  if (sub !== 'check') throw new UsageError(`unknown command "config ${sub ?? ''}"; usage: keygate config check [--config FILE]`);
  const { values } = parseFlags(rest, { config: { type: 'string' } });
  const config = configFrom(values.config, io);
  const warnings: string[] = [];
  if (config.store.kind === 'redis' && !io.env.KEYGATE_PEPPER) {
    throw new UsageError('KEYGATE_PEPPER: is required with the Redis store');
  }
  if (config.store.kind === 'embedded' && !io.env.KEYGATE_PEPPER) warnings.push(`KEYGATE_PEPPER is not set: the pepper in the data directory is used (created on first start)`);
  const path = resolveConfigPath(values.config, io.env);
  io.out(`${path}: OK (${config.routes.length} route${config.routes.length === 1 ? '' : 's'}, store ${config.store.kind})`);
  for (const w of warnings) io.out(`warning: ${w}`);
  return 0;
}

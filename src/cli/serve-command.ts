/**
 * `keygate serve`: runs until SIGTERM/SIGINT, then stops accepting, lets in-flight requests
 * finish for up to `shutdown.graceMs`, flushes batched writes, logs and notifications, and
 * exits 0. SIGHUP reloads the config. With `workers: N` (or auto) this process becomes the
 * primary of N worker processes, each running what follows.
 */
import cluster from 'node:cluster';
import { runPrimary, workerCount } from '../cluster/primary.ts';
import { ConfigError } from '../config/load.ts';
import { checkEnvironment } from './environment.ts';
import { loadPepper } from '../keys/pepper.ts';
import { createLoggers } from '../observability/logger.ts';
import { startKeygate } from '../server.ts';
import { parseFlags } from './args.ts';
import { configFrom, type Io } from './context.ts';

export async function serveCommand(args: string[], io: Io): Promise<number> {
  const { values } = parseFlags(args, { config: { type: 'string' } });
  const config = configFrom(values.config, io);
  const loggers = createLoggers({ level: config.log.level });
  const { logger, access } = loggers;
  const workers = workerCount(config.workers);
  if (workers > 1 && cluster.isPrimary) {
    // What would make every worker fail at start is checked once here (exit 2), rather than
    // left to a restart loop. The pepper file, if it has to be created, is created once.
    await checkEnvironment(config, io.env, logger).close();
    loadPepper(config, io.env);
    const code = await runPrimary({ workers, graceMs: config.shutdown.graceMs, logger });
    loggers.flush();
    return code;
  }
  // Until keygate is up, a reload request has nothing to reload, but must not kill the process.
  const early = () => logger.warn('SIGHUP before start-up finished: ignored');
  process.on('SIGHUP', early);
  // Before anything starts: what config check checks stops start-up with exit 2.
  const notifier = checkEnvironment(config, io.env, logger);
  const keygate = await startKeygate({
    config,
    env: io.env,
    logger,
    accessLogger: access,
    notify: notifier.notify,
    reloadConfig: () => configFrom(values.config, io),
  });
  process.off('SIGHUP', early);
  process.on('SIGHUP', () => {
    try {
      keygate.reload();
    } catch (error) {
      const problems = error instanceof ConfigError ? error.problems : [(error as Error).message];
      logger.error({ problems }, 'reload refused: the new configuration is invalid; the old one stays in force');
    }
  });
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  const graceMs = keygate.config.shutdown.graceMs;
  logger.info({ signal, graceMs }, 'shutting down: finishing in-flight requests');
  await keygate.close(graceMs);
  await notifier.flush(5000);
  await notifier.close();
  logger.info('keygate stopped');
  loggers.flush();
  return 0;
}

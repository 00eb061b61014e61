/** `keygate serve`: runs until SIGTERM/SIGINT, then drains in-flight requests and exits 0. */
import { createNotifier } from '../events/notifications/notifier.ts';
import { createLoggers } from '../observability/logger.ts';
import { startKeygate } from '../server.ts';
import { parseFlags } from './args.ts';
import { configFrom, type Io } from './context.ts';

const GRACE_MS = 10_000;

export async function serveCommand(args: string[], io: Io): Promise<number> {
  const { values } = parseFlags(args, { config: { type: 'string' } });
  const config = configFrom(values.config, io);
  const loggers = createLoggers({ level: config.log.level });
  const { logger, access } = loggers;
  // Before anything starts, so a missing notification secret stops start-up with exit 2.
  const notifier = createNotifier({ config: config.notifications, env: io.env, logger });
  const keygate = await startKeygate({ config, env: io.env, logger, accessLogger: access, notify: notifier.notify });
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  logger.info({ signal, graceMs: GRACE_MS }, 'shutting down: finishing in-flight requests');
  await keygate.close(GRACE_MS);
  await notifier.flush(5000);
  await notifier.close();
  logger.info('keygate stopped');
  loggers.flush();
  return 0;
}

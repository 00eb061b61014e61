/**
 * What `serve` needs from the environment beyond the config file, checked by one function that
 * `serve` (before it starts anything, once for all workers) and `config check` both run — so
 * `config check` never says OK to a deployment `serve` would then refuse. Every problem is a
 * ConfigError (exit 2) naming the variable, never its value.
 *
 *  - KEYGATE_PEPPER: at least 16 characters; required with the Redis store (the embedded
 *    store's pepper file is not created by a check);
 *  - KEYGATE_MASTER_KEY / _PREVIOUS: well-formed when set;
 *  - admin.metricsTokenEnv: set and long enough when configured;
 *  - notifications: every secretEnv / passwordEnv set and well-formed;
 *  - oauth.issuers[].introspection.clientSecretEnv: set.
 */
import { adminAccess } from '../admin/server.ts';
import type { Config } from '../config/schema.ts';
import { createNotifier, type Notifier } from '../events/notifications/notifier.ts';
import { pepperFromEnv } from '../keys/pepper.ts';
import type { Logger } from '../observability/logger.ts';
import { loadKeyring } from '../secrets/crypto.ts';
import { checkIntrospectionSecrets } from '../auth/introspection.ts';

/**
 * Throws what `serve` would refuse; returns the notifier that checking the notification
 * secrets built — `serve` sends with it, everyone else closes it.
 */
export function checkEnvironment(config: Config, env: NodeJS.ProcessEnv, logger: Logger): Notifier {
  pepperFromEnv(config, env);
  loadKeyring(env);
  adminAccess(config.admin, env);
  checkIntrospectionSecrets(config.oauth.issuers, env);
  return createNotifier({ config: config.notifications, env, logger });
}

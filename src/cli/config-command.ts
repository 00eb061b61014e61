/**
 * `keygate config check`: validates the config (file + environment) without starting anything.
 * Exit 2 for what stops `serve` (invalid config, a malformed pepper or master key); exit 0
 * with `warning:` lines for what only some requests would notice — above all, routes whose
 * upstream secret is not stored, or cannot be decrypted with the master keys given (those
 * routes answer 502).
 */
import { existsSync } from 'node:fs';
import { parseFlags, usageError } from './args.ts';
import { configFrom, type Io } from './context.ts';
import { resolveConfigPath } from '../config/load.ts';
import type { Config } from '../config/schema.ts';
import { keyFor, loadKeyring, MASTER_KEY_ENV, PREVIOUS_MASTER_KEY_ENV, type Keyring } from '../secrets/crypto.ts';
import { openStore } from '../store/open.ts';
import { createLoggers } from '../observability/logger.ts';
import { checkEnvironment } from './environment.ts';

export async function configCommand(args: string[], io: Io): Promise<number> {
  const [sub, ...rest] = args;
  if (sub !== 'check') throw usageError(`unknown command "config ${sub ?? ''}"; usage: keygate config check [--config FILE]`);
  const { values } = parseFlags(rest, { config: { type: 'string' } });
  const config = configFrom(values.config, io);
  const warnings: string[] = [];
  // Exactly what serve checks before it starts (cli/environment.ts): OK here means serve starts.
  await checkEnvironment(config, io.env, createLoggers({ level: 'silent' }).logger).close();
  if (config.store.kind === 'embedded' && !io.env.KEYGATE_PEPPER) warnings.push(`KEYGATE_PEPPER is not set: the pepper in the data directory is used (created on first start)`);
  const keyring = loadKeyring(io.env);
  warnings.push(...(await secretWarnings(config, keyring)));
  const path = resolveConfigPath(values.config, io.env);
  io.out(`${path}: OK (${config.routes.length} route${config.routes.length === 1 ? '' : 's'}, store ${config.store.kind})`);
  for (const w of warnings) io.out(`warning: ${w}`);
  return 0;
}

/** What would make a route's secret injection (or webhook verification) fail: no master key, a secret not stored, one under a key not given. */
async function secretWarnings(config: Config, keyring: Keyring | null): Promise<string[]> {
  const answers502 = 'the route answers 502 upstream_unavailable';
  const injecting = config.routes.flatMap((route, i) => (route.secret ? [{ where: `routes[${i}] (${route.name})`, id: route.secret.id, uses: 'injects', effect: answers502 }] : []));
  // With two signing secrets (a rotation), the route still verifies with the other one.
  const verifying = config.routes.flatMap((route, i) =>
    (route.webhook?.secrets ?? []).map((id, _, all) => ({ where: `routes[${i}] (${route.name})`, id, uses: 'verifies webhook signatures with', effect: all.length > 1 ? 'deliveries signed with it get 401 invalid_signature' : answers502 })),
  );
  const routes = [...injecting, ...verifying];
  if (!routes.length) return [];
  const warnings: string[] = [];
  if (keyring === null && injecting.length) warnings.push(`${MASTER_KEY_ENV} is not set: ${injecting.map((r) => r.where).join(', ')} inject an upstream secret and will answer 502 upstream_unavailable`);
  if (keyring === null && verifying.length) warnings.push(`${MASTER_KEY_ENV} is not set: ${[...new Set(verifying.map((r) => r.where))].join(', ')} verify webhook signatures with a stored secret and will answer 502 upstream_unavailable`);
  // Looking must not create anything: a database that does not exist yet holds no secrets.
  let stored: Map<string, string> = new Map();
  if (config.store.kind === 'embedded' && !existsSync(config.store.path)) {
    stored = new Map();
  } else {
    try {
      const store = await openStore(config);
      try {
        stored = new Map((await store.listSecrets()).map((s) => [s.id, s.keyVersion]));
      } finally {
        await store.close();
      }
    } catch (error) {
      warnings.push(`could not check that the routes' secrets are stored: ${(error as Error).message}`);
      return warnings;
    }
  }
  for (const route of routes) {
    const version = stored.get(route.id);
    if (version === undefined) {
      warnings.push(`${route.where} ${route.uses} secret "${route.id}", which is not stored (keygate secrets add --id ${route.id} --name …); ${route.effect}`);
    } else if (keyring !== null && keyFor(keyring, version) === null) {
      warnings.push(`${route.where} ${route.uses} secret "${route.id}", encrypted under master key version ${version}, which is neither ${MASTER_KEY_ENV} nor ${PREVIOUS_MASTER_KEY_ENV}; ${route.effect}`);
    }
  }
  if (keyring?.previous && [...stored.values()].some((v) => v === keyring.previous!.version)) {
    warnings.push(`some secrets are still encrypted under ${PREVIOUS_MASTER_KEY_ENV} (version ${keyring.previous.version}): run keygate secrets rewrap`);
  }
  return warnings;
}

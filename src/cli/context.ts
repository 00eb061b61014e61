/** What every command needs first: the config (from --config / KEYGATE_CONFIG) and the store. */
import type { Config } from '../config/schema.ts';
import { loadConfig, resolveConfigPath } from '../config/load.ts';
import { createKeyHasher } from '../keys/hash.ts';
import { loadPepper } from '../keys/pepper.ts';
import { KeyService } from '../keys/service.ts';
import { UserService } from '../users/service.ts';
import { QuotaService } from '../limits/quota-service.ts';
import { EventSink } from '../events/event-sink.ts';
import { openStore, type Store } from '../store/open.ts';
import { checkPepper } from '../store/pepper-check.ts';
import { loadKeyring } from '../secrets/crypto.ts';

export interface Io {
  out(text: string): void;
  err(text: string): void;
  env: NodeJS.ProcessEnv;
  stdin: NodeJS.ReadableStream;
}

export function configFrom(flag: string | undefined, io: Io): Config {
  return loadConfig(resolveConfigPath(flag, io.env), io.env);
}

/**
 * The CLI audits what it does like the admin API does. It sends no notifications itself:
 * it exits right away, and retrying deliveries is the servers' job.
 */
export async function withKeyService<T>(config: Config, io: Io, run: (service: KeyService, store: Store) => Promise<T>): Promise<T> {
  const pepper = loadPepper(config, io.env);
  // A malformed master key stops every command, as it stops serve (README, environment).
  loadKeyring(io.env);
  const store = await openStore(config);
  try {
    // Another pepper than the store's would mint keys no server accepts: stop here (exit 2).
    await checkPepper(store, pepper);
    return await run(new KeyService(store, createKeyHasher(pepper), config, new EventSink(store, null, null)), store);
  } finally {
    await store.close();
  }
}

/**
 * The same for users and tenant permission groups (users/service.ts): the store's users and
 * groups are read fresh for each command, and a change reaches running servers through the
 * store's feed.
 */
export async function withUserService<T>(config: Config, io: Io, run: (service: UserService) => Promise<T>): Promise<T> {
  loadKeyring(io.env);
  const store = await openStore(config);
  try {
    return await run(new UserService(store, config, new EventSink(store, null, null)));
  } finally {
    await store.close();
  }
}

/** What the limit commands need, over one open store: budgets, and the keys and tenants they belong to. */
export interface LimitServices {
  quotas: QuotaService;
  users: UserService;
  /** Made on first use: only key commands need the pepper. */
  keys(): KeyService;
}

/**
 * Budgets (limits/quota-service.ts: status and top-ups, in limits.quotaTimeZone) with the
 * key and user services whose rules set limits. The store's counters are shared with the
 * running servers (one Redis, or the same SQLite file).
 */
export async function withQuotaService<T>(config: Config, io: Io, run: (services: LimitServices) => Promise<T>): Promise<T> {
  loadKeyring(io.env);
  const store = await openStore(config);
  const events = new EventSink(store, null, null);
  let keys: KeyService | undefined;
  try {
    return await run({
      quotas: new QuotaService(store, config.limits.quotaTimeZone, events),
      users: new UserService(store, config, events),
      keys: () => (keys ??= new KeyService(store, createKeyHasher(loadPepper(config, io.env)), config, events)),
    });
  } finally {
    await store.close();
  }
}

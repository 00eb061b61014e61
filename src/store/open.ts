/** Opens the store the config names. */
import type { Config } from '../config/schema.ts';
import type { Logger } from '../observability/logger.ts';
import { EmbeddedStore } from './embedded/store.ts';
import type { KeyStore } from './key-store.ts';
import type { LifecycleStore } from './lifecycle-store.ts';
import type { SecretStore } from '../secrets/secret-store.ts';
import type { ReplayStore } from './replay-store.ts';
import type { SessionStore } from './session-store.ts';
import type { DirectoryStore } from './directory-store.ts';
import type { LimitStore } from './limit-store.ts';
import type { QuotaStore } from './quota-store.ts';
import type { PepperFingerprintStore } from './pepper-check.ts';
import type { UsageStore } from './usage-store.ts';

export type Store = KeyStore & LifecycleStore & SecretStore & SessionStore & ReplayStore & DirectoryStore & QuotaStore & UsageStore & PepperFingerprintStore & {
  /** Rate limits shared by every instance of the store (Redis); absent: each machine decides (cluster/limits-ipc.ts). */
  readonly limiter?: LimitStore;
};

export interface OpenStoreOptions {
  /**
   * Redis only: when Redis cannot be reached, return a store that keeps reconnecting
   * (`serve` starts degraded) instead of failing with a StoreUnavailableError (the CLI).
   */
  allowUnavailable?: boolean;
  logger?: Logger;
}

export async function openStore(config: Config, options: OpenStoreOptions = {}): Promise<Store> {
  if (config.store.kind === 'redis') {
    const { RedisStore } = await import('./redis/store.ts');
    return RedisStore.connect(config.store.redis, options);
  }
  return new EmbeddedStore({ path: config.store.path, pollMs: config.store.pollMs });
}

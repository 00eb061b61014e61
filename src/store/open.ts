/** Opens the store the config names. */
import type { Config } from '../config/schema.ts';
import { EmbeddedStore } from './embedded.ts';
import type { KeyStore } from './key-store.ts';
import type { LifecycleStore } from './lifecycle-store.ts';

export type Store = KeyStore & LifecycleStore;

export async function openStore(config: Config): Promise<Store> {
  if (config.store.kind === 'redis') {
    const { RedisStore } = await import('./redis.ts');
    // TODO(issue 5): RedisStore implements LifecycleStore — until then admin features fail on Redis.
    return (await RedisStore.connect(config.store.redis)) as unknown as Store;
  }
  return new EmbeddedStore({ path: config.store.path, pollMs: config.store.pollMs });
}

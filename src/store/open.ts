/** Opens the store the config names. */
import type { Config } from '../config/schema.ts';
import { EmbeddedStore } from './embedded.ts';
import type { KeyStore } from './key-store.ts';

export async function openStore(config: Config): Promise<KeyStore> {
  if (config.store.kind === 'redis') {
    const { RedisStore } = await import('./redis.ts');
    return RedisStore.connect(config.store.redis);
  }
  return new EmbeddedStore({ path: config.store.path, pollMs: config.store.pollMs });
}

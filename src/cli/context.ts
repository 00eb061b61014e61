/** What every command needs first: the config (from --config / KEYGATE_CONFIG) and the store. */
import type { Config } from '../config/schema.ts';
import { loadConfig, resolveConfigPath } from '../config/load.ts';
import { createKeyHasher } from '../keys/hash.ts';
import { loadPepper } from '../keys/pepper.ts';
import { KeyService } from '../keys/service.ts';
import type { KeyStore } from '../store/key-store.ts';
import { openStore } from '../store/open.ts';

export interface Io {
  out(text: string): void;
  err(text: string): void;
  env: NodeJS.ProcessEnv;
  stdin: NodeJS.ReadableStream;
}

export function configFrom(flag: string | undefined, io: Io): Config {
  return loadConfig(resolveConfigPath(flag, io.env), io.env);
}

export async function withKeyService<T>(config: Config, io: Io, run: (service: KeyService, store: KeyStore) => Promise<T>): Promise<T> {
  const pepper = loadPepper(config, io.env);
  const store = await openStore(config);
  try {
    return await run(new KeyService(store, createKeyHasher(pepper), config), store);
  } finally {
    await store.close();
  }
}

/**
 * The embedded store: one SQLite file (database.ts) that several processes may open (a
 * running `keygate serve` and the CLI). Each role is a file: keys.ts (KeyStore),
 * lifecycle.ts, secrets.ts, sessions.ts, replay.ts; feed.ts polls what other processes
 * wrote (revocations, rotation changes, secret changes). This class composes them into the
 * one object the rest of keygate uses.
 *
 * SQLite calls are synchronous. An indexed lookup costs microseconds and only happens on a
 * cache miss; multi-instance production deployments use the Redis store.
 */
import { ComposedStore } from '../composed.ts';
import type { StoreFeed } from '../key-store.ts';
import { Database } from './database.ts';
import { EmbeddedFeed } from './feed.ts';
import { EmbeddedKeys } from './keys.ts';
import { EmbeddedDirectory } from './directory.ts';
import { EmbeddedQuotas } from './quotas.ts';
import { EmbeddedUsage } from './usage.ts';
import { EmbeddedLifecycle } from './lifecycle.ts';
import { EmbeddedReplay } from './replay.ts';
import { EmbeddedSecrets } from './secrets.ts';
import { EmbeddedSessions } from './sessions.ts';

export interface EmbeddedStoreOptions {
  path: string;
  /** How often a serving process looks for revocations written by other processes. */
  pollMs?: number;
}

function embeddedParts(options: EmbeddedStoreOptions) {
  const db = new Database(options.path);
  const feed = new EmbeddedFeed(db, options.pollMs ?? 250);
  const keys = new EmbeddedKeys(db, feed);
  return { db, feed, keys, lifecycle: new EmbeddedLifecycle(db, keys, feed), secrets: new EmbeddedSecrets(db, feed), sessions: new EmbeddedSessions(db), replay: new EmbeddedReplay(options.path), directory: new EmbeddedDirectory(db, feed), quotas: new EmbeddedQuotas(db), usage: new EmbeddedUsage(db) };
}

export class EmbeddedStore extends ComposedStore {
  readonly kind = 'embedded' as const;
  readonly feedHealthy = true;
  readonly #parts: ReturnType<typeof embeddedParts>;

  constructor(options: EmbeddedStoreOptions) {
    const parts = embeddedParts(options);
    super(parts);
    this.#parts = parts;
  }

  subscribe(feed: StoreFeed): Promise<void> {
    return this.#parts.feed.subscribe(feed, this.#parts.directory);
  }

  async claimPepperFingerprint(fingerprint: string): Promise<string> {
    return this.#parts.db.claimPepperFingerprint(fingerprint);
  }

  async ping(): Promise<void> {
    this.#parts.feed.ping();
  }

  async close(): Promise<void> {
    this.#parts.feed.close();
    this.#parts.secrets.subscribeSecrets(null);
    this.#parts.replay.close();
    this.#parts.db.close();
  }
}

/**
 * Keeps a subscribed process's users and groups whole: the snapshot is read when the feed
 * first subscribes and again after every resync (changes may have been missed, like
 * revocations); until the first read succeeds (the store unreachable at start) it is retried
 * every second, and identities that need it wait (auth/verify.ts: `auth_unavailable`).
 */
import type { DirectorySnapshot } from './directory-store.ts';
import type { StoreFeed } from './key-store.ts';

export class DirectoryLoader {
  readonly #read: () => Promise<DirectorySnapshot>;
  #feed: StoreFeed | null = null;
  #timer: NodeJS.Timeout | null = null;
  #loading = false;
  #again = false;

  constructor(read: () => Promise<DirectorySnapshot>) {
    this.#read = read;
  }

  /** `feed` with its resync also reloading the directory. */
  wrap(feed: StoreFeed): StoreFeed {
    this.#feed = feed;
    return {
      revoked: (event) => feed.revoked(event),
      changed: (hashes) => feed.changed(hashes),
      directoryChanged: (change) => feed.directoryChanged(change),
      directoryReset: (snapshot) => feed.directoryReset(snapshot),
      resync: () => {
        feed.resync();
        void this.load();
      },
    };
  }

  /** Reads the snapshot and hands it to the feed; retried every second until it succeeds. */
  async load(): Promise<void> {
    if (this.#loading) {
      this.#again = true;
      return;
    }
    this.#loading = true;
    try {
      const snapshot = await this.#read();
      this.#feed?.directoryReset(snapshot);
    } catch {
      if (this.#feed !== null && this.#timer === null) {
        this.#timer = setTimeout(() => {
          this.#timer = null;
          void this.load();
        }, 1000);
        this.#timer.unref();
      }
    } finally {
      this.#loading = false;
      if (this.#again) {
        this.#again = false;
        void this.load();
      }
    }
  }

  close(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    this.#feed = null;
  }
}

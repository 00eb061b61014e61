/**
 * The embedded store's feed: several processes may open the same file (a running
 * `keygate serve` and the CLI), so revocations go into an append-only table that
 * long-running processes poll, and a key revoked from the CLI is refused by the server at
 * once: another process's write to the database's write-ahead log wakes a poll right away
 * (fs.watch on the file's folder, inotify on Linux), and the `pollMs` timer stays as the
 * bound where no file events arrive (network file systems). The process that revoked hears it
 * at once anyway. Records that change while
 * staying active (a rotation's overlap end) are logged in `key_changes`, polled the same
 * way; so are secret changes (secrets.ts), on the same timer.
 */
import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { StatementSync } from 'node:sqlite';
import type { StoreFeed } from '../key-store.ts';
import type { DirectoryChange } from '../../users/records.ts';
import type { Database } from './database.ts';
import type { EmbeddedDirectory } from './directory.ts';

export class EmbeddedFeed {
  readonly #db: Database;
  readonly #pollMs: number;
  readonly #pollers: (() => void)[] = [];
  readonly #q: Record<'revocationsAfter' | 'lastSeq' | 'changesAfter' | 'lastChangeSeq', StatementSync>;
  #feed: StoreFeed | null = null;
  /** Ids this process already reported when it revoked them, so the poll does not report them again. */
  readonly #reported = new Set<string>();
  #lastSeq = 0;
  #lastChangeSeq = 0;
  #timer: NodeJS.Timeout | null = null;
  #watcher: FSWatcher | null = null;
  /** A poll is scheduled by a file event (several events in one turn make one poll). */
  #woken = false;
  #keysPolled = false;
  /** Users and groups (directory.ts), loaded when the feed subscribes and polled with the rest. */
  #directory: EmbeddedDirectory | null = null;

  constructor(db: Database, pollMs: number) {
    this.#db = db;
    this.#pollMs = pollMs;
    this.#q = {
      revocationsAfter: db.db.prepare('SELECT seq, key_id, hash, at FROM revocations WHERE seq > ? ORDER BY seq LIMIT 1000'),
      lastSeq: db.db.prepare('SELECT COALESCE(MAX(seq), 0) AS seq FROM revocations'),
      changesAfter: db.db.prepare('SELECT seq, hash FROM key_changes WHERE seq > ? ORDER BY seq LIMIT 1000'),
      lastChangeSeq: db.db.prepare('SELECT COALESCE(MAX(seq), 0) AS seq FROM key_changes'),
    };
  }

  async subscribe(feed: StoreFeed, directory: EmbeddedDirectory): Promise<void> {
    this.#feed = feed;
    this.#directory = directory;
    this.#lastSeq = (this.#q.lastSeq.get() as { seq: number }).seq;
    this.#lastChangeSeq = (this.#q.lastChangeSeq.get() as { seq: number }).seq;
    // Position first, then the snapshot: a change in between is read twice, harmlessly.
    directory.markPosition();
    feed.directoryReset(await directory.directory());
    if (this.#keysPolled) return;
    this.#keysPolled = true;
    this.startPolling(() => {
      this.#poll();
      this.#pollChanges();
      this.#pollDirectory();
    });
  }

  /** This process changed a user or group: its feed hears it at once (the poll repeats it, harmlessly). */
  directoryChanged(change: DirectoryChange): void {
    this.#feed?.directoryChanged(change);
  }

  #pollDirectory(): void {
    if (!this.#feed || !this.#directory) return;
    for (const change of this.#directory.pollChanges()) this.#feed.directoryChanged(change);
  }

  /** Adds `poll` to what runs every `pollMs` and whenever another process writes (and starts both). */
  startPolling(poll: () => void): void {
    this.#pollers.push(poll);
    if (this.#timer) return;
    this.#timer = setInterval(() => this.#pollAll(), this.#pollMs);
    this.#timer.unref();
    this.#watch();
  }

  #pollAll(): void {
    this.#woken = false;
    for (const p of this.#pollers) p();
  }

  /** Writes reach the `-wal` file (WAL mode); this process's own reads do not, so polls cannot wake themselves. */
  #watch(): void {
    const wal = `${basename(this.#db.path)}-wal`;
    try {
      this.#watcher = watch(dirname(this.#db.path), { persistent: false }, (_event, file) => {
        if (file !== wal || this.#woken) return;
        this.#woken = true;
        setImmediate(() => this.#pollAll());
      });
      // A watcher that fails later (the folder removed) leaves the timer to do the work.
      this.#watcher.on('error', () => this.#unwatch());
    } catch {
      // No file events here: the timer alone bounds the lag.
    }
  }

  #unwatch(): void {
    this.#watcher?.close();
    this.#watcher = null;
  }

  /** This process revoked `ids`: its feed hears it at once, and the poll will not repeat it. */
  revoked(ids: string[], hashes: string[], at: number): void {
    if (!ids.length || !this.#feed) return;
    for (const id of ids) this.#reported.add(id);
    this.#feed.revoked({ ids, hashes, at });
  }

  changed(hashes: string[]): void {
    this.#feed?.changed(hashes);
  }

  #poll(): void {
    if (!this.#feed) return;
    const rows = this.#q.revocationsAfter.all(this.#lastSeq) as { seq: number; key_id: string; hash: string; at: number }[];
    if (!rows.length || !this.#feed) return;
    this.#lastSeq = rows[rows.length - 1]!.seq;
    const fresh = rows.filter((r) => !this.#reported.delete(r.key_id));
    if (fresh.length) this.#feed.revoked({ ids: fresh.map((r) => r.key_id), hashes: fresh.map((r) => r.hash), at: Math.min(...fresh.map((r) => r.at)) });
  }

  /** Changes by any process, this one's included (dropping a cache entry twice is harmless). */
  #pollChanges(): void {
    if (!this.#feed) return;
    const rows = this.#q.changesAfter.all(this.#lastChangeSeq) as { seq: number; hash: string }[];
    if (!rows.length) return;
    this.#lastChangeSeq = rows[rows.length - 1]!.seq;
    this.#feed.changed(rows.map((r) => r.hash));
  }

  /** Answers when the file can be read. */
  ping(): void {
    this.#q.lastSeq.get();
  }

  close(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#unwatch();
    this.#feed = null;
  }
}

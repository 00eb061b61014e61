/** ReplayStore on SQLite: a table of claims with their expiry, on a connection of its own. */
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import type { ReplayStore } from '../replay-store.ts';

export class EmbeddedReplay implements ReplayStore {
  readonly #path: string;
  #claims: DatabaseSync | null = null;
  #claim: StatementSync | null = null;
  #release: StatementSync | null = null;
  #prunedAt = 0;

  /** `path`: the store's file (its tables exist: database.ts). */
  constructor(path: string) {
    this.#path = path;
  }

  /**
   * One statement: a new id, or one whose claim has expired, is (re)claimed; a live claim is
   * left alone. On a second connection with synchronous=NORMAL: in WAL mode a commit is then
   * atomic and survives a crash of the process, but not of the machine, and costs no fsync
   * (~2 ms of blocked event loop per webhook delivery with FULL). Losing the last claims to a
   * power cut reopens a replay window of at most the tolerance; keys stay under FULL.
   */
  async claimOnce(id: string, ttlMs: number): Promise<boolean> {
    const now = Date.now();
    const claimed = this.#statements().claim.run(id, now + ttlMs, now).changes === 1;
    // Expired claims are dropped at most once a minute, by whichever process claims next.
    if (now - this.#prunedAt > 60_000) {
      this.#prunedAt = now;
      this.#claims!.prepare('DELETE FROM replay_claims WHERE expires_at <= ?').run(now);
    }
    return claimed;
  }

  async releaseClaim(id: string): Promise<void> {
    this.#statements().release.run(id);
  }

  /** The claims connection and its statements, opened on first use. */
  #statements(): { claim: StatementSync; release: StatementSync } {
    if (this.#claim === null || this.#release === null) {
      const db = (this.#claims = new DatabaseSync(this.#path));
      db.exec('PRAGMA busy_timeout = 5000; PRAGMA synchronous = NORMAL;');
      this.#claim = db.prepare('INSERT INTO replay_claims (id, expires_at) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at WHERE replay_claims.expires_at <= ?');
      this.#release = db.prepare('DELETE FROM replay_claims WHERE id = ?');
    }
    return { claim: this.#claim, release: this.#release };
  }

  close(): void {
    if (this.#claims?.isOpen) this.#claims.close();
  }
}

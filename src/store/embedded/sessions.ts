/** SessionStore on SQLite: signed-out console sessions, dropped once they would have ended anyway. */
import type { SessionStore } from '../session-store.ts';
import type { Database } from './database.ts';

export class EmbeddedSessions implements SessionStore {
  readonly #db: Database;

  constructor(db: Database) {
    this.#db = db;
  }

  async endSession(id: string, until: number): Promise<void> {
    this.#db.transaction(() => {
      this.#db.db.prepare('DELETE FROM ended_sessions WHERE until < ?').run(Date.now());
      this.#db.db.prepare('INSERT INTO ended_sessions (id, until) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET until = MAX(until, excluded.until)').run(id, until);
    });
  }

  async isSessionEnded(id: string): Promise<boolean> {
    return this.#db.db.prepare('SELECT 1 FROM ended_sessions WHERE id = ?').get(id) !== undefined;
  }
}

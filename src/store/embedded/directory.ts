/**
 * DirectoryStore on the embedded store: users and tenant groups are rows of `directory`
 * (value JSON); each write also appends to `directory_changes`, which serving processes poll
 * like revocations (feed.ts), so a change made by the CLI reaches a running server at once.
 * The writing process applies its own change immediately.
 */
import type { StatementSync } from 'node:sqlite';
import type { DirectorySnapshot, DirectoryStore, DirectoryWrite } from '../directory-store.ts';
import { decodeEntry, directoryChange, DIRECTORY_KINDS, type DirectoryChange, type DirectoryKind, type GroupRecord, type TenantRecord, type UserRecord } from '../../users/records.ts';
import type { Database } from './database.ts';
import type { EmbeddedFeed } from './feed.ts';

type Row = { tenant: string; kind: string; name: string; value: string };

export class EmbeddedDirectory implements DirectoryStore {
  readonly #db: Database;
  readonly #feed: EmbeddedFeed;
  readonly #q: Record<'all' | 'ofTenant' | 'one' | 'insert' | 'update' | 'remove' | 'logChange' | 'changesAfter' | 'lastChange', StatementSync>;
  #lastChange = 0;

  constructor(db: Database, feed: EmbeddedFeed) {
    this.#db = db;
    this.#feed = feed;
    this.#q = {
      all: db.db.prepare('SELECT tenant, kind, name, value FROM directory'),
      ofTenant: db.db.prepare('SELECT tenant, kind, name, value FROM directory WHERE tenant = ?'),
      one: db.db.prepare('SELECT value FROM directory WHERE tenant = ? AND kind = ? AND name = ?'),
      insert: db.db.prepare('INSERT OR IGNORE INTO directory (tenant, kind, name, value) VALUES (?, ?, ?, ?)'),
      update: db.db.prepare('UPDATE directory SET value = ? WHERE tenant = ? AND kind = ? AND name = ?'),
      remove: db.db.prepare('DELETE FROM directory WHERE tenant = ? AND kind = ? AND name = ?'),
      logChange: db.db.prepare('INSERT INTO directory_changes (tenant, kind, name) VALUES (?, ?, ?)'),
      changesAfter: db.db.prepare('SELECT seq, tenant, kind, name FROM directory_changes WHERE seq > ? ORDER BY seq LIMIT 1000'),
      lastChange: db.db.prepare('SELECT COALESCE(MAX(seq), 0) AS seq FROM directory_changes'),
    };
  }

  async directory(tenant?: string): Promise<DirectorySnapshot> {
    const rows = (tenant === undefined ? this.#q.all.all() : this.#q.ofTenant.all(tenant)) as Row[];
    const snapshot: Required<DirectorySnapshot> = { users: [], groups: [], tenants: [] };
    for (const row of rows) {
      if (!DIRECTORY_KINDS.includes(row.kind as DirectoryKind)) continue;
      // Unreadable values are left out: the user's keys are refused, the group grants nothing.
      const value = decodeEntry(row.kind as DirectoryKind, row.value);
      if (value === null) continue;
      if (row.kind === 'user') snapshot.users.push(value as UserRecord);
      else if (row.kind === 'group') snapshot.groups.push(value as GroupRecord);
      else snapshot.tenants.push(value as TenantRecord);
    }
    return snapshot;
  }

  async writeDirectory(write: DirectoryWrite): Promise<DirectoryChange | null> {
    const tenant = write.mode === 'delete' ? write.tenant : write.value.tenant;
    const name = write.mode === 'delete' ? write.name : write.value.name;
    const text = write.mode === 'delete' ? null : JSON.stringify(write.value);
    const written = this.#db.transaction(() => {
      const changes =
        write.mode === 'create'
          ? this.#q.insert.run(tenant, write.kind, name, text).changes
          : write.mode === 'update'
            ? this.#q.update.run(text, tenant, write.kind, name).changes
            : this.#q.remove.run(tenant, write.kind, name).changes;
      if (Number(changes) !== 1) return false;
      this.#q.logChange.run(tenant, write.kind, name);
      return true;
    });
    if (!written) return null;
    const change = { tenant, kind: write.kind, name, value: write.mode === 'delete' ? null : write.value } as DirectoryChange;
    this.#feed.directoryChanged(change);
    return change;
  }

  /** From now on, changes after the current end of the log are polled (feed.ts calls it when it subscribes). */
  markPosition(): void {
    this.#lastChange = (this.#q.lastChange.get() as { seq: number }).seq;
  }

  /** Changes written since the last poll (by any process: applying one twice is harmless), as they are now. */
  pollChanges(): DirectoryChange[] {
    const rows = this.#q.changesAfter.all(this.#lastChange) as { seq: number; tenant: string; kind: string; name: string }[];
    if (rows.length === 0) return [];
    this.#lastChange = rows[rows.length - 1]!.seq;
    const out: DirectoryChange[] = [];
    for (const row of rows) {
      const current = this.#q.one.get(row.tenant, row.kind, row.name) as { value: string } | undefined;
      const change = directoryChange(row.tenant, row.kind, row.name, current?.value ?? null);
      if (change !== null) out.push(change);
    }
    return out;
  }
}

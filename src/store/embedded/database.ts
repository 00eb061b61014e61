/**
 * The embedded store's file: one SQLite file (node:sqlite) in WAL mode with
 * synchronous=FULL, so an acknowledged write survives a crash; its tables, the migration of
 * files written by older versions, and the write transaction every multi-row change uses.
 */
import { chmodSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { KEY_COLUMNS_SQL, KEY_COLUMNS } from './record-rows.ts';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS keys (
  ${KEY_COLUMNS_SQL}
) STRICT;
CREATE INDEX IF NOT EXISTS keys_tenant ON keys (tenant, created_at);
CREATE INDEX IF NOT EXISTS keys_expiry ON keys (expires_at) WHERE status = 'active' AND expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS audit (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  at INTEGER NOT NULL,
  actor TEXT,
  action TEXT NOT NULL,
  tenant TEXT,
  target TEXT,
  detail TEXT NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS audit_tenant ON audit (tenant, seq);
CREATE TABLE IF NOT EXISTS scheduled_revocations (key_id TEXT PRIMARY KEY, at INTEGER NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS reminders (key_id TEXT NOT NULL, stage TEXT NOT NULL, PRIMARY KEY (key_id, stage)) STRICT;
CREATE TABLE IF NOT EXISTS revocations (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  key_id TEXT NOT NULL,
  hash TEXT NOT NULL,
  at INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS key_changes (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  hash TEXT NOT NULL,
  at INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS secrets (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  last_used_at INTEGER,
  key_version TEXT NOT NULL,
  envelope TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS secret_changes (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  secret_id TEXT NOT NULL,
  at INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS directory (
  tenant TEXT NOT NULL,
  kind TEXT NOT NULL,
  name TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (tenant, kind, name)
) STRICT;
CREATE TABLE IF NOT EXISTS directory_changes (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  tenant TEXT NOT NULL,
  kind TEXT NOT NULL,
  name TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS quota_counters (
  id TEXT PRIMARY KEY,
  used INTEGER NOT NULL,
  remaining INTEGER,
  period TEXT,
  expires_at INTEGER
) STRICT;
CREATE TABLE IF NOT EXISTS usage_counters (
  scope TEXT NOT NULL,
  id TEXT NOT NULL,
  day TEXT NOT NULL,
  field TEXT NOT NULL,
  n INTEGER NOT NULL,
  PRIMARY KEY (scope, id, day, field)
) STRICT, WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS usage_counters_day ON usage_counters (day);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS ended_sessions (id TEXT PRIMARY KEY, until INTEGER NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS replay_claims (id TEXT PRIMARY KEY, expires_at INTEGER NOT NULL) STRICT;
CREATE INDEX IF NOT EXISTS replay_claims_expiry ON replay_claims (expires_at);
`;

export class Database {
  readonly db: DatabaseSync;
  readonly path: string;

  constructor(path: string) {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    this.db = new DatabaseSync(path);
    this.path = path;
    // Hashes are not keys, but nobody else on the machine needs to read them. SQLite gives
    // its -wal and -shm files the database file's mode.
    chmodSync(path, 0o600);
    // busy_timeout first: several processes (workers, the CLI) may open the file at once.
    this.db.exec('PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;');
    this.db.exec(SCHEMA);
    this.#migrate();
  }

  /**
   * Files written by older versions get the record's newer columns: `revokes_at` filled from
   * the rotations already scheduled, any other with the value an absent field reads as
   * (keys/record.ts: `permissions_from` 'key', `environment` 'live'). Inside a write
   * transaction: processes opening an old file at the same moment add each once.
   */
  #migrate(): void {
    const missing = () => {
      const have = new Set((this.db.prepare('SELECT name FROM pragma_table_info(?)').all('keys') as { name: string }[]).map((c) => c.name));
      return KEY_COLUMNS.filter((c) => !have.has(c.column));
    };
    if (missing().length === 0) return;
    this.transaction(() => {
      for (const { column, definition, absent } of missing()) {
        const fill = absent === null ? '' : ` DEFAULT ${typeof absent === 'number' ? absent : `'${String(absent).replaceAll("'", "''")}'`}`;
        this.db.exec(`ALTER TABLE keys ADD COLUMN ${definition}${fill}`);
        if (column === 'revokes_at') this.db.exec("UPDATE keys SET revokes_at = (SELECT at FROM scheduled_revocations WHERE key_id = keys.id) WHERE status = 'active'");
      }
    });
  }

  /**
   * One write transaction: BEGIN IMMEDIATE takes the file's write lock, so `work` is atomic
   * across processes too.
   */
  transaction<T>(work: () => T): T {
    this.db.exec('BEGIN IMMEDIATE');
    try {
      const result = work();
      this.db.exec('COMMIT');
      return result;
    } catch (error) {
      this.db.exec('ROLLBACK');
      throw error;
    }
  }

  /** `work`, with a UNIQUE violation turned into `duplicate()`'s error. */
  unique<T>(work: () => T, duplicate: () => Error): T {
    try {
      return work();
    } catch (error) {
      if (String((error as Error).message).includes('UNIQUE')) throw duplicate();
      throw error;
    }
  }

  /** Sets last_used_at where the given time is newer, in one transaction (keys and secrets alike). */
  touchLastUsed(table: 'keys' | 'secrets', lastUsed: ReadonlyMap<string, number>): void {
    if (lastUsed.size === 0) return;
    const update = this.db.prepare(`UPDATE ${table} SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)`);
    this.transaction(() => {
      for (const [id, at] of lastUsed) update.run(at, id, at);
    });
  }

  /** Records the pepper's fingerprint if none is; answers the one recorded (store/pepper-check.ts). */
  claimPepperFingerprint(fingerprint: string): string {
    this.db.prepare("INSERT OR IGNORE INTO meta (name, value) VALUES ('pepperFingerprint', ?)").run(fingerprint);
    return (this.db.prepare("SELECT value FROM meta WHERE name = 'pepperFingerprint'").get() as { value: string }).value;
  }

  /** `WHERE a AND b …` of the conditions, or nothing. */
  static where(conditions: string[]): string {
    return conditions.length ? `WHERE ${conditions.join(' AND ')}` : '';
  }

  close(): void {
    if (this.db.isOpen) this.db.close();
  }
}

/**
 * The embedded store: one SQLite file (node:sqlite) in WAL mode with synchronous=FULL,
 * so an acknowledged write survives a crash. Several processes may open the same file
 * (a running `keygate serve` and the CLI): revocations go into an append-only table that
 * long-running processes poll, so a key revoked from the CLI is refused by the server
 * within `pollMs` (and at once by the process that revoked it). Records that change while
 * staying active (a rotation's overlap end) are logged in `key_changes`, polled the same way.
 *
 * Upstream secrets (encrypted envelopes only) live in `secrets`; every change to one is
 * also written to `secret_changes`, which servers poll the same way, so a secret removed
 * from the CLI stops being injected within `pollMs`.
 *
 * SQLite calls are synchronous. An indexed lookup costs microseconds and only happens on a
 * cache miss; multi-instance production deployments use the Redis store.
 */
import { chmodSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import type { KeyRecord, Role, KeyStatus } from '../keys/record.ts';
import { DuplicateKeyError, type KeyQuery, type KeyStore, type StoreFeed } from './key-store.ts';
import type { AuditAction, AuditEntry, AuditPage, AuditQuery, LifecycleStore, ReminderStage } from './lifecycle-store.ts';
import { envelopeText, parseEnvelope, type Envelope } from '../secrets/crypto.ts';
import { DuplicateSecretError, type SecretFeed, type SecretMeta, type SecretStore, type StoredSecret } from '../secrets/secret-store.ts';
import type { SessionStore } from './session-store.ts';
import type { ReplayStore } from './replay-store.ts';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS keys (
  id TEXT PRIMARY KEY,
  hash TEXT NOT NULL UNIQUE,
  tenant TEXT NOT NULL,
  name TEXT NOT NULL,
  role TEXT NOT NULL,
  permissions TEXT NOT NULL,
  grp TEXT,
  user_name TEXT,
  client TEXT,
  status TEXT NOT NULL,
  prefix TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  expires_at INTEGER,
  revoked_at INTEGER,
  last_used_at INTEGER,
  revokes_at INTEGER
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
CREATE TABLE IF NOT EXISTS ended_sessions (id TEXT PRIMARY KEY, until INTEGER NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS replay_claims (id TEXT PRIMARY KEY, expires_at INTEGER NOT NULL) STRICT;
CREATE INDEX IF NOT EXISTS replay_claims_expiry ON replay_claims (expires_at);
`;

interface SecretRow {
  id: string;
  name: string;
  created_at: number;
  last_used_at: number | null;
  key_version: string;
  envelope: string;
}

function secretMeta(row: Omit<SecretRow, 'envelope'>): SecretMeta {
  return { id: row.id, name: row.name, createdAt: row.created_at, lastUsedAt: row.last_used_at, keyVersion: row.key_version };
}

interface Row {
  id: string;
  hash: string;
  tenant: string;
  name: string;
  role: string;
  permissions: string;
  grp: string | null;
  user_name: string | null;
  client: string | null;
  status: string;
  prefix: string;
  created_at: number;
  expires_at: number | null;
  revoked_at: number | null;
  last_used_at: number | null;
  revokes_at: number | null;
}

function fromRow(row: Row): KeyRecord {
  return {
    id: row.id,
    tenant: row.tenant,
    name: row.name,
    role: row.role as Role,
    permissions: JSON.parse(row.permissions) as string[],
    group: row.grp,
    user: row.user_name,
    client: row.client,
    status: row.status as KeyStatus,
    prefix: row.prefix,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    revokedAt: row.revoked_at,
    revokesAt: row.revokes_at,
    lastUsedAt: row.last_used_at,
  };
}

export interface EmbeddedStoreOptions {
  path: string;
  /** How often a serving process looks for revocations written by other processes. */
  pollMs?: number;
}

export class EmbeddedStore implements KeyStore, LifecycleStore, SecretStore, SessionStore, ReplayStore {
  readonly kind = 'embedded' as const;
  readonly feedHealthy = true;
  readonly #db: DatabaseSync;
  readonly #pollMs: number;
  readonly #q: Record<'byHash' | 'byId' | 'insert' | 'revoke' | 'logRevocation' | 'activeOfTenant' | 'revocationsAfter' | 'lastSeq' | 'changesAfter' | 'lastChangeSeq', StatementSync>;
  #feed: StoreFeed | null = null;
  /** Ids this process already reported when it revoked them, so the poll does not report them again. */
  readonly #reported = new Set<string>();
  #lastSeq = 0;
  #lastChangeSeq = 0;
  #secretFeed: SecretFeed | null = null;
  #secretChangesAfter: StatementSync | null = null;
  #lastSecretSeq = 0;
  #timer: NodeJS.Timeout | null = null;
  readonly #path: string;
  /** Replay claims, on their own connection (claimOnce). */
  #claims: DatabaseSync | null = null;
  #claim: StatementSync | null = null;
  #claimsPrunedAt = 0;

  constructor(options: EmbeddedStoreOptions) {
    mkdirSync(dirname(options.path), { recursive: true, mode: 0o700 });
    this.#db = new DatabaseSync(options.path);
    this.#path = options.path;
    // Hashes are not keys, but nobody else on the machine needs to read them. SQLite gives
    // its -wal and -shm files the database file's mode.
    chmodSync(options.path, 0o600);
    this.#pollMs = options.pollMs ?? 250;
    // busy_timeout first: several processes (workers, the CLI) may open the file at once.
    this.#db.exec('PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;');
    this.#db.exec(SCHEMA);
    this.#migrate();
    this.#q = {
      byHash: this.#db.prepare('SELECT * FROM keys WHERE hash = ?'),
      byId: this.#db.prepare('SELECT * FROM keys WHERE id = ?'),
      insert: this.#db.prepare(
        `INSERT INTO keys (id, hash, tenant, name, role, permissions, grp, user_name, client, status, prefix, created_at, expires_at, revoked_at, last_used_at, revokes_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      revoke: this.#db.prepare("UPDATE keys SET status = 'revoked', revoked_at = ? WHERE id = ? AND status = 'active' RETURNING hash"),
      logRevocation: this.#db.prepare('INSERT INTO revocations (key_id, hash, at) VALUES (?, ?, ?)'),
      activeOfTenant: this.#db.prepare("SELECT id FROM keys WHERE tenant = ? AND status = 'active'"),
      revocationsAfter: this.#db.prepare('SELECT seq, key_id, hash, at FROM revocations WHERE seq > ? ORDER BY seq LIMIT 1000'),
      lastSeq: this.#db.prepare('SELECT COALESCE(MAX(seq), 0) AS seq FROM revocations'),
      changesAfter: this.#db.prepare('SELECT seq, hash FROM key_changes WHERE seq > ? ORDER BY seq LIMIT 1000'),
      lastChangeSeq: this.#db.prepare('SELECT COALESCE(MAX(seq), 0) AS seq FROM key_changes'),
    };
  }

  /**
   * Files written before `revokes_at` existed get the column, filled from the rotations
   * already scheduled. Inside a write transaction: processes opening an old file at the
   * same moment add it once.
   */
  #migrate(): void {
    const hasColumn = () => (this.#db.prepare('SELECT name FROM pragma_table_info(?)').all('keys') as { name: string }[]).some((c) => c.name === 'revokes_at');
    if (hasColumn()) return;
    this.#transaction(() => {
      if (hasColumn()) return;
      this.#db.exec('ALTER TABLE keys ADD COLUMN revokes_at INTEGER');
      this.#db.exec("UPDATE keys SET revokes_at = (SELECT at FROM scheduled_revocations WHERE key_id = keys.id) WHERE status = 'active'");
    });
  }

  async findByHash(hash: string): Promise<KeyRecord | null> {
    const row = this.#q.byHash.get(hash) as Row | undefined;
    return row ? fromRow(row) : null;
  }

  async get(id: string): Promise<KeyRecord | null> {
    const row = this.#q.byId.get(id) as Row | undefined;
    return row ? fromRow(row) : null;
  }

  async create(r: KeyRecord, hash: string): Promise<void> {
    try {
      this.#q.insert.run(
        r.id, hash, r.tenant, r.name, r.role, JSON.stringify(r.permissions), r.group, r.user, r.client,
        r.status, r.prefix, r.createdAt, r.expiresAt, r.revokedAt, r.lastUsedAt, r.revokesAt,
      );
    } catch (error) {
      if (String((error as Error).message).includes('UNIQUE')) throw new DuplicateKeyError('a key with this id or hash exists');
      throw error;
    }
  }

  async list(query: KeyQuery): Promise<KeyRecord[]> {
    const where: string[] = [];
    const params: string[] = [];
    if (query.tenant !== undefined) {
      where.push('tenant = ?');
      params.push(query.tenant);
    }
    if (!query.includeRevoked) where.push("status = 'active'");
    const sql = `SELECT * FROM keys ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY created_at DESC, id`;
    return (this.#db.prepare(sql).all(...params) as unknown as Row[]).map(fromRow);
  }

  async revoke(id: string, at: number): Promise<KeyRecord | null> {
    this.#revokeIds(() => [id], at);
    return this.get(id);
  }

  async revokeTenant(tenant: string, at: number): Promise<string[]> {
    return this.#revokeIds(() => (this.#q.activeOfTenant.all(tenant) as { id: string }[]).map((row) => row.id), at);
  }

  /**
   * One write transaction (BEGIN IMMEDIATE takes the file's write lock, so this is atomic
   * across processes too): the ids are chosen, their status changed and the revocation log
   * written together or not at all.
   */
  #revokeIds(choose: () => string[], at: number): string[] {
    const revoked: string[] = [];
    const hashes: string[] = [];
    this.#transaction(() => {
      for (const id of choose()) {
        const row = this.#q.revoke.get(at, id) as { hash: string } | undefined;
        if (!row) continue;
        this.#q.logRevocation.run(id, row.hash, at);
        revoked.push(id);
        hashes.push(row.hash);
      }
    });
    if (revoked.length && this.#feed) {
      for (const id of revoked) this.#reported.add(id);
      this.#feed.revoked({ ids: revoked, hashes, at });
    }
    return revoked;
  }

  #transaction<T>(work: () => T): T {
    this.#db.exec('BEGIN IMMEDIATE');
    try {
      const result = work();
      this.#db.exec('COMMIT');
      return result;
    } catch (error) {
      this.#db.exec('ROLLBACK');
      throw error;
    }
  }

  async rename(id: string, name: string): Promise<KeyRecord | null> {
    this.#db.prepare('UPDATE keys SET name = ? WHERE id = ?').run(name, id);
    return this.get(id);
  }

  async touch(lastUsed: ReadonlyMap<string, number>): Promise<void> {
    if (lastUsed.size === 0) return;
    const update = this.#db.prepare('UPDATE keys SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)');
    this.#transaction(() => {
      for (const [id, at] of lastUsed) update.run(at, id, at);
    });
  }

  async appendAudit(entry: AuditEntry): Promise<void> {
    this.#db
      .prepare('INSERT INTO audit (id, at, actor, action, tenant, target, detail) VALUES (?, ?, ?, ?, ?, ?, ?)')
      .run(entry.id, entry.at, entry.actor, entry.action, entry.tenant, entry.target, JSON.stringify(entry.detail));
  }

  async listAudit(query: AuditQuery): Promise<AuditPage> {
    const where: string[] = [];
    const params: (string | number)[] = [];
    if (query.tenant !== undefined) {
      where.push('tenant = ?');
      params.push(query.tenant);
    }
    if (query.before !== undefined && /^\d+$/.test(query.before)) {
      where.push('seq < ?');
      params.push(Number(query.before));
    }
    const rows = this.#db
      .prepare(`SELECT * FROM audit ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY seq DESC LIMIT ?`)
      .all(...params, query.limit + 1) as { seq: number; id: string; at: number; actor: string | null; action: string; tenant: string | null; target: string | null; detail: string }[];
    const page = rows.slice(0, query.limit);
    return {
      entries: page.map((r) => ({ id: r.id, at: r.at, actor: r.actor, action: r.action as AuditAction, tenant: r.tenant, target: r.target, detail: JSON.parse(r.detail) as AuditEntry['detail'] })),
      next: rows.length > query.limit ? String(page[page.length - 1]!.seq) : null,
    };
  }

  async scheduleRevocation(id: string, at: number): Promise<KeyRecord | null> {
    const hash = this.#transaction(() => {
      const row = this.#db
        .prepare("UPDATE keys SET revokes_at = MIN(COALESCE(revokes_at, ?), ?) WHERE id = ? AND status = 'active' RETURNING hash, revokes_at")
        .get(at, at, id) as { hash: string; revokes_at: number } | undefined;
      if (!row) return null;
      this.#db.prepare('INSERT INTO scheduled_revocations (key_id, at) VALUES (?, ?) ON CONFLICT (key_id) DO UPDATE SET at = MIN(at, excluded.at)').run(id, row.revokes_at);
      this.#db.prepare('INSERT INTO key_changes (hash, at) VALUES (?, ?)').run(row.hash, Date.now());
      return row.hash;
    });
    if (hash !== null) this.#feed?.changed([hash]);
    return this.get(id);
  }

  async revokeDue(now: number): Promise<string[]> {
    return this.#revokeIds(() => {
      const due = (this.#db.prepare('DELETE FROM scheduled_revocations WHERE at <= ? RETURNING key_id').all(now) as { key_id: string }[]).map((r) => r.key_id);
      return due;
    }, now);
  }

  async listExpiring(from: number, until: number): Promise<KeyRecord[]> {
    return (
      this.#db.prepare("SELECT * FROM keys WHERE status = 'active' AND expires_at IS NOT NULL AND expires_at BETWEEN ? AND ? ORDER BY expires_at").all(from, until) as unknown as Row[]
    ).map(fromRow);
  }

  async claimReminder(id: string, stage: ReminderStage): Promise<boolean> {
    return this.#db.prepare('INSERT OR IGNORE INTO reminders (key_id, stage) VALUES (?, ?)').run(id, stage).changes === 1;
  }

  async subscribe(feed: StoreFeed): Promise<void> {
    this.#feed = feed;
    this.#lastSeq = (this.#q.lastSeq.get() as { seq: number }).seq;
    this.#lastChangeSeq = (this.#q.lastChangeSeq.get() as { seq: number }).seq;
    this.#startPolling();
  }

  #startPolling(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => {
      this.#poll();
      this.#pollChanges();
      this.#pollSecrets();
    }, this.#pollMs);
    this.#timer.unref();
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

  async ping(): Promise<void> {
    this.#q.lastSeq.get();
  }

  // ---- SecretStore ----------------------------------------------------------------------

  /** Logs the change for other processes and tells this process's feed at once. */
  #secretsChanged(ids: string[], at: number): void {
    const log = this.#db.prepare('INSERT INTO secret_changes (secret_id, at) VALUES (?, ?)');
    for (const id of ids) log.run(id, at);
  }

  #announce(ids: string[]): void {
    this.#secretFeed?.secretsChanged(ids);
  }

  async addSecret(secret: StoredSecret): Promise<void> {
    try {
      this.#transaction(() => {
        this.#db
          .prepare('INSERT INTO secrets (id, name, created_at, last_used_at, key_version, envelope) VALUES (?, ?, ?, ?, ?, ?)')
          .run(secret.id, secret.name, secret.createdAt, secret.lastUsedAt, secret.envelope.v, envelopeText(secret.envelope));
        this.#secretsChanged([secret.id], secret.createdAt);
      });
    } catch (error) {
      if (String((error as Error).message).includes('UNIQUE')) throw new DuplicateSecretError(`a secret with id "${secret.id}" exists`);
      throw error;
    }
    this.#announce([secret.id]);
  }

  async listSecrets(): Promise<SecretMeta[]> {
    const rows = this.#db.prepare('SELECT id, name, created_at, last_used_at, key_version FROM secrets ORDER BY created_at DESC, id').all() as unknown as Omit<SecretRow, 'envelope'>[];
    return rows.map(secretMeta);
  }

  async getSecret(id: string): Promise<StoredSecret | null> {
    const row = this.#db.prepare('SELECT * FROM secrets WHERE id = ?').get(id) as SecretRow | undefined;
    if (!row) return null;
    const envelope = parseEnvelope(row.envelope);
    // An unreadable envelope is kept as one that can never decrypt: refused, not skipped.
    return { ...secretMeta(row), envelope: envelope ?? { v: row.key_version, nonce: '', ct: '', tag: '' } };
  }

  async renameSecret(id: string, name: string): Promise<SecretMeta | null> {
    let row: Omit<SecretRow, 'envelope'> | undefined;
    this.#transaction(() => {
      row = this.#db.prepare('UPDATE secrets SET name = ? WHERE id = ? RETURNING id, name, created_at, last_used_at, key_version').get(name, id) as typeof row;
      if (row) this.#secretsChanged([id], Date.now());
    });
    if (!row) return null;
    this.#announce([id]);
    return secretMeta(row);
  }

  async moveSecret(from: string, to: string, name: string, envelope: Envelope): Promise<SecretMeta | null> {
    let row: Omit<SecretRow, 'envelope'> | undefined;
    try {
      this.#transaction(() => {
        const old = this.#db.prepare('DELETE FROM secrets WHERE id = ? RETURNING created_at, last_used_at').get(from) as { created_at: number; last_used_at: number | null } | undefined;
        if (!old) return;
        row = this.#db
          .prepare('INSERT INTO secrets (id, name, created_at, last_used_at, key_version, envelope) VALUES (?, ?, ?, ?, ?, ?) RETURNING id, name, created_at, last_used_at, key_version')
          .get(to, name, old.created_at, old.last_used_at, envelope.v, envelopeText(envelope)) as typeof row;
        this.#secretsChanged([from, to], Date.now());
      });
    } catch (error) {
      if (String((error as Error).message).includes('UNIQUE')) throw new DuplicateSecretError(`a secret with id "${to}" exists`);
      throw error;
    }
    if (!row) return null;
    this.#announce([from, to]);
    return secretMeta(row);
  }

  async replaceEnvelope(id: string, expected: Envelope, next: Envelope): Promise<boolean> {
    let replaced = false;
    this.#transaction(() => {
      const row = this.#db.prepare('SELECT envelope FROM secrets WHERE id = ?').get(id) as { envelope: string } | undefined;
      const current = row ? parseEnvelope(row.envelope) : null;
      if (current === null || current.v !== expected.v || current.nonce !== expected.nonce || current.ct !== expected.ct || current.tag !== expected.tag) return;
      this.#db.prepare('UPDATE secrets SET envelope = ?, key_version = ? WHERE id = ?').run(envelopeText(next), next.v, id);
      replaced = true;
    });
    return replaced;
  }

  async removeSecret(id: string): Promise<SecretMeta | null> {
    let row: Omit<SecretRow, 'envelope'> | undefined;
    this.#transaction(() => {
      row = this.#db.prepare('DELETE FROM secrets WHERE id = ? RETURNING id, name, created_at, last_used_at, key_version').get(id) as typeof row;
      if (row) this.#secretsChanged([id], Date.now());
    });
    if (!row) return null;
    this.#announce([id]);
    return secretMeta(row);
  }

  async touchSecrets(lastUsed: ReadonlyMap<string, number>): Promise<void> {
    if (lastUsed.size === 0) return;
    const update = this.#db.prepare('UPDATE secrets SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)');
    this.#transaction(() => {
      for (const [id, at] of lastUsed) update.run(at, id, at);
    });
  }

  subscribeSecrets(feed: SecretFeed): void {
    this.#secretFeed = feed;
    this.#lastSecretSeq = (this.#db.prepare('SELECT COALESCE(MAX(seq), 0) AS seq FROM secret_changes').get() as { seq: number }).seq;
    this.#secretChangesAfter = this.#db.prepare('SELECT seq, secret_id FROM secret_changes WHERE seq > ? ORDER BY seq LIMIT 1000');
    this.#startPolling();
  }

  /** Changes by any process, this one's included (dropping a cache entry twice is harmless). */
  #pollSecrets(): void {
    if (!this.#secretFeed || !this.#secretChangesAfter) return;
    const rows = this.#secretChangesAfter.all(this.#lastSecretSeq) as { seq: number; secret_id: string }[];
    if (!rows.length) return;
    this.#lastSecretSeq = rows[rows.length - 1]!.seq;
    this.#secretFeed.secretsChanged([...new Set(rows.map((r) => r.secret_id))]);
  }

  // ---- SessionStore (console sign-outs) ---------------------------------------------------

  async endSession(id: string, until: number): Promise<void> {
    this.#transaction(() => {
      this.#db.prepare('DELETE FROM ended_sessions WHERE until < ?').run(Date.now());
      this.#db.prepare('INSERT INTO ended_sessions (id, until) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET until = MAX(until, excluded.until)').run(id, until);
    });
  }

  async isSessionEnded(id: string): Promise<boolean> {
    return this.#db.prepare('SELECT 1 FROM ended_sessions WHERE id = ?').get(id) !== undefined;
  }

  // ---- ReplayStore ----------------------------------------------------------------------

  /**
   * One statement: a new id, or one whose claim has expired, is (re)claimed; a live claim is
   * left alone. On a second connection with synchronous=NORMAL: in WAL mode a commit is then
   * atomic and survives a crash of the process, but not of the machine, and costs no fsync
   * (~2 ms of blocked event loop per webhook delivery with FULL). Losing the last claims to a
   * power cut reopens a replay window of at most the tolerance; keys stay under FULL.
   */
  async claimOnce(id: string, ttlMs: number): Promise<boolean> {
    const now = Date.now();
    if (this.#claim === null) {
      const db = (this.#claims = new DatabaseSync(this.#path));
      db.exec('PRAGMA busy_timeout = 5000; PRAGMA synchronous = NORMAL;');
      this.#claim = db.prepare('INSERT INTO replay_claims (id, expires_at) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at WHERE replay_claims.expires_at <= ?');
    }
    const claimed = this.#claim.run(id, now + ttlMs, now).changes === 1;
    // Expired claims are dropped at most once a minute, by whichever process claims next.
    if (now - this.#claimsPrunedAt > 60_000) {
      this.#claimsPrunedAt = now;
      this.#claims!.prepare('DELETE FROM replay_claims WHERE expires_at <= ?').run(now);
    }
    return claimed;
  }

  async close(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#feed = null;
    this.#secretFeed = null;
    if (this.#claims?.isOpen) this.#claims.close();
    if (this.#db.isOpen) this.#db.close();
  }
}

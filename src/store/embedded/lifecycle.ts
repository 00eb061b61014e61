/**
 * LifecycleStore on SQLite: rename, batched last-used times, the audit log, rotation's
 * scheduled revocations and once-only reminder claims; each change one write transaction
 * (atomic across processes on one file).
 */
import type { KeyRecord } from '../../keys/record.ts';
import type { AuditAction, AuditEntry, AuditPage, AuditQuery, ReminderStage } from '../lifecycle-store.ts';
import { Database } from './database.ts';
import type { EmbeddedFeed } from './feed.ts';
import type { EmbeddedKeys } from './keys.ts';
import { fromRow, type KeyRow } from './record-rows.ts';

export class EmbeddedLifecycle {
  readonly #db: Database;
  readonly #keys: EmbeddedKeys;
  readonly #feed: EmbeddedFeed;

  constructor(db: Database, keys: EmbeddedKeys, feed: EmbeddedFeed) {
    this.#db = db;
    this.#keys = keys;
    this.#feed = feed;
  }

  async rename(id: string, name: string): Promise<KeyRecord | null> {
    this.#db.db.prepare('UPDATE keys SET name = ? WHERE id = ?').run(name, id);
    return this.#keys.get(id);
  }

  setRateLimits(id: string, rateLimits: readonly string[]): Promise<KeyRecord | null> {
    return this.#setColumn(id, 'rate_limits', JSON.stringify(rateLimits));
  }

  setQuota(id: string, quota: string | null): Promise<KeyRecord | null> {
    return this.#setColumn(id, 'quota', quota);
  }

  /** One column of a key that stays active, told to every process as a record change. */
  async #setColumn(id: string, column: 'rate_limits' | 'quota', value: string | null): Promise<KeyRecord | null> {
    const db = this.#db.db;
    const hash = this.#db.transaction(() => {
      const row = db.prepare(`UPDATE keys SET ${column} = ? WHERE id = ? RETURNING hash`).get(value, id) as { hash: string } | undefined;
      if (!row) return null;
      db.prepare('INSERT INTO key_changes (hash, at) VALUES (?, ?)').run(row.hash, Date.now());
      return row.hash;
    });
    if (hash !== null) this.#feed.changed([hash]);
    return this.#keys.get(id);
  }

  async touch(lastUsed: ReadonlyMap<string, number>): Promise<void> {
    this.#db.touchLastUsed('keys', lastUsed);
  }

  async appendAudit(entry: AuditEntry): Promise<void> {
    this.#db.db
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
    const rows = this.#db.db
      .prepare(`SELECT * FROM audit ${Database.where(where)} ORDER BY seq DESC LIMIT ?`)
      .all(...params, query.limit + 1) as { seq: number; id: string; at: number; actor: string | null; action: string; tenant: string | null; target: string | null; detail: string }[];
    const page = rows.slice(0, query.limit);
    return {
      entries: page.map((r) => ({ id: r.id, at: r.at, actor: r.actor, action: r.action as AuditAction, tenant: r.tenant, target: r.target, detail: JSON.parse(r.detail) as AuditEntry['detail'] })),
      next: rows.length > query.limit ? String(page[page.length - 1]!.seq) : null,
    };
  }

  async scheduleRevocation(id: string, at: number): Promise<KeyRecord | null> {
    const db = this.#db.db;
    const hash = this.#db.transaction(() => {
      const row = db
        .prepare("UPDATE keys SET revokes_at = MIN(COALESCE(revokes_at, ?), ?) WHERE id = ? AND status = 'active' RETURNING hash, revokes_at")
        .get(at, at, id) as { hash: string; revokes_at: number } | undefined;
      if (!row) return null;
      db.prepare('INSERT INTO scheduled_revocations (key_id, at) VALUES (?, ?) ON CONFLICT (key_id) DO UPDATE SET at = MIN(at, excluded.at)').run(id, row.revokes_at);
      db.prepare('INSERT INTO key_changes (hash, at) VALUES (?, ?)').run(row.hash, Date.now());
      return row.hash;
    });
    if (hash !== null) this.#feed.changed([hash]);
    return this.#keys.get(id);
  }

  async revokeDue(now: number): Promise<string[]> {
    return this.#keys.revokeIds(() => (this.#db.db.prepare('DELETE FROM scheduled_revocations WHERE at <= ? RETURNING key_id').all(now) as { key_id: string }[]).map((r) => r.key_id), now);
  }

  async listExpiring(from: number, until: number): Promise<KeyRecord[]> {
    const rows = this.#db.db.prepare("SELECT * FROM keys WHERE status = 'active' AND expires_at IS NOT NULL AND expires_at BETWEEN ? AND ? ORDER BY expires_at").all(from, until) as KeyRow[];
    return rows.map(fromRow);
  }

  async claimReminder(id: string, stage: ReminderStage): Promise<boolean> {
    return this.#db.db.prepare('INSERT OR IGNORE INTO reminders (key_id, stage) VALUES (?, ?)').run(id, stage).changes === 1;
  }
}

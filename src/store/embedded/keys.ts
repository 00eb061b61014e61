/**
 * KeyStore on SQLite. Calls are synchronous: an indexed lookup costs microseconds and only
 * happens on a cache miss; multi-instance production deployments use the Redis store.
 */
import type { StatementSync } from 'node:sqlite';
import type { KeyRecord } from '../../keys/record.ts';
import { DuplicateKeyError, type KeyQuery } from '../key-store.ts';
import { Database } from './database.ts';
import type { EmbeddedFeed } from './feed.ts';
import { fromRow, INSERT_KEY_SQL, rowValues, type KeyRow } from './record-rows.ts';

export class EmbeddedKeys {
  readonly #db: Database;
  readonly #feed: EmbeddedFeed;
  readonly #q: Record<'byHash' | 'byId' | 'insert' | 'revoke' | 'logRevocation' | 'activeOfTenant', StatementSync>;

  constructor(db: Database, feed: EmbeddedFeed) {
    this.#db = db;
    this.#feed = feed;
    this.#q = {
      byHash: db.db.prepare('SELECT * FROM keys WHERE hash = ?'),
      byId: db.db.prepare('SELECT * FROM keys WHERE id = ?'),
      insert: db.db.prepare(INSERT_KEY_SQL),
      revoke: db.db.prepare("UPDATE keys SET status = 'revoked', revoked_at = ? WHERE id = ? AND status = 'active' RETURNING hash"),
      logRevocation: db.db.prepare('INSERT INTO revocations (key_id, hash, at) VALUES (?, ?, ?)'),
      activeOfTenant: db.db.prepare("SELECT id FROM keys WHERE tenant = ? AND status = 'active'"),
    };
  }

  async findByHash(hash: string): Promise<KeyRecord | null> {
    const row = this.#q.byHash.get(hash) as KeyRow | undefined;
    return row ? fromRow(row) : null;
  }

  async get(id: string): Promise<KeyRecord | null> {
    const row = this.#q.byId.get(id) as KeyRow | undefined;
    return row ? fromRow(row) : null;
  }

  async create(record: KeyRecord, hash: string): Promise<void> {
    this.#db.unique(
      () => this.#q.insert.run(...rowValues(record, hash)),
      () => new DuplicateKeyError('a key with this id or hash exists'),
    );
  }

  async list(query: KeyQuery): Promise<KeyRecord[]> {
    const where: string[] = [];
    const params: string[] = [];
    if (query.tenant !== undefined) {
      where.push('tenant = ?');
      params.push(query.tenant);
    }
    if (!query.includeRevoked) where.push("status = 'active'");
    const sql = `SELECT * FROM keys ${Database.where(where)} ORDER BY created_at DESC, id`;
    return (this.#db.db.prepare(sql).all(...params) as KeyRow[]).map(fromRow);
  }

  async revoke(id: string, at: number): Promise<KeyRecord | null> {
    this.revokeIds(() => [id], at);
    return this.get(id);
  }

  async revokeTenant(tenant: string, at: number): Promise<string[]> {
    return this.revokeIds(() => (this.#q.activeOfTenant.all(tenant) as { id: string }[]).map((row) => row.id), at);
  }

  /**
   * One write transaction (atomic across processes too): the ids are chosen, their status
   * changed and the revocation log written together or not at all.
   */
  revokeIds(choose: () => string[], at: number): string[] {
    const revoked: string[] = [];
    const hashes: string[] = [];
    this.#db.transaction(() => {
      for (const id of choose()) {
        const row = this.#q.revoke.get(at, id) as { hash: string } | undefined;
        if (!row) continue;
        this.#q.logRevocation.run(id, row.hash, at);
        revoked.push(id);
        hashes.push(row.hash);
      }
    });
    this.#feed.revoked(revoked, hashes, at);
    return revoked;
  }
}

/**
 * SecretStore on SQLite: upstream secrets (encrypted envelopes only) live in `secrets`;
 * every change to one is also written to `secret_changes`, which servers poll (feed.ts), so
 * a secret removed from the CLI stops being injected within `pollMs`.
 */
import type { StatementSync } from 'node:sqlite';
import { envelopeText, parseEnvelope, type Envelope } from '../../secrets/crypto.ts';
import { DuplicateSecretError, type SecretFeed, type SecretMeta, type StoredSecret } from '../../secrets/secret-store.ts';
import type { Database } from './database.ts';
import type { EmbeddedFeed } from './feed.ts';

interface SecretRow {
  id: string;
  name: string;
  created_at: number;
  last_used_at: number | null;
  key_version: string;
  envelope: string;
}

type MetaRow = Omit<SecretRow, 'envelope'>;

const META_COLUMNS = 'id, name, created_at, last_used_at, key_version';

function secretMeta(row: MetaRow): SecretMeta {
  return { id: row.id, name: row.name, createdAt: row.created_at, lastUsedAt: row.last_used_at, keyVersion: row.key_version };
}

export class EmbeddedSecrets {
  readonly #db: Database;
  readonly #pollFeed: EmbeddedFeed;
  #feed: SecretFeed | null = null;
  #changesAfter: StatementSync | null = null;
  #lastSeq = 0;

  constructor(db: Database, pollFeed: EmbeddedFeed) {
    this.#db = db;
    this.#pollFeed = pollFeed;
  }

  subscribeSecrets(feed: SecretFeed | null): void {
    this.#feed = feed;
    if (feed === null) return;
    this.#lastSeq = (this.#db.db.prepare('SELECT COALESCE(MAX(seq), 0) AS seq FROM secret_changes').get() as { seq: number }).seq;
    if (this.#changesAfter) return;
    this.#changesAfter = this.#db.db.prepare('SELECT seq, secret_id FROM secret_changes WHERE seq > ? ORDER BY seq LIMIT 1000');
    this.#pollFeed.startPolling(() => this.#poll());
  }

  /** Changes by any process, this one's included (dropping a cache entry twice is harmless). */
  #poll(): void {
    if (!this.#feed || !this.#changesAfter) return;
    const rows = this.#changesAfter.all(this.#lastSeq) as { seq: number; secret_id: string }[];
    if (!rows.length) return;
    this.#lastSeq = rows[rows.length - 1]!.seq;
    this.#feed.secretsChanged([...new Set(rows.map((r) => r.secret_id))]);
  }

  /**
   * `change` in one write transaction; when it returns a row, the change is logged for other
   * processes (inside the transaction) and this process's feed is told at once (after it).
   */
  #change(ids: string[], change: () => MetaRow | undefined, at: () => number = Date.now): SecretMeta | null {
    const row = this.#db.transaction(() => {
      const changed = change();
      if (changed) {
        const log = this.#db.db.prepare('INSERT INTO secret_changes (secret_id, at) VALUES (?, ?)');
        for (const id of ids) log.run(id, at());
      }
      return changed;
    });
    if (!row) return null;
    this.#feed?.secretsChanged(ids);
    return secretMeta(row);
  }

  async addSecret(secret: StoredSecret): Promise<void> {
    this.#db.unique(
      () =>
        this.#change(
          [secret.id],
          () =>
            this.#db.db
              .prepare(`INSERT INTO secrets (${META_COLUMNS}, envelope) VALUES (?, ?, ?, ?, ?, ?) RETURNING ${META_COLUMNS}`)
              .get(secret.id, secret.name, secret.createdAt, secret.lastUsedAt, secret.envelope.v, envelopeText(secret.envelope)) as MetaRow,
          () => secret.createdAt,
        ),
      () => new DuplicateSecretError(`a secret with id "${secret.id}" exists`),
    );
  }

  async listSecrets(): Promise<SecretMeta[]> {
    return (this.#db.db.prepare(`SELECT ${META_COLUMNS} FROM secrets ORDER BY created_at DESC, id`).all() as unknown as MetaRow[]).map(secretMeta);
  }

  async getSecret(id: string): Promise<StoredSecret | null> {
    const row = this.#db.db.prepare('SELECT * FROM secrets WHERE id = ?').get(id) as SecretRow | undefined;
    if (!row) return null;
    // An unreadable envelope is kept as one that can never decrypt: refused, not skipped.
    return { ...secretMeta(row), envelope: parseEnvelope(row.envelope) ?? { v: row.key_version, nonce: '', ct: '', tag: '' } };
  }

  async renameSecret(id: string, name: string): Promise<SecretMeta | null> {
    return this.#change([id], () => this.#db.db.prepare(`UPDATE secrets SET name = ? WHERE id = ? RETURNING ${META_COLUMNS}`).get(name, id) as MetaRow | undefined);
  }

  async moveSecret(from: string, to: string, name: string, envelope: Envelope): Promise<SecretMeta | null> {
    const db = this.#db.db;
    return this.#db.unique(
      () =>
        this.#change([from, to], () => {
          const old = db.prepare('DELETE FROM secrets WHERE id = ? RETURNING created_at, last_used_at').get(from) as { created_at: number; last_used_at: number | null } | undefined;
          if (!old) return undefined;
          return db
            .prepare(`INSERT INTO secrets (${META_COLUMNS}, envelope) VALUES (?, ?, ?, ?, ?, ?) RETURNING ${META_COLUMNS}`)
            .get(to, name, old.created_at, old.last_used_at, envelope.v, envelopeText(envelope)) as MetaRow;
        }),
      () => new DuplicateSecretError(`a secret with id "${to}" exists`),
    );
  }

  async replaceEnvelope(id: string, expected: Envelope, next: Envelope): Promise<boolean> {
    return this.#db.transaction(() => {
      const row = this.#db.db.prepare('SELECT envelope FROM secrets WHERE id = ?').get(id) as { envelope: string } | undefined;
      const current = row ? parseEnvelope(row.envelope) : null;
      if (current === null || current.v !== expected.v || current.nonce !== expected.nonce || current.ct !== expected.ct || current.tag !== expected.tag) return false;
      this.#db.db.prepare('UPDATE secrets SET envelope = ?, key_version = ? WHERE id = ?').run(envelopeText(next), next.v, id);
      return true;
    });
  }

  async removeSecret(id: string): Promise<SecretMeta | null> {
    return this.#change([id], () => this.#db.db.prepare(`DELETE FROM secrets WHERE id = ? RETURNING ${META_COLUMNS}`).get(id) as MetaRow | undefined);
  }

  async touchSecrets(lastUsed: ReadonlyMap<string, number>): Promise<void> {
    this.#db.touchLastUsed('secrets', lastUsed);
  }
}

/**
 * What upstream secrets need from a store (embedded SQLite, Redis). The store only ever
 * holds the encrypted envelope (crypto.ts); it never sees a value. `listSecrets` does not
 * even read envelopes. Every change (add, rename, id change, remove) is announced to every
 * long-running process — on Redis on a pub/sub channel, on the embedded store through a
 * change log that servers poll — so their decrypted-value caches (vault.ts) drop it.
 */
import type { Envelope } from './crypto.ts';
import { problemKind } from '../http/problem.ts';

/** A secret as anyone may see it: never the value, nor any part of it. */
export interface SecretMeta {
  id: string;
  name: string;
  /** Epoch ms. */
  createdAt: number;
  lastUsedAt: number | null;
  /** Version of the master key the value is encrypted under (see crypto.ts); not derived from the value. */
  keyVersion: string;
}

export interface StoredSecret extends SecretMeta {
  envelope: Envelope;
}

/** Told about secrets changed by this process or another one. */
export interface SecretFeed {
  /** These ids were added, renamed, moved or removed: forget what is cached for them. */
  secretsChanged(ids: readonly string[]): void;
  /** Changes may have been missed (the feed was down): forget everything cached. */
  secretsResync(): void;
}

export interface SecretStore {
  /** Fails with DuplicateSecretError if the id exists. */
  addSecret(secret: StoredSecret): Promise<void>;
  /** Newest first. */
  listSecrets(): Promise<SecretMeta[]>;
  getSecret(id: string): Promise<StoredSecret | null>;
  /** The secret after, or null if there is none with this id. */
  renameSecret(id: string, name: string): Promise<SecretMeta | null>;
  /**
   * Moves a secret to a new id with its value re-encrypted for that id (the id is part of
   * the associated data), keeping createdAt and lastUsedAt. Null if `from` does not exist;
   * DuplicateSecretError if `to` does.
   */
  moveSecret(from: string, to: string, name: string, envelope: Envelope): Promise<SecretMeta | null>;
  /**
   * Rewrap: replaces the envelope only if it is still `expected` (so a secret removed or
   * moved meanwhile is not brought back). True if replaced.
   */
  replaceEnvelope(id: string, expected: Envelope, next: Envelope): Promise<boolean>;
  /** The secret as it was, or null if there was none. */
  removeSecret(id: string): Promise<SecretMeta | null>;
  /** Sets lastUsedAt where the given time is newer; one write per secret per flush. */
  touchSecrets(lastUsed: ReadonlyMap<string, number>): Promise<void>;
  /**
   * Starts delivering secret changes to `feed` (long-running processes only; on Redis, on
   * the subscriber connection that `subscribe` opens).
   */
  subscribeSecrets(feed: SecretFeed): void;
}

/** The id is taken (conflict). A class of its own only because the stores construct it by this name. */
export const DuplicateSecretError = problemKind('DuplicateSecretError', 'conflict');
export type DuplicateSecretError = InstanceType<typeof DuplicateSecretError>;

/** Secret ids: what routes[].secret.id names. */
export const SECRET_ID_PATTERN = /^[a-z0-9][a-z0-9_.-]{0,63}$/;
export const SECRET_ID_RULE = 'must be 1-64 lower-case letters, digits, "_", "." or "-", starting with a letter or digit';

/** The JSON shape of a secret's metadata (API and CLI), field by field, so nothing else a store object carries — never the envelope — can reach output. */
export function toPublicSecret(s: SecretMeta) {
  return {
    id: s.id,
    name: s.name,
    createdAt: new Date(s.createdAt).toISOString(),
    lastUsedAt: s.lastUsedAt === null ? null : new Date(s.lastUsedAt).toISOString(),
    keyVersion: s.keyVersion,
  };
}

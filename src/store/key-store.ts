/**
 * The one interface every key store implements (embedded SQLite, Redis). The request
 * path, the CLI and the admin API only ever see this.
 */
import type { KeyRecord } from '../keys/record.ts';
import type { DirectoryChange } from '../users/records.ts';
import type { DirectorySnapshot } from './directory-store.ts';
import { problemKind } from '../http/problem.ts';

export interface RevocationEvent {
  ids: string[];
  hashes: string[];
  /** When the revocation was written (epoch ms), to measure how long the push took. */
  at: number;
}

export interface StoreFeed {
  /** Keys were revoked, by this process or another one. */
  revoked(event: RevocationEvent): void;
  /**
   * Keys' records changed while they stay active (a rotation set when the old key's overlap
   * ends): drop what is cached for these hashes so the next request reads the new record.
   */
  changed(hashes: readonly string[]): void;
  /** Revocations may have been missed (the feed was down): drop every cached answer. */
  resync(): void;
  /** A user or a tenant's permission group changed (by this process or another one). */
  directoryChanged(change: DirectoryChange): void;
  /**
   * Every user and tenant group, as the store holds them: delivered before `subscribe`
   * resolves, and again whenever changes may have been missed (a resync).
   */
  directoryReset(snapshot: DirectorySnapshot): void;
}

export interface KeyQuery {
  tenant?: string;
  includeRevoked?: boolean;
}

export interface KeyStore {
  readonly kind: 'embedded' | 'redis';
  /**
   * False while revocations could be missed (the push feed is disconnected): callers must
   * then verify every request in the store rather than trust a cache.
   */
  readonly feedHealthy: boolean;
  findByHash(hash: string): Promise<KeyRecord | null>;
  get(id: string): Promise<KeyRecord | null>;
  /** Atomic; fails with DuplicateKeyError if the id or hash exists. */
  create(record: KeyRecord, hash: string): Promise<void>;
  list(query: KeyQuery): Promise<KeyRecord[]>;
  /** Returns the record as it is afterwards (already-revoked keys are left as they were), or null if unknown. */
  revoke(id: string, at: number): Promise<KeyRecord | null>;
  /** Revokes every active key of a tenant; returns the ids it revoked. */
  revokeTenant(tenant: string, at: number): Promise<string[]>;
  /** Starts delivering revocations to `feed`. Only long-running processes subscribe. */
  subscribe(feed: StoreFeed): Promise<void>;
  /** Resolves when the store answers commands. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/**
 * The store could not be reached in time: auth_unavailable (the request path answers 503,
 * never 200; admin answers add Retry-After). A class of its own because the stores construct
 * it by this name and tell it apart from their other failures.
 */
export const StoreUnavailableError = problemKind('StoreUnavailableError', 'auth_unavailable');
export type StoreUnavailableError = InstanceType<typeof StoreUnavailableError>;

/** The id or hash is taken (conflict). A class of its own only because the stores construct it by this name. */
export const DuplicateKeyError = problemKind('DuplicateKeyError', 'conflict');
export type DuplicateKeyError = InstanceType<typeof DuplicateKeyError>;

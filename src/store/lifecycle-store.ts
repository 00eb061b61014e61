/**
 * What key lifecycle features need from a store beyond the request path: rename, batched
 * last-used times, the audit log, rotation's delayed revocations and once-only reminder
 * claims. Every operation that must happen once across instances is atomic in the store
 * (no leader election).
 */
import type { KeyRecord } from '../keys/record.ts';

export type AuditAction =
  | 'key.create'
  | 'key.rename'
  | 'key.revoke'
  | 'key.revoke_all'
  | 'key.rotate'
  | 'key.expire'
  | 'key.leak'
  | 'secret.create'
  | 'secret.rename'
  | 'secret.remove'
  | 'secret.rewrap'
  | 'admin.login_failed'
  | 'console.sign_in'
  | 'console.sign_out'
  | 'user.create'
  | 'user.update'
  | 'group.create'
  | 'group.update'
  | 'group.delete'
  | 'tenant.limits'
  | 'key.limits'
  | 'key.quota_top_up'
  | 'tenant.quota_top_up'
  | 'mcp.refused';

/** Never a key, a hash or a secret value: ids, names and display prefixes only. */
export interface AuditEntry {
  id: string;
  at: number;
  /** Key id of the caller, `cli`, `keygate` (automatic), or null for an unauthenticated caller. */
  actor: string | null;
  action: AuditAction;
  tenant: string | null;
  /** Key id or secret id acted on. */
  target: string | null;
  detail: Record<string, string | number | boolean | null>;
}

export interface AuditQuery {
  /** Only entries of this tenant (tenant-scoped callers). */
  tenant?: string;
  /** Cursor from a previous page: entries older than it. */
  before?: string;
  limit: number;
}

export interface AuditPage {
  entries: AuditEntry[];
  next: string | null;
}

export type ReminderStage = '30d' | '7d' | 'today' | 'expired';

export interface LifecycleStore {
  rename(id: string, name: string): Promise<KeyRecord | null>;
  /** Replaces a key's own rate limits; every instance reads the record again (a pushed change). */
  setRateLimits(id: string, rateLimits: readonly string[]): Promise<KeyRecord | null>;
  /** Sets or removes (null) a key's quota, the same way. */
  setQuota(id: string, quota: string | null): Promise<KeyRecord | null>;
  /** Sets lastUsedAt where the given time is newer; one write per key per flush. */
  touch(lastUsed: ReadonlyMap<string, number>): Promise<void>;
  appendAudit(entry: AuditEntry): Promise<void>;
  listAudit(query: AuditQuery): Promise<AuditPage>;
  /**
   * Rotation: `id` is refused from `at` on (its record's `revokesAt`; an earlier time
   * already set wins) and revoked by the first sweep after it. Every instance is told to
   * drop its cached copy of the record. Returns the record afterwards, or null if `id` is
   * unknown; a key that is no longer active is returned unchanged.
   */
  scheduleRevocation(id: string, at: number): Promise<KeyRecord | null>;
  /**
   * Revokes every scheduled key that is due and returns the ids this call revoked: when
   * several instances sweep at once, each id is returned to exactly one of them.
   */
  revokeDue(now: number): Promise<string[]>;
  /** Active keys whose expiry falls in [from, until]. */
  listExpiring(from: number, until: number): Promise<KeyRecord[]>;
  /** True for exactly one caller per key and stage, however many instances ask. */
  claimReminder(id: string, stage: ReminderStage): Promise<boolean>;
}

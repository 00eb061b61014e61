/**
 * The key record: everything keygate knows about a key except the key itself.
 * Times are epoch milliseconds so the hot path compares numbers, not dates.
 */
import { keyState, type KeyState } from './key-state.ts';

export type Role = 'api-user' | 'admin';
/**
 * What the store holds. Whether the key works now is keyState (key-state.ts): a stored
 * `active` key may be expired, or past its rotation's `revokesAt`.
 */
export type KeyStatus = 'active' | 'revoked';

export interface KeyRecord {
  id: string;
  tenant: string;
  name: string;
  role: Role;
  /** Explicit permissions; ignored when `group` is set. */
  permissions: string[];
  /** A permission group from config, resolved at verification time. */
  group: string | null;
  user: string | null;
  client: string | null;
  status: KeyStatus;
  /** e.g. `kg_acme_3f9a…` */
  prefix: string;
  createdAt: number;
  expiresAt: number | null;
  revokedAt: number | null;
  /**
   * When a rotation's overlap ends: from then on the key is refused on every request, as
   * if revoked, and the next sweep revokes it in the store. Null when none is scheduled.
   */
  revokesAt: number | null;
  lastUsedAt: number | null;
}

/** The JSON shape shown to people and scripts: ISO dates, never the key or its hash. */
export interface PublicKeyRecord {
  id: string;
  tenant: string;
  name: string;
  role: Role;
  permissions: string[];
  group: string | null;
  user: string | null;
  client: string | null;
  /** keyState at the time of the answer: what the proxy does with the key now. */
  status: KeyState;
  prefix: string;
  createdAt: string;
  expiresAt: string | null;
  revokedAt: string | null;
  revokesAt: string | null;
  lastUsedAt: string | null;
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

/** `status` is keyState(record, now): the same answer the proxy would give at `now`. */
export function toPublic(record: KeyRecord, now: number = Date.now()): PublicKeyRecord {
  return {
    id: record.id,
    tenant: record.tenant,
    name: record.name,
    role: record.role,
    permissions: record.permissions,
    group: record.group,
    user: record.user,
    client: record.client,
    status: keyState(record, now),
    prefix: record.prefix,
    createdAt: new Date(record.createdAt).toISOString(),
    expiresAt: iso(record.expiresAt),
    revokedAt: iso(record.revokedAt),
    revokesAt: iso(record.revokesAt),
    lastUsedAt: iso(record.lastUsedAt),
  };
}

export function isExpired(record: KeyRecord, now: number): boolean {
  return record.expiresAt !== null && record.expiresAt <= now;
}

/**
 * The one answer to "does this key work now?". Every decision about a key goes through
 * `keyState`: the proxy (auth/verify.ts), the admin API and console sessions, long-lived
 * exchanges re-checked after a push, the CLI, and the status shown in every list — so a
 * key is never `active` in one place and refused in another.
 *
 * A rotation's `revokesAt` counts as revoked from that instant on, on every instance,
 * whether or not a sweep has written `status: revoked` yet.
 */
import type { KeyRecord } from './record.ts';

/** What a key is now: `active` is the only state in which it is served. */
export type KeyState = 'active' | 'revoked' | 'expired';

export type KeyTimes = Pick<KeyRecord, 'status' | 'expiresAt' | 'revokesAt'>;

export function keyState(record: KeyTimes, now: number): KeyState {
  if (record.status !== 'active') return 'revoked';
  if (record.revokesAt !== null && record.revokesAt <= now) return 'revoked';
  if (record.expiresAt !== null && record.expiresAt <= now) return 'expired';
  return 'active';
}

/** The first instant from which `keyState` stops answering `active` (null: not scheduled). */
export function keyEndsAt(record: KeyTimes): number | null {
  if (record.status !== 'active') return null;
  const { expiresAt, revokesAt } = record;
  if (expiresAt === null) return revokesAt;
  if (revokesAt === null) return expiresAt;
  return Math.min(expiresAt, revokesAt);
}

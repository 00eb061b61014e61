/**
 * What the web console needs from a store: a record of sessions that were signed out, so
 * their (still well-signed, unexpired) cookie is refused by every instance, not only by the
 * one that saw the sign-out. Entries are forgotten once the session would have ended anyway.
 */
export interface SessionStore {
  /** Refuse session `id` from now on; the entry may be dropped after `until` (epoch ms). */
  endSession(id: string, until: number): Promise<void>;
  isSessionEnded(id: string): Promise<boolean>;
}

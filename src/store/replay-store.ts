/**
 * Replay protection for signed webhook deliveries (webhooks/): "claim this id once for N
 * ms", atomic across every instance sharing the store — Redis `SET … NX PX`, the embedded
 * store an INSERT into a table of claims with their expiry (one write transaction, so
 * atomic across processes on one file too).
 *
 * Callers claim only after a signature verified, so nobody without the signing secret can
 * use up ids; ids are digests (fixed length, no sender-chosen text in store key names).
 */
export interface ReplayStore {
  /**
   * True for the first caller to claim `id` while an earlier claim of it is unexpired,
   * false for every later one until `ttlMs` has passed. Rejects (StoreUnavailableError on
   * Redis) when the store cannot answer: the caller must then refuse, never accept.
   */
  claimOnce(id: string, ttlMs: number): Promise<boolean>;
  /**
   * Gives a claim back: the delivery it was made for never reached a working upstream (it
   * failed, or answered 5xx), so the sender's retry of it must not be refused as a replay.
   */
  releaseClaim(id: string): Promise<void>;
}

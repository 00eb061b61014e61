/**
 * The cryptographic part of webhook verification, with no I/O: the timestamp window, and an
 * incremental HMAC-SHA-256 per candidate key fed chunk by chunk as the body arrives (so a
 * large body is hashed while it streams in, not in one blocking pass at the end), compared
 * in constant time with every signature the sender sent.
 *
 *   const check = new SignatureCheck(parts, keys, { replayOf: 'stripe' });
 *   for (const chunk of body) check.update(chunk);
 *   const { matched, replayId } = check.finish();     // index into keys, or -1
 *
 * The replay id is a SHA-256 of everything signed (scheme, prefix, body): only the secret's
 * holder can produce a different one that verifies, and it does not depend on which of
 * several keys or signatures matched (stripping one of two signatures does not make a
 * replay look new). A sender's own retry is signed again with a new timestamp and is
 * therefore a new delivery.
 */
import { createHash, createHmac, timingSafeEqual, type Hash, type Hmac } from 'node:crypto';
import type { SignedParts } from './scheme.ts';

export interface CheckResult {
  /** Index of the first key whose HMAC is among the signatures; -1 if none is. */
  readonly matched: number;
  /** base64url SHA-256 of the signed content (with `replayOf`), else null. */
  readonly replayId: string | null;
}

export class SignatureCheck {
  readonly #signatures: readonly Buffer[];
  readonly #macs: Hmac[];
  readonly #content: Hash | null;

  /** @param replayOf the scheme's name, to compute the replay id; omit to skip that hash. */
  constructor(parts: SignedParts, keys: readonly Buffer[], options: { replayOf?: string } = {}) {
    this.#signatures = parts.signatures;
    this.#macs = keys.map((key) => createHmac('sha256', key).update(parts.prefix));
    this.#content = options.replayOf === undefined ? null : createHash('sha256').update(`${options.replayOf}\n`).update(parts.prefix);
  }

  update(chunk: Buffer): void {
    for (const mac of this.#macs) mac.update(chunk);
    this.#content?.update(chunk);
  }

  finish(): CheckResult {
    let matched = -1;
    for (let i = 0; i < this.#macs.length; i++) {
      const digest = this.#macs[i]!.digest();
      if (matched === -1 && matchesAny(digest, this.#signatures)) matched = i;
    }
    return { matched, replayId: this.#content?.digest('base64url') ?? null };
  }
}

/** Constant time per comparison; every signature is compared (which one matched is not secret, but the loop does not stop early either). */
export function matchesAny(digest: Buffer, signatures: readonly Buffer[]): boolean {
  let found = false;
  for (const signature of signatures) {
    if (signature.length === digest.length && timingSafeEqual(signature, digest)) found = true;
  }
  return found;
}

/** Why a signed timestamp is outside `toleranceSeconds` of now, or null if it is inside. */
export function timestampProblem(timestamp: number, nowMs: number, toleranceSeconds: number): string | null {
  const age = nowMs / 1000 - timestamp;
  if (age > toleranceSeconds) return `the signature timestamp is more than ${toleranceSeconds} s old`;
  if (-age > toleranceSeconds) return `the signature timestamp is more than ${toleranceSeconds} s in the future`;
  return null;
}

/** Clocks of the instances sharing a store may differ by this much. */
export const CLOCK_SKEW_MS = 60_000;

/**
 * How long an accepted delivery must be remembered: until its timestamp has left the window
 * on every instance (plus their clock difference); with no signed timestamp (GitHub), the
 * tolerance itself.
 */
export function replayTtlMs(timestamp: number | null, nowMs: number, toleranceSeconds: number): number {
  if (timestamp === null) return toleranceSeconds * 1000;
  return Math.max(1000, (timestamp + toleranceSeconds) * 1000 - nowMs + CLOCK_SKEW_MS);
}

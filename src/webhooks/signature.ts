/**
 * The cryptographic part of webhook verification, with no I/O: the timestamp window, and an
 * incremental HMAC (SHA-256 unless the scheme says otherwise) per candidate key fed chunk by chunk as the body arrives (so a
 * large body is hashed while it streams in, not in one blocking pass at the end), compared
 * in constant time with every signature the sender sent.
 *
 *   const check = new SignatureCheck(parts, keys, { replayOf: 'stripe' });
 *   for (const chunk of body) check.update(chunk);
 *   const { matched, replayId } = check.finish(body); // index into keys, or -1
 *
 * A scheme whose signed text depends on the whole body (Twilio: URL + sorted form parameters)
 * is computed at finish() from the body instead.
 *
 * The replay id is a SHA-256 of everything signed (scheme, prefix, body, suffix — or the
 * derived text — plus the delivery id where the scheme names one): only the secret's
 * holder can produce a different one that verifies (except through an unsigned delivery id:
 * Shopify's, or an hmac idHeader not in the payload — there it stops exact resends only), and it does not depend on which of
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
  /** Why the body cannot be what was signed (a scheme with `derive`); matched is -1 then. */
  readonly problem?: string;
}

export class SignatureCheck {
  readonly #parts: SignedParts;
  readonly #keys: readonly Buffer[];
  /** One streaming HMAC per key; null for a scheme that derives its signed text from the whole body. */
  readonly #macs: Hmac[] | null;
  readonly #content: Hash | null;

  /** @param replayOf the scheme's name, to compute the replay id; omit to skip that hash. */
  constructor(parts: SignedParts, keys: readonly Buffer[], options: { replayOf?: string } = {}) {
    this.#parts = parts;
    this.#keys = keys;
    const algorithm = parts.algorithm ?? 'sha256';
    this.#macs = parts.derive !== undefined ? null : keys.map((key) => createHmac(algorithm, key).update(parts.prefix));
    if (options.replayOf === undefined) this.#content = null;
    else {
      const content = createHash('sha256').update(`${options.replayOf}\n`);
      // Length-prefixed, so no id and body can be cut into another id and body.
      if (parts.deliveryId !== undefined) content.update(`id ${parts.deliveryId.length}:${parts.deliveryId}\n`);
      if (parts.derive === undefined) content.update(parts.prefix);
      this.#content = content;
    }
  }

  update(chunk: Buffer): void {
    if (this.#macs === null) return;
    for (const mac of this.#macs) mac.update(chunk);
    this.#content?.update(chunk);
  }

  /** @param body the whole body, needed by a scheme with `derive` (the others have had it through update). */
  finish(body?: Buffer): CheckResult {
    let matched = -1;
    const algorithm = this.#parts.algorithm ?? 'sha256';
    if (this.#macs !== null) {
      const suffix = this.#parts.suffix ?? '';
      for (let i = 0; i < this.#macs.length; i++) {
        const digest = this.#macs[i]!.update(suffix).digest();
        if (matched === -1 && matchesAny(digest, this.#parts.signatures)) matched = i;
      }
      this.#content?.update(suffix);
      return { matched, replayId: this.#content?.digest('base64url') ?? null };
    }
    const derived = this.#parts.derive!(body ?? Buffer.alloc(0));
    if (typeof derived === 'string') return { matched: -1, replayId: null, problem: derived };
    for (let i = 0; i < this.#keys.length; i++) {
      // Every candidate is computed and compared: nothing stops early.
      let found = false;
      for (const message of derived.messages) {
        if (matchesAny(createHmac(algorithm, this.#keys[i]!).update(message).digest(), this.#parts.signatures)) found = true;
      }
      if (found && matched === -1) matched = i;
    }
    return { matched, replayId: this.#content?.update(derived.replay).digest('base64url') ?? null };
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

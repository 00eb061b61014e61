/**
 * What keygate does with one token a secret scanner reports, whatever the scanner:
 *
 *  - not a well-formed key of this deployment (shape, prefix, CRC32: parseKey) → false
 *    positive, no I/O;
 *  - not in the store (looked up by its HMAC, like a request) → false positive;
 *  - a known key → true positive. With `action: revoke` it is revoked (a `key.revoke` audit
 *    entry with reason `leaked`, and every instance refuses it within moments, as for any
 *    revocation); with `action: notify` it keeps working. Either way a `key.leak` audit entry
 *    records where it was found and admins get `key.leaked` (EventSink.leak).
 *
 * Repeats are idempotent: a key already revoked is a true positive and nothing more happens
 * (no second audit entry or notification, whoever revoked it), and of instances revoking it
 * at the same moment only one audits and notifies; with `action: notify` each (key, url) is
 * reported to admins once per 30 days. Both across every instance sharing the store
 * (ReplayStore.claimOnce). The token itself is never stored, logged, audited or sent; audit
 * and notification name the key by id, name and display prefix.
 *
 * Store failures are thrown (the caller answers 503 and the scanner retries).
 */
import { createHash } from 'node:crypto';
import type { LeakAction } from '../config/leak-reports.ts';
import type { EventSink } from '../events/event-sink.ts';
import { parseKey } from '../keys/format.ts';
import type { KeyHasher } from '../keys/hash.ts';
import type { KeyStore } from '../store/key-store.ts';
import type { ReplayStore } from '../store/replay-store.ts';

export type LeakLabel = 'true_positive' | 'false_positive';

/** What was done: nothing (false positive), revoked now, already revoked, notified (key still works), or notified before. */
export type LeakOutcome = 'false_positive' | 'revoked' | 'already_revoked' | 'notified' | 'already_notified';

export interface LeakResult {
  label: LeakLabel;
  outcome: LeakOutcome;
  /** The key's id for a true positive (for logs: never the token). */
  keyId: string | null;
}

export interface LeakedKeysOptions {
  store: KeyStore & ReplayStore;
  hasher: KeyHasher;
  prefix: string;
  events: EventSink;
  action: LeakAction;
  /** Who the audit log says acted, e.g. `github-secret-scanning`. */
  actor: string;
  now?: () => number;
}

/** How long a claim to report a key lasts: with `action: notify`, a (key, url) is notified again after this. */
export const ONCE_MS = 30 * 86_400_000;

/** A ReplayStore id (a digest: fixed length, no reporter-chosen text in store key names). */
function claimId(kind: 'notify' | 'revoke', keyId: string, url: string | null): string {
  return createHash('sha256').update(`keygate-leak\0${kind}\0${keyId}\0${url ?? ''}`).digest('hex');
}
const MAX_FOUND_LENGTH = 2048;

const FALSE_POSITIVE: LeakResult = { label: 'false_positive', outcome: 'false_positive', keyId: null };

function found(value: string | null): string | null {
  return value === null || value === '' ? null : value.slice(0, MAX_FOUND_LENGTH);
}

export class LeakedKeys {
  readonly #o: LeakedKeysOptions;
  readonly #now: () => number;
  /** Reports run one at a time in this process: a repeat arriving alongside the first sees its result. */
  #queue: Promise<unknown> = Promise.resolve();

  constructor(options: LeakedKeysOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
  }

  report(token: string, where: { url: string | null; source: string | null }): Promise<LeakResult> {
    if (parseKey(token, this.#o.prefix) === null) return Promise.resolve(FALSE_POSITIVE);
    const next = this.#queue.then(() => this.#handle(token, { url: found(where.url), source: found(where.source) }));
    this.#queue = next.catch(() => {});
    return next;
  }

  async #handle(token: string, where: { url: string | null; source: string | null }): Promise<LeakResult> {
    const { store, events, actor } = this.#o;
    const record = await store.findByHash(this.#o.hasher(token));
    if (record === null) return FALSE_POSITIVE;
    const hit = (outcome: LeakOutcome): LeakResult => ({ label: 'true_positive', outcome, keyId: record.id });
    // The stored status: a key whose rotation overlap has ended is revoked here too, now.
    if (record.status === 'revoked') return hit('already_revoked');
    if (this.#o.action === 'notify') {
      if (!(await store.claimOnce(claimId('notify', record.id, where.url), ONCE_MS))) return hit('already_notified');
      await events.leak(actor, record, { ...where, revoked: false });
      return hit('notified');
    }
    const after = await store.revoke(record.id, this.#now());
    if (after === null) return hit('already_revoked');
    // Instances that got the same report at the same moment all revoked (a no-op but for the
    // first); the claim picks the one that audits and notifies.
    if (!(await store.claimOnce(claimId('revoke', record.id, null), ONCE_MS))) return hit('already_revoked');
    await events.audit('key.revoke', actor, after.tenant, after.id, { name: after.name, prefix: after.prefix, reason: 'leaked' });
    await events.leak(actor, after, { ...where, revoked: true });
    return hit('revoked');
  }
}

/**
 * The registry of long-lived exchanges — WebSocket tunnels, event streams, responses still
 * streaming — and the one place that ends them when the key or token they were opened with
 * stops working, on every instance:
 *
 *  - a revocation pushed by the store ends every exchange of that key at once (`revoked`);
 *  - each exchange has one deadline timer, at the first instant `keyState` stops answering
 *    `active` for its record (`keyEndsAt`: expiry, or the end of a rotation overlap), or at
 *    an access token's `exp`;
 *  - records that changed (a rotation pushed) are verified again and their deadlines re-armed
 *    from the fresh record (`changed`);
 *  - after a resync (revocations may have been missed) and every `recheckMs`
 *    (cache.maxAgeMs), every exchange's key is verified again under the staleness rules, so
 *    a missed push, or a store that cannot vouch for the key any more, ends it too;
 *  - at registration the key is verified once more: a revocation that landed between the
 *    request's admission and the exchange's registration (a slow upstream) is not missed.
 *
 * The registry decides *when*; each transport supplies *how* (`LiveExchange.end`): a
 * WebSocket gets a Close frame between two frames (websocket.ts), an event stream ends
 * between two events, a plain response still streaming is cut (forward.ts).
 *
 *   const live = new LiveExchanges({ verifier, recheckMs: 30_000 });
 *   const entry = live.add({ kind: 'event-stream', end: (reason) => … }, identity, hash);
 *   …                                   // when the exchange is over, however it ended:
 *   live.remove(entry);
 */
import type { Identity } from '../auth/identity.ts';
import type { VerifyFailure, VerifyResult } from '../auth/verify.ts';
import { keyEndsAt, keyState, type KeyTimes } from '../keys/key-state.ts';

/** Why keygate ends an exchange: its credential stopped working, or keygate is shutting down. */
export type EndReason = VerifyFailure | 'shutdown';

export type LiveKind = 'websocket' | 'event-stream' | 'response';

export interface LiveExchange {
  readonly kind: LiveKind;
  /**
   * Ends the exchange the way its transport ends cleanly. Called at most once per
   * registration, never from inside `add`; the owner still calls `remove` once it is gone.
   */
  end(reason: EndReason): void;
}

/** What the registry needs of the verifier (auth/verify.ts). */
export interface LiveVerifier {
  verifyHash(hash: string): VerifyResult | Promise<VerifyResult>;
  hashOf(key: string): string;
}

export interface LiveExchangesOptions {
  verifier: LiveVerifier;
  /** How often every exchange's key is verified again (cache.maxAgeMs). */
  recheckMs: number;
  now?: () => number;
}

/** setTimeout's limit; a later deadline is caught by the periodic re-check instead. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** One registered exchange; opaque to its owner, who hands it back to `remove`. */
export class LiveEntry {
  readonly owner: LiveExchange;
  /** The key's id, for pushed revocations (null: public route, or an access token). */
  readonly keyId: string | null;
  /** The key's lookup hash, to verify it again (null: public route, or an access token). */
  readonly hash: string | null;
  deadline: NodeJS.Timeout | null = null;
  /** `end` was called, or the owner removed it. */
  done = false;

  constructor(owner: LiveExchange, keyId: string | null, hash: string | null) {
    this.owner = owner;
    this.keyId = keyId;
    this.hash = hash;
  }
}

export class LiveExchanges {
  readonly #verifier: LiveVerifier;
  readonly #recheckMs: number;
  readonly #now: () => number;
  readonly #all = new Set<LiveEntry>();
  readonly #byKey = new Map<string, Set<LiveEntry>>();
  #timer: NodeJS.Timeout | null = null;

  constructor(options: LiveExchangesOptions) {
    this.#verifier = options.verifier;
    this.#recheckMs = options.recheckMs;
    this.#now = options.now ?? Date.now;
  }

  /** Registered exchanges now (of one kind). */
  count(kind?: LiveKind): number {
    if (kind === undefined) return this.#all.size;
    let n = 0;
    for (const entry of this.#all) if (entry.owner.kind === kind) n++;
    return n;
  }

  /** The lookup hash of a well-formed key (computed once per registered exchange, never per request). */
  hashOf(key: string): string {
    return this.#verifier.hashOf(key);
  }

  /**
   * Registers an exchange opened with `identity` (null: a public route — ended only at
   * shutdown) and, for a key, its lookup `hash`. Arms its deadline and verifies the key once
   * more; a key that no longer works ends the exchange on a later tick.
   */
  add(owner: LiveExchange, identity: Identity | null, hash: string | null): LiveEntry {
    const isKey = identity !== null && identity.issuer === undefined;
    const entry = new LiveEntry(owner, isKey ? identity.record.id : null, isKey ? hash : null);
    this.#all.add(entry);
    if (entry.keyId !== null) {
      let set = this.#byKey.get(entry.keyId);
      if (set === undefined) this.#byKey.set(entry.keyId, (set = new Set()));
      set.add(entry);
    }
    if (identity === null) return entry;
    const result = entry.hash === null ? identity : this.#verifier.verifyHash(entry.hash);
    if (result instanceof Promise) {
      // Until the store answers, the record the request was admitted with sets the deadline.
      this.#arm(entry, identity.record);
      result.then((settled) => this.#settle(entry, settled), () => this.#end(entry, 'auth_unavailable'));
    } else if (typeof result === 'string') {
      // Never end from inside `add` (the owner has not got its entry yet): on the next tick.
      this.#armAt(entry, 0, result);
    } else {
      this.#arm(entry, result.record);
    }
    return entry;
  }

  /** The exchange is over (however it ended): forget it. */
  remove(entry: LiveEntry): void {
    entry.done = true;
    if (entry.deadline !== null) clearTimeout(entry.deadline);
    entry.deadline = null;
    if (!this.#all.delete(entry) || entry.keyId === null) return;
    const set = this.#byKey.get(entry.keyId);
    if (set === undefined) return;
    set.delete(entry);
    if (set.size === 0) this.#byKey.delete(entry.keyId);
  }

  start(): void {
    this.#timer ??= setInterval(() => this.recheck(), this.#recheckMs).unref();
  }

  /** Stops the periodic re-check; open exchanges are left to `endAll`. */
  stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }

  /** The store pushed a revocation: every exchange of those keys ends now. Returns how many. */
  revoked(ids: readonly string[]): number {
    if (this.#byKey.size === 0) return 0;
    let ended = 0;
    for (const id of ids) {
      const set = this.#byKey.get(id);
      if (set === undefined) continue;
      for (const entry of [...set]) if (this.#end(entry, 'key_revoked')) ended++;
    }
    return ended;
  }

  /** The store pushed records that changed (a rotation set their revokesAt): verify those keys again. */
  changed(hashes: readonly string[]): void {
    if (this.#byKey.size === 0) return;
    const changed = new Set(hashes);
    for (const entry of this.#all) if (entry.hash !== null && changed.has(entry.hash)) this.#reverify(entry);
  }

  /** Verifies every exchange's key again (the periodic check; also after the feed resyncs). */
  recheck(): void {
    for (const entry of this.#all) this.#reverify(entry);
  }

  /** Ends every exchange (of one kind): shutdown. Returns how many. */
  endAll(reason: EndReason, kind?: LiveKind): number {
    let ended = 0;
    for (const entry of [...this.#all]) if ((kind === undefined || entry.owner.kind === kind) && this.#end(entry, reason)) ended++;
    return ended;
  }

  #reverify(entry: LiveEntry): void {
    if (entry.hash === null || entry.done) return;
    const result = this.#verifier.verifyHash(entry.hash);
    if (result instanceof Promise) result.then((settled) => this.#settle(entry, settled), () => this.#end(entry, 'auth_unavailable'));
    else this.#settle(entry, result);
  }

  /** Ends the exchange if its key no longer passes; else re-arms its deadline from the record as it is now. */
  #settle(entry: LiveEntry, result: VerifyResult): void {
    if (typeof result === 'string') this.#end(entry, result);
    else this.#arm(entry, result.record);
  }

  /** The one deadline: whichever comes first of expiry and the end of a rotation overlap (a token's exp is its expiresAt). */
  #arm(entry: LiveEntry, record: KeyTimes): void {
    const at = keyEndsAt(record);
    if (at === null) {
      if (entry.deadline !== null) clearTimeout(entry.deadline);
      entry.deadline = null;
      return;
    }
    this.#armAt(entry, at - this.#now(), keyState(record, at) === 'expired' ? 'key_expired' : 'key_revoked');
  }

  #armAt(entry: LiveEntry, ms: number, reason: VerifyFailure): void {
    if (entry.done) return;
    if (entry.deadline !== null) clearTimeout(entry.deadline);
    entry.deadline = null;
    if (ms >= MAX_TIMER_MS) return;
    entry.deadline = setTimeout(() => this.#end(entry, reason), Math.max(0, ms));
    entry.deadline.unref();
  }

  #end(entry: LiveEntry, reason: EndReason): boolean {
    if (entry.done) return false;
    entry.done = true;
    if (entry.deadline !== null) clearTimeout(entry.deadline);
    entry.deadline = null;
    entry.owner.end(reason);
    return true;
  }
}

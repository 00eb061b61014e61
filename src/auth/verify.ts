/**
 * verify: key → Identity, or the reason it is refused.
 *
 *   format + CRC32 (no I/O) → HMAC (remembered for keys the store vouched for) → LRU cache
 *   → store (one call per key however many requests miss at once)
 *
 * Staleness rules (README, "Revocation and staleness"):
 *  - push feed healthy → cached answers are used, each for at most `maxAgeMs`;
 *  - feed down but the store answers → every request goes to the store;
 *  - store unreachable → cached answers younger than `maxAgeMs` are still used, anything
 *    else is `auth_unavailable` (503), never accepted.
 * Expiry and revocation status are checked on every request, cached or not.
 *
 * `verify` returns synchronously on a cache hit and a Promise only when it must ask the
 * store, so the common path allocates no promise.
 */
import { hash as sha256Hash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { LRUCache } from 'lru-cache';
import { parseKey } from '../keys/format.ts';
import type { KeyHasher } from '../keys/hash.ts';
import { keyState } from '../keys/key-state.ts';
import type { KeyRecord } from '../keys/record.ts';
import type { KeyStore, RevocationEvent, StoreFeed } from '../store/key-store.ts';
import type { DirectorySnapshot } from '../store/directory-store.ts';
import { Directory, type PermissionGroups } from '../users/directory.ts';
import type { DirectoryChange } from '../users/records.ts';
import { sameGrant, toIdentity, type Identity } from './identity.ts';

export type VerifyFailure = 'invalid_key' | 'key_revoked' | 'key_expired' | 'user_disabled' | 'auth_unavailable';
/** `verifyKnown`'s answer for a key it would have to look up: the caller answers 429. */
export const LOOKUP_REFUSED = 'lookup_refused' as const;
export type VerifyResult = Identity | VerifyFailure;

export interface VerifierOptions {
  store: KeyStore;
  hasher: KeyHasher;
  prefix: string;
  /** Users and permission groups, kept current by the store's feed (users/directory.ts). */
  directory: Directory;
  max: number;
  maxAgeMs: number;
  negativeMax: number;
  negativeMaxAgeMs: number;
  /** Told about store failures (for logs and metrics); must not throw. */
  onStoreError?: (error: unknown) => void;
  /** Told how long each store lookup took and whether it succeeded (metrics); must not throw. */
  onStoreLookup?: (seconds: number, ok: boolean) => void;
  /** Told when the store first vouches for a key here (its SHA-256 and HMAC), to share with sibling workers. */
  onKnown?: (id: string, hash: string) => void;
  now?: () => number;
}

export interface VerifierStats {
  hits: number;
  misses: number;
  storeCalls: number;
  evictions: number;
}

export class Verifier implements StoreFeed {
  readonly #store: KeyStore;
  readonly #hasher: KeyHasher;
  readonly #prefix: string;
  readonly #directory: Directory;
  readonly #positive: LRUCache<string, Identity>;
  readonly #negative: LRUCache<string, true>;
  /**
   * SHA-256 of a key → its HMAC (both one-way; never the key itself). A pure function of the
   * key, so it is never stale: revocation and expiry are still judged by the cache entry.
   */
  readonly #known: LRUCache<string, string>;
  readonly #inflight = new Map<string, Promise<KeyRecord | null>>();
  /**
   * Answers set aside by a resync (flush): not trusted while the store answers (each is
   * looked up again, on its next request or by the background re-check), but still used,
   * until its cache age runs out, while the store cannot answer, like any cached answer.
   * Created on the first flush, with the positive cache's bounds.
   */
  #stale: LRUCache<string, Identity> | null = null;
  #recheck: Promise<void> | null = null;
  #recheckTimer: NodeJS.Timeout | null = null;
  /** Bumped by every revocation, change or resync: a lookup that started before one is not cached. */
  #generation = 0;
  readonly #now: () => number;
  readonly #onStoreError: (error: unknown) => void;
  readonly #onStoreLookup: ((seconds: number, ok: boolean) => void) | null;
  readonly #onKnown: ((id: string, hash: string) => void) | null;
  readonly stats: VerifierStats = { hits: 0, misses: 0, storeCalls: 0, evictions: 0 };
  /** Called after each revocation event is applied, with the event. */
  onRevocationApplied: ((event: RevocationEvent, appliedAt: number) => void) | null = null;
  /** Called after records changed (a rotation set their revokesAt), with their hashes. */
  onChanged: ((hashes: readonly string[]) => void) | null = null;
  /** Called after a resync (revocations may have been missed while the feed was down). */
  onResync: (() => void) | null = null;

  constructor(options: VerifierOptions) {
    this.#store = options.store;
    this.#hasher = options.hasher;
    this.#prefix = options.prefix;
    this.#directory = options.directory;
    this.#now = options.now ?? Date.now;
    this.#onStoreError = options.onStoreError ?? (() => {});
    this.#onStoreLookup = options.onStoreLookup ?? null;
    this.#onKnown = options.onKnown ?? null;
    const stats = this.stats;
    this.#positive = new LRUCache<string, Identity>({
      max: options.max,
      ttl: options.maxAgeMs,
      updateAgeOnGet: false,
      dispose: (_value, _key, reason) => {
        if (reason === 'evict') stats.evictions++;
      },
    });
    // Negative answers live apart so a flood of unknown keys cannot push out valid ones.
    this.#negative = new LRUCache<string, true>({ max: options.negativeMax, ttl: options.negativeMaxAgeMs, updateAgeOnGet: false });
    this.#known = new LRUCache<string, string>({ max: options.max });
  }

  get size(): number {
    return this.#positive.size;
  }

  verify(key: string): VerifyResult | Promise<VerifyResult> {
    if (parseKey(key, this.#prefix) === null) return 'invalid_key';
    // The HMAC is what the store knows a key by, but it costs a keyed-hash object per call;
    // a key seen valid before has its HMAC remembered under a one-shot SHA-256 of the key.
    const id = sha256Hash('sha256', key, 'base64url');
    const known = this.#known.get(id);
    return known !== undefined ? this.verifyHash(known) : this.#verify(this.#hasher(key), id);
  }

  /**
   * `verify` for a client whose address is over the failed-auth limit (auth/failure-limiter.ts):
   * a key the store has vouched for before (it exists, whatever its status now) is no guess
   * and is verified as usual — served when it works, answered from the cache when revoked or
   * expired; any other well-formed key gets LOOKUP_REFUSED, before its HMAC is computed, so a
   * blocked flood of made-up keys costs the store nothing.
   */
  verifyKnown(key: string): VerifyResult | Promise<VerifyResult> | typeof LOOKUP_REFUSED {
    if (parseKey(key, this.#prefix) === null) return 'invalid_key';
    const known = this.#known.get(sha256Hash('sha256', key, 'base64url'));
    return known !== undefined ? this.verifyHash(known) : LOOKUP_REFUSED;
  }

  /** A key another worker's store lookup vouched for (cluster/known-keys-ipc.ts): known here too. */
  learn(id: string, hash: string): void {
    if (!this.#known.has(id)) this.#known.set(id, hash);
  }

  /**
   * Whether a refusal counts against the client's failed-auth limit (auth/failure-limiter.ts):
   * only a well-formed key the store did not know, the lookup a flood of made-up keys costs.
   * Malformed keys cost nothing; revoked and expired keys are no guess.
   */
  isGuess(key: string, failure: string): boolean {
    return failure === 'invalid_key' && parseKey(key, this.#prefix) !== null;
  }

  /**
   * The cached identity of a key the store has vouched for, without judging it: a revoked or
   * expired key's refusal is logged with its key id and tenant (refusal path only).
   */
  cachedIdentity(key: string): Identity | undefined {
    const known = this.#known.get(sha256Hash('sha256', key, 'base64url'));
    return known === undefined ? undefined : this.#positive.peek(known);
  }

  /** The store's lookup hash of a well-formed key (what open WebSockets are re-checked by). */
  hashOf(key: string): string {
    // A key that was just verified has its HMAC remembered: a SHA-256 instead of a keyed hash.
    return this.#known.get(sha256Hash('sha256', key, 'base64url')) ?? this.#hasher(key);
  }

  /**
   * `verify` for a key already known to be well-formed, by its hash: long-lived connections
   * (WebSockets) are re-checked with it without keeping the key itself in memory.
   */
  verifyHash(hash: string): VerifyResult | Promise<VerifyResult> {
    return this.#verify(hash, null);
  }

  /** @param id the key's SHA-256, to remember its HMAC once the store has vouched for it (null: do not). */
  #verify(hash: string, id: string | null): VerifyResult | Promise<VerifyResult> {
    if (this.#store.feedHealthy) {
      const cached = this.#positive.get(hash);
      if (cached !== undefined) {
        this.stats.hits++;
        return this.#judge(cached);
      }
      if (this.#negative.has(hash)) {
        this.stats.hits++;
        return 'invalid_key';
      }
    }
    this.stats.misses++;
    return this.#fromStore(hash, id);
  }

  #judge(identity: Identity): VerifyResult {
    if (identity.userDisabled === true) return 'user_disabled';
    const record = identity.record;
    // Fast exit without reading the clock for the common never-expiring key; keyState decides the rest.
    if (record.status === 'active' && record.expiresAt === null && record.revokesAt === null) return identity;
    const state = keyState(record, this.#now());
    return state === 'active' ? identity : state === 'expired' ? 'key_expired' : 'key_revoked';
  }

  async #fromStore(hash: string, id: string | null): Promise<VerifyResult> {
    const generation = this.#generation;
    let record: KeyRecord | null;
    try {
      record = await this.#lookup(hash);
    } catch (error) {
      this.#onStoreError(error);
      // Store unreachable: a recent cached answer is still good (bounded by maxAgeMs via the
      // cache's TTL), one set aside by a resync too; without one we fail closed.
      const cached = this.#positive.get(hash) ?? this.#stale?.get(hash);
      return cached !== undefined ? this.#judge(cached) : 'auth_unavailable';
    }
    this.#stale?.delete(hash);
    // The users and groups have not been read yet (the store was unreachable at start): such
    // a key cannot be resolved, and is not cached half-resolved.
    if (record !== null && !this.#directory.ready && Directory.needed(record)) return 'auth_unavailable';
    const current = generation === this.#generation;
    if (record === null) {
      this.#positive.delete(hash);
      if (current) this.#negative.set(hash, true);
      return 'invalid_key';
    }
    const identity = toIdentity(record, this.#directory);
    if (current) this.#positive.set(hash, identity);
    // Only keys the store knows: a flood of unknown keys cannot push real ones out of it.
    if (id !== null && !this.#known.has(id)) {
      this.#known.set(id, hash);
      this.#onKnown?.(id, hash);
    }
    return this.#judge(identity);
  }

  /** Concurrent misses for one key share one store call. */
  #lookup(hash: string): Promise<KeyRecord | null> {
    let pending = this.#inflight.get(hash);
    if (pending === undefined) {
      this.stats.storeCalls++;
      const started = performance.now();
      const observe = this.#onStoreLookup;
      // One then() for both outcomes rather than then + finally: a promise and a closure
      // fewer on every cache miss.
      const call: Promise<KeyRecord | null> = this.#store.findByHash(hash).then(
        (record) => {
          if (this.#inflight.get(hash) === call) this.#inflight.delete(hash);
          observe?.((performance.now() - started) / 1000, true);
          return record;
        },
        (error: unknown) => {
          if (this.#inflight.get(hash) === call) this.#inflight.delete(hash);
          observe?.((performance.now() - started) / 1000, false);
          throw error;
        },
      );
      this.#inflight.set(hash, call);
      pending = call;
    }
    return pending;
  }

  /** StoreFeed: a revocation pushed by the store. */
  revoked(event: RevocationEvent): void {
    this.#forget(event.hashes);
    this.onRevocationApplied?.(event, this.#now());
  }

  /** StoreFeed: records changed but stay active; the next request reads them again. */
  changed(hashes: readonly string[]): void {
    this.#forget(hashes);
    this.onChanged?.(hashes);
  }

  /** Drops these keys' cached answers; a lookup already under way is not cached either. */
  #forget(hashes: readonly string[]): void {
    this.#generation++;
    for (const hash of hashes) {
      this.#positive.delete(hash);
      this.#stale?.delete(hash);
      this.#inflight.delete(hash);
    }
  }

  /**
   * StoreFeed: revocations may have been missed (the store's log could not cover a gap):
   * nothing cached is trusted until it has been checked again. See flush().
   */
  resync(): void {
    this.flush();
    this.onResync?.();
  }

  /**
   * Stops trusting every cached answer without turning any into an error: positive answers
   * are set aside (see #stale) and re-checked in the background; a request meanwhile asks
   * the store, and only if the store cannot answer is the set-aside answer used, within its
   * remaining cache age (never longer than maxAgeMs since it was read from the store).
   */
  flush(): void {
    this.#generation++;
    this.#inflight.clear();
    this.#negative.clear();
    const positive = this.#positive;
    if (positive.size > 0) {
      const stale = (this.#stale ??= new LRUCache<string, Identity>({ max: positive.max, ttl: positive.ttl, updateAgeOnGet: false }));
      for (const [hash, identity] of positive.entries()) {
        const ttl = positive.getRemainingTTL(hash);
        if (ttl > 0) stale.set(hash, identity, { ttl: Number.isFinite(ttl) ? ttl : positive.ttl });
      }
    }
    positive.clear();
    this.#scheduleRecheck(0);
  }

  /** How many answers a resync set aside are still waiting to be re-checked (tests, diagnostics). */
  get staleSize(): number {
    return this.#stale?.size ?? 0;
  }

  /**
   * Looks up every set-aside answer again, a few at a time; what the store confirms goes back
   * into the cache (unless something was revoked or changed meanwhile: then the key's next
   * request reads it). While the store does not answer, retries every second; set-aside
   * answers that reach their cache age are dropped by the cache itself.
   */
  #scheduleRecheck(delayMs: number): void {
    if (this.#recheckTimer || this.#recheck || !this.#stale?.size) return;
    this.#recheckTimer = setTimeout(() => {
      this.#recheckTimer = null;
      this.#recheck = this.#recheckStale().then(
        (done) => {
          this.#recheck = null;
          if (!done) this.#scheduleRecheck(1000);
        },
        () => {
          this.#recheck = null;
          this.#scheduleRecheck(1000);
        },
      );
    }, delayMs);
    this.#recheckTimer.unref();
  }

  /** One pass over the set-aside answers; false if the store failed (try again later). */
  async #recheckStale(): Promise<boolean> {
    const stale = this.#stale;
    if (!stale) return true;
    const hashes = [...stale.keys()];
    let failed = false;
    const next = async (): Promise<void> => {
      while (!failed && hashes.length > 0) {
        const hash = hashes.pop()!;
        if (!stale.has(hash)) continue;
        const generation = this.#generation;
        let record: KeyRecord | null;
        try {
          record = await this.#lookup(hash);
        } catch {
          failed = true;
          return;
        }
        if (!stale.has(hash)) continue; // revoked, changed or looked up by a request meanwhile
        stale.delete(hash);
        if (record !== null && generation === this.#generation) this.#positive.set(hash, toIdentity(record, this.#directory));
      }
    };
    await Promise.all(Array.from({ length: 16 }, next));
    return !failed;
  }

  /** The users and groups every identity is resolved with. */
  get directory(): Directory {
    return this.#directory;
  }

  /** New permission groups in config (a reload): cached identities are resolved again. */
  setGroups(groups: PermissionGroups): void {
    this.#directory.setGlobal(groups);
    this.#resolveAgain(null);
  }

  /** StoreFeed: a user or tenant group changed; the tenant's cached identities are resolved again. */
  directoryChanged(change: DirectoryChange): void {
    if (this.#directory.apply(change)) this.#resolveAgain(change.tenant);
  }

  /** StoreFeed: everything the store knows of users and groups (on subscribing, and after a resync). */
  directoryReset(snapshot: DirectorySnapshot): void {
    this.#directory.load(snapshot);
    this.#resolveAgain(null);
  }

  /**
   * Resolves the cached identities (of one tenant, or all) again from their cached records —
   * no store lookup: a record does not change when its user's group does. Keys whose grant
   * changed are reported like changed records (onChanged), so their open exchanges are
   * verified again and a disabled user's streams end.
   */
  #resolveAgain(tenant: string | null): void {
    const changed: string[] = [];
    for (const cache of [this.#positive, this.#stale]) {
      if (cache === null) continue;
      const updates: [string, Identity][] = [];
      for (const [hash, identity] of cache.entries()) {
        if (tenant !== null && identity.record.tenant !== tenant) continue;
        const next = toIdentity(identity.record, this.#directory);
        if (!sameGrant(identity, next)) updates.push([hash, next]);
      }
      // Outside the iteration: set() moves an entry. Each keeps the age it was read at.
      for (const [hash, next] of updates) cache.set(hash, next, { noUpdateTTL: true });
      if (cache === this.#positive) for (const [hash] of updates) changed.push(hash);
    }
    if (changed.length > 0) this.onChanged?.(changed);
  }
}

/**
 * The request path's view of upstream secrets: decrypt on first use, keep the rendered
 * header in memory for a short while (`ttlMs`), forget it as soon as the store announces a
 * change to that secret (on Redis, the push channel the revocations use; on the embedded
 * store, the change log servers poll) or the feed resyncs.
 *
 *   const extra = vault.headerFor(route.config.secret);  // [header, value] | failure | Promise
 *   const signing = vault.valueFor('stripe-signing');      // {value} | failure | Promise
 *
 * Like the key Verifier, a cache hit answers synchronously (no promise, no allocation: the
 * `[header, rendered]` pair is built once per secret and route); a miss makes one store
 * call however many requests wait for it, plus one AES-GCM decryption of a small value.
 * Staleness: with the push feed healthy a cached value is used for up to `ttlMs`; while it
 * is down every request asks the store, and a cached value is used only if the store cannot
 * answer and the value is younger than `ttlMs`. Failures (unknown id, undecryptable) are
 * cached for `ttlMs` too, so a broken route costs one store call and one warning per
 * `ttlMs`, not one per request; adding the secret announces the id and ends that at once.
 *
 * Plaintext lives only in these entries: a sweep every `ttlMs` drops expired ones, and
 * `stop()` drops them all.
 */
import { LastUsed } from '../events/last-used.ts';
import type { Logger } from '../observability/logger.ts';
import { decryptSecret, MASTER_KEY_ENV, type Keyring } from './crypto.ts';
import { isKeygateError } from '../http/problem.ts';
import type { SecretFeed, SecretStore } from './secret-store.ts';

/** What a route says about its secret (config routes[].secret). */
export interface SecretSpec {
  readonly id: string;
  readonly header: string;
  readonly template: string;
}

/** Why a secret could not be injected (logged; the client sees 502 upstream_unavailable). */
export type SecretFailure = 'no_master_key' | 'not_found' | 'undecryptable' | 'store_unavailable';

export type HeaderResult = readonly string[] | SecretFailure;

/** A decrypted value (never logged, never sent anywhere as it is). */
export interface SecretValue {
  readonly value: string;
}

export type ValueResult = SecretValue | SecretFailure;

export const SECRET_FAILURE_TEXT: Record<SecretFailure, string> = {
  no_master_key: `${MASTER_KEY_ENV} is not set`,
  not_found: 'no secret with this id is stored',
  undecryptable: 'the stored value cannot be decrypted with the master keys given',
  store_unavailable: 'the store cannot be reached',
};

interface Entry {
  /** The decrypted value; null when `failure` says why there is none. */
  readonly value: string | null;
  readonly failure: SecretFailure | null;
  readonly at: number;
  /** `[header, rendered template]` per route spec, built on first use. */
  readonly rendered: WeakMap<SecretSpec, readonly string[]>;
}

export interface VaultOptions {
  store: SecretStore & { readonly feedHealthy: boolean };
  keyring: Keyring | null;
  logger: Logger;
  /** How long a decrypted value (or a failure) is kept; default 30 s. */
  ttlMs?: number;
  /** How often last-used times are written; default 60 s. */
  lastUsedFlushMs?: number;
  now?: () => number;
}

/** `{value}` replaced by the value everywhere in the template (no `$&`-style patterns). */
export function renderTemplate(template: string, value: string): string {
  return template.split('{value}').join(value);
}

export class Vault implements SecretFeed {
  readonly #store: VaultOptions['store'];
  readonly #keyring: Keyring | null;
  readonly #logger: Logger;
  readonly #ttlMs: number;
  readonly #lastUsedFlushMs: number;
  readonly #now: () => number;
  readonly #entries = new Map<string, Entry>();
  readonly #inflight = new Map<string, Promise<Entry>>();
  readonly #lastUsed = new LastUsed();
  /** Bumped by every change and resync: a fetch that started before one is not cached. */
  #generation = 0;
  #noKeyWarnedAt = -Infinity;
  #timers: NodeJS.Timeout[] = [];

  constructor(options: VaultOptions) {
    this.#store = options.store;
    this.#keyring = options.keyring;
    this.#logger = options.logger;
    this.#ttlMs = options.ttlMs ?? 30_000;
    this.#lastUsedFlushMs = options.lastUsedFlushMs ?? 60_000;
    this.#now = options.now ?? Date.now;
  }

  /**
   * The `[header, value]` pair to add upstream for this route's secret, a failure, or a
   * Promise of either when the store must be asked.
   */
  headerFor(spec: SecretSpec): HeaderResult | Promise<HeaderResult> {
    const entry = this.#entry(spec.id);
    if (entry === 'no_master_key') return entry;
    if (entry instanceof Promise) return entry.then((fresh) => this.#result(spec, fresh));
    return this.#result(spec, entry);
  }

  /**
   * The secret's value itself, for code that uses it inside keygate rather than sending it
   * on (a webhook signing secret): the same cache, staleness and failure rules as
   * `headerFor`. The object returned stays the same until the value is reloaded, so callers
   * may key what they derive from it on the object (a WeakMap).
   */
  valueFor(id: string): ValueResult | Promise<ValueResult> {
    const entry = this.#entry(id);
    if (entry === 'no_master_key') return entry;
    if (entry instanceof Promise) return entry.then((fresh) => this.#value(id, fresh));
    return this.#value(id, entry);
  }

  /** A fresh cached entry, or a Promise of one from the store. */
  #entry(id: string): Entry | 'no_master_key' | Promise<Entry> {
    if (this.#keyring === null) {
      const now = this.#now();
      if (now - this.#noKeyWarnedAt > 60_000) {
        this.#noKeyWarnedAt = now;
        this.#logger.warn({ secretId: id }, `a route needs an upstream secret but ${MASTER_KEY_ENV} is not set; answering 502`);
      }
      return 'no_master_key';
    }
    const entry = this.#entries.get(id);
    if (entry !== undefined && this.#store.feedHealthy && this.#now() - entry.at < this.#ttlMs) return entry;
    return this.#fetch(id, entry);
  }

  #value(id: string, entry: Entry): ValueResult {
    if (entry.value === null) return entry.failure!;
    this.#lastUsed.mark(id, this.#now());
    return entry as SecretValue;
  }

  #result(spec: SecretSpec, entry: Entry): HeaderResult {
    if (entry.value === null) return entry.failure!;
    let pair = entry.rendered.get(spec);
    if (pair === undefined) {
      pair = [spec.header, renderTemplate(spec.template, entry.value)];
      entry.rendered.set(spec, pair);
    }
    this.#lastUsed.mark(spec.id, this.#now());
    return pair;
  }

  #fetch(id: string, stale: Entry | undefined): Promise<Entry> {
    let pending = this.#inflight.get(id);
    if (pending !== undefined) return pending;
    const generation = this.#generation;
    pending = this.#load(id, stale)
      .then((entry) => {
        // A change announced while the store answered: use the answer this once, keep nothing.
        if (generation === this.#generation && entry.failure !== 'store_unavailable') this.#entries.set(id, entry);
        return entry;
      })
      .finally(() => this.#inflight.delete(id));
    this.#inflight.set(id, pending);
    return pending;
  }

  async #load(id: string, stale: Entry | undefined): Promise<Entry> {
    const now = this.#now();
    let stored;
    try {
      stored = await this.#store.getSecret(id);
    } catch (error) {
      // The store is away: a value decrypted recently is still good; anything else fails closed.
      if (stale !== undefined && stale.value !== null && now - stale.at < this.#ttlMs) return stale;
      this.#logger.warn({ secretId: id, err: { message: (error as Error).message } }, 'upstream secret: the store cannot be reached; answering 502');
      return failed('store_unavailable', now);
    }
    if (stored === null) {
      this.#logger.warn({ secretId: id }, 'upstream secret: a route names a secret that is not stored; answering 502');
      return failed('not_found', now);
    }
    try {
      return { value: decryptSecret(this.#keyring!, id, stored.envelope), failure: null, at: now, rendered: new WeakMap() };
    } catch (error) {
      if (!isKeygateError(error, 'upstream_unavailable')) throw error;
      this.#logger.warn({ secretId: id, keyVersion: stored.envelope.v, reason: error.message }, 'upstream secret refused: it cannot be decrypted; answering 502');
      return failed('undecryptable', now);
    }
  }

  // ---- SecretFeed -----------------------------------------------------------------------

  secretsChanged(ids: readonly string[]): void {
    this.#generation++;
    for (const id of ids) this.#entries.delete(id);
  }

  secretsResync(): void {
    this.#generation++;
    this.#entries.clear();
  }

  // ---- background -----------------------------------------------------------------------

  /** Starts the expiry sweep and the last-used flush. */
  start(): void {
    const sweep = setInterval(() => {
      const now = this.#now();
      for (const [id, e] of this.#entries) if (now - e.at >= this.#ttlMs) this.#entries.delete(id);
    }, this.#ttlMs);
    const flush = setInterval(() => void this.flushLastUsed(), this.#lastUsedFlushMs);
    sweep.unref();
    flush.unref();
    this.#timers.push(sweep, flush);
  }

  async flushLastUsed(): Promise<void> {
    await this.#lastUsed.flush({ touch: (batch) => this.#store.touchSecrets(batch) }).catch((error: unknown) => this.#logger.warn({ err: { message: (error as Error).message } }, 'secret last-used flush failed'));
  }

  /** Stops the timers, writes the last batch and forgets every decrypted value. */
  async stop(): Promise<void> {
    for (const timer of this.#timers) clearInterval(timer);
    this.#timers = [];
    this.#entries.clear();
    await this.flushLastUsed();
  }

  /** Entries held now (tests, diagnostics). */
  get size(): number {
    return this.#entries.size;
  }
}

function failed(failure: SecretFailure, at: number): Entry {
  return { value: null, failure, at, rendered: new WeakMap() };
}

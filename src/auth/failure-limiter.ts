/**
 * The failed-authentication limit (`limits.failedAuth`): bounds what a flood of made-up keys
 * costs the store, per client address and in total — and nothing else.
 *
 * What counts as a failure: a well-formed key that the store does not know (a lookup that
 * found nothing). Nothing else costs the store anything: a malformed key or a bad checksum
 * is refused before any lookup, a revoked or expired key that was seen before is answered
 * from the cache, an access token is checked against cached issuer keys.
 *
 * What a blocked address loses: only the store lookups of keys this instance has never
 * seen. A key the store has vouched for before (`Verifier.isKnown`) is never a guess: it is
 * verified as usual and, when it works, served — so one tenant's revoked key polled in a
 * loop, or a burst of malformed requests, from the egress address of an AI platform does not
 * take the platform's other tenants offline. A key that is not known gets 429 with an exact
 * `Retry-After`, before its hash is even computed.
 *
 * Why serving known keys to a blocked address gives nothing away: keys carry 224 random
 * bits, so no one learns a working key by guessing, and the only "list" an attacker could be
 * checking is a stolen one — which it can spread over as many addresses as it likes anyway.
 * The limit is there for the store's sake, not to keep key holders out.
 *
 * The algorithm is GCRA (a leaky bucket kept as one number per address): up to `max`
 * failures in a burst, refilled continuously at `max` per `windowMs`. The same bucket over
 * every address (`total`, per instance) bounds a flood spread over many addresses: while it
 * is full, keys no instance-local cache knows get 429 from every address. One O(1) cache
 * operation per request with a key, no timers. Addresses live in an LRU of `addresses`
 * entries, so a flood of spoofed sources cannot grow memory without limit.
 *
 * @example
 *   const limiter = FailureLimiter.create(config.limits.failedAuth);
 *   const wait = limiter.retryAfter(req, trustForwarded);   // seconds; 0 = go ahead
 *   // … verify (known keys only while wait > 0) …
 *   if (unknownKey) limiter.failed(req, trustForwarded);
 */
import type { IncomingMessage } from 'node:http';
import { LRUCache } from 'lru-cache';
import type { LimitsConfig } from '../config/limits.ts';
import { clientAddress } from '../http/client-address.ts';

export interface FailureLimiterOptions {
  /** Failed authentications allowed per address in a burst; 0 switches the limiter off. */
  max: number;
  /** `max` (and `total`) failures are forgiven per this many milliseconds. */
  windowMs: number;
  /** Addresses remembered (LRU). */
  addresses: number;
  /** Failed authentications allowed over all addresses together; 0: no such bound. */
  total?: number;
  now?: () => number;
}

/** One GCRA bucket: the theoretical arrival time of its debt, in ms. */
class Bucket {
  readonly interval: number;
  readonly window: number;
  constructor(max: number, window: number) {
    this.window = window;
    this.interval = window / Math.max(max, 1);
  }
  /** Whole seconds until one more failure fits; 0 when it does now. */
  wait(tat: number | undefined, now: number): number {
    if (tat === undefined) return 0;
    // Blocked while one more failure would not fit the window: tat + interval - now > window.
    const waitMs = tat + this.interval - this.window - now;
    // A millionth of the window absorbs the rounding of windowMs / max.
    return waitMs > this.window * 1e-6 ? Math.ceil(waitMs / 1000) : 0;
  }
  next(tat: number | undefined, now: number): number {
    return Math.max(tat ?? now, now) + this.interval;
  }
}

export class FailureLimiter {
  readonly #perAddress: Bucket;
  readonly #total: Bucket | null;
  #totalTat: number | undefined;
  readonly #now: () => number;
  /** Address → theoretical arrival time (ms) of its failure debt. */
  readonly #debt: LRUCache<string, number>;

  constructor(options: FailureLimiterOptions) {
    this.#perAddress = new Bucket(options.max, options.windowMs);
    this.#total = options.total ? new Bucket(options.total, options.windowMs) : null;
    this.#now = options.now ?? Date.now;
    this.#debt = new LRUCache<string, number>({ max: options.addresses });
  }

  /** Null when `limits.failedAuth.max` is 0 (off). */
  static create(options: LimitsConfig['failedAuth']): FailureLimiter | null {
    return options.max > 0 ? new FailureLimiter(options) : null;
  }

  /** Whole seconds before keys not known to this instance are looked up for this address again; 0: now. */
  retryAfterFor(address: string): number {
    const now = this.#now();
    const own = this.#perAddress.wait(this.#debt.get(address), now);
    return this.#total === null ? own : Math.max(own, this.#total.wait(this.#totalTat, now));
  }

  failedFor(address: string): void {
    const now = this.#now();
    this.#debt.set(address, this.#perAddress.next(this.#debt.get(address), now));
    if (this.#total !== null) this.#totalTat = this.#total.next(this.#totalTat, now);
  }

  retryAfter(req: IncomingMessage, trustForwarded: boolean): number {
    return this.retryAfterFor(clientAddress(req, trustForwarded));
  }

  failed(req: IncomingMessage, trustForwarded: boolean): void {
    this.failedFor(clientAddress(req, trustForwarded));
  }

  /** Addresses remembered now (for tests and diagnostics). */
  get size(): number {
    return this.#debt.size;
  }
}

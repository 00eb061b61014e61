/**
 * Failed authentications per client address (`limits.failedAuth`): a client that keeps
 * presenting keys that do not work — malformed, unknown, revoked or expired (401) — is
 * answered 429 `rate_limited` with an exact `Retry-After`, before its key is even looked at,
 * so a blocked flood costs no hashing and no store lookup. Requests without a key, 403s and
 * successful requests are not counted; 503s (store unreachable) are not the client's fault
 * and are not counted either.
 *
 * A blocked address is refused whatever key it sends, valid ones included. Letting valid
 * keys through would tell a credential-stuffing client which keys of its list work (the
 * answer is 200 for those), which is exactly what the limit is there to stop; the price is
 * that clients sharing one address (a NAT, a proxy without `forwarded.trustClient`) are
 * blocked together, which `max` must be generous enough to make rare.
 *
 * The algorithm is GCRA (a leaky bucket kept as one number per address): up to `max`
 * failures in a burst, refilled continuously at `max` per `windowMs`. So after `max`
 * failures in quick succession the next attempt is allowed `windowMs / max` later. One
 * O(1) cache operation per request with a key, no timers. Addresses live in an LRU of
 * `addresses` entries, so a flood of spoofed sources cannot grow memory without limit (it
 * can only evict, and so forget, older addresses).
 *
 * @example
 *   const limiter = new FailureLimiter(config.limits.failedAuth);
 *   const wait = limiter.retryAfter(req, trustForwarded);   // seconds; 0 = go ahead
 *   // … verify …
 *   if (failed) limiter.failed(req, trustForwarded);
 */
import type { IncomingMessage } from 'node:http';
import { LRUCache } from 'lru-cache';
import type { LimitsConfig } from '../config/limits.ts';
import { clientAddress } from '../proxy/client-address.ts';

export interface FailureLimiterOptions {
  /** Failed authentications allowed in a burst; 0 switches the limiter off. */
  max: number;
  /** `max` failures are forgiven per this many milliseconds. */
  windowMs: number;
  /** Addresses remembered (LRU). */
  addresses: number;
  now?: () => number;
}

export class FailureLimiter {
  readonly #interval: number;
  readonly #window: number;
  readonly #now: () => number;
  /** Address → theoretical arrival time (ms) of its failure debt. */
  readonly #debt: LRUCache<string, number>;

  constructor(options: FailureLimiterOptions | LimitsConfig['failedAuth']) {
    this.#window = options.windowMs;
    this.#interval = options.windowMs / Math.max(options.max, 1);
    this.#now = ('now' in options && options.now) || Date.now;
    this.#debt = new LRUCache<string, number>({ max: options.addresses });
  }

  /** Null when `limits.failedAuth.max` is 0 (off). */
  static create(options: LimitsConfig['failedAuth']): FailureLimiter | null {
    return options.max > 0 ? new FailureLimiter(options) : null;
  }

  /** Whole seconds the address must wait before its next attempt; 0 when it may go ahead. */
  retryAfterFor(address: string): number {
    const tat = this.#debt.get(address);
    if (tat === undefined) return 0;
    // Blocked while one more failure would not fit the window: tat + interval - now > window.
    const waitMs = tat + this.#interval - this.#window - this.#now();
    // A millionth of the window absorbs the rounding of windowMs / max.
    return waitMs > this.#window * 1e-6 ? Math.ceil(waitMs / 1000) : 0;
  }

  failedFor(address: string): void {
    const now = this.#now();
    const tat = this.#debt.get(address);
    this.#debt.set(address, Math.max(tat ?? now, now) + this.#interval);
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

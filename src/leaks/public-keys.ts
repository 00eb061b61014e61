/**
 * The public keys GitHub signs secret scanning reports with, fetched from `keysUrl`
 * (GitHub's answers `{ "public_keys": [{ "key_identifier", "key": PEM, "is_current" }] }`)
 * and cached in memory.
 *
 * Fetched on the first report, again when a report names an identifier the cache does not
 * hold (GitHub rotated its key) or the cache is older than an hour (a key GitHub withdrew
 * stops being trusted) — but never more than once per `cooldownMs`, however many reports
 * with made-up identifiers arrive: concurrent lookups share one fetch, and within the
 * cooldown an unknown identifier is simply unknown. A failed fetch keeps the keys already
 * held. Only ECDSA P-256 keys are kept: that is what the protocol signs with.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import type { Logger } from '../observability/logger.ts';

export const KEYS_MAX_AGE_MS = 3_600_000;
const FETCH_TIMEOUT_MS = 5000;
const MAX_RESPONSE_BYTES = 256 * 1024;
const MAX_KEYS = 100;

export type PublicKeyAnswer = KeyObject | 'unknown' | 'unavailable';

export interface PublicKeysOptions {
  url: string;
  cooldownMs: number;
  logger: Logger;
  maxAgeMs?: number;
  timeoutMs?: number;
  fetch?: typeof fetch;
  now?: () => number;
}

/** The usable keys of a `public_keys` document, by identifier; throws if it is not one. */
export function parsePublicKeys(document: unknown, logger?: Logger): Map<string, KeyObject> {
  const list = (document as { public_keys?: unknown } | null)?.public_keys;
  if (!Array.isArray(list)) throw new Error('the answer has no public_keys array');
  const keys = new Map<string, KeyObject>();
  for (const entry of list.slice(0, MAX_KEYS)) {
    const { key_identifier: id, key: pem } = (entry ?? {}) as { key_identifier?: unknown; key?: unknown };
    if (typeof id !== 'string' || id === '' || id.length > 256 || typeof pem !== 'string') continue;
    try {
      const key = createPublicKey(pem);
      if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') throw new Error('not an ECDSA P-256 key');
      keys.set(id, key);
    } catch (error) {
      logger?.warn({ keyIdentifier: id.slice(0, 100), err: { message: (error as Error).message } }, 'secret scanning public key ignored');
    }
  }
  return keys;
}

async function readLimited(res: Response, maxBytes: number): Promise<string> {
  const declared = Number(res.headers.get('content-length') ?? -1);
  if (declared > maxBytes) throw new Error(`the answer is larger than ${maxBytes} bytes`);
  const chunks: Uint8Array[] = [];
  let seen = 0;
  if (res.body !== null) {
    for await (const chunk of res.body) {
      seen += chunk.length;
      if (seen > maxBytes) throw new Error(`the answer is larger than ${maxBytes} bytes`);
      chunks.push(chunk);
    }
  }
  return Buffer.concat(chunks).toString('utf8');
}

export class PublicKeys {
  readonly #url: string;
  readonly #cooldownMs: number;
  readonly #maxAgeMs: number;
  readonly #timeoutMs: number;
  readonly #fetch: typeof fetch;
  readonly #now: () => number;
  readonly #logger: Logger;
  #keys = new Map<string, KeyObject>();
  #loadedAt = -Infinity;
  #triedAt = -Infinity;
  #lastFailed = false;
  #inflight: Promise<void> | null = null;
  /** Fetches started (tests and logs). */
  fetches = 0;

  constructor(options: PublicKeysOptions) {
    this.#url = options.url;
    this.#cooldownMs = options.cooldownMs;
    this.#maxAgeMs = options.maxAgeMs ?? KEYS_MAX_AGE_MS;
    this.#timeoutMs = options.timeoutMs ?? FETCH_TIMEOUT_MS;
    this.#fetch = options.fetch ?? fetch;
    this.#now = options.now ?? Date.now;
    this.#logger = options.logger;
  }

  /**
   * The key for `identifier`; `unknown` when the keys (fetched now, or within the cooldown)
   * do not include it; `unavailable` when it is not held and the last fetch failed.
   */
  async get(identifier: string): Promise<PublicKeyAnswer> {
    const held = this.#keys.get(identifier);
    if (held !== undefined && this.#now() - this.#loadedAt < this.#maxAgeMs) return held;
    if (this.#inflight !== null) await this.#inflight;
    else if (this.#now() - this.#triedAt >= this.#cooldownMs) await this.#refresh();
    const key = this.#keys.get(identifier);
    if (key !== undefined) return key;
    return this.#lastFailed ? 'unavailable' : 'unknown';
  }

  #refresh(): Promise<void> {
    this.#triedAt = this.#now();
    this.fetches++;
    const host = new URL(this.#url).host;
    const run = async (): Promise<void> => {
      try {
        const res = await this.#fetch(this.#url, {
          headers: { accept: 'application/json', 'user-agent': 'keygate' },
          redirect: 'error',
          signal: AbortSignal.timeout(this.#timeoutMs),
        });
        if (!res.ok) {
          await res.body?.cancel();
          throw new Error(`HTTP ${res.status}`);
        }
        const keys = parsePublicKeys(JSON.parse(await readLimited(res, MAX_RESPONSE_BYTES)), this.#logger);
        if (keys.size === 0) throw new Error('the answer lists no usable ECDSA P-256 key');
        this.#keys = keys;
        this.#loadedAt = this.#now();
        this.#lastFailed = false;
        this.#logger.info({ host, keyIdentifiers: [...keys.keys()].map((id) => id.slice(0, 100)) }, 'secret scanning public keys fetched');
      } catch (error) {
        this.#lastFailed = true;
        this.#logger.warn({ host, err: { message: (error as Error).message } }, 'secret scanning public keys could not be fetched; keeping the keys already held');
      }
    };
    const inflight: Promise<void> = run().finally(() => {
      if (this.#inflight === inflight) this.#inflight = null;
    });
    this.#inflight = inflight;
    return inflight;
  }
}

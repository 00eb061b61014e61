/**
 * The webhook stage of the request path (routes with a `webhook:` section): nothing reaches
 * the upstream before the sender's signature over the whole body has been verified.
 *
 *   signature headers (and, for Twilio, the URL) present and well-formed → timestamp within the tolerance → signing
 *   secrets (vault; sync on a cache hit) → [100 Continue] → body read into memory, bounded
 *   by maxBodyBytes, HMACs computed as it streams → constant-time comparison → timestamp
 *   again (a slow upload may have outlived it) → replay claim in the store → forward the
 *   exact bytes
 *
 * The cheap checks come first, so a delivery with missing or stale signature headers costs
 * no buffering and no store call; the replay id is claimed only once the signature
 * verified, so nobody without the secret can use up ids. Failures answer with their own
 * problem codes; the store or the secrets being unreachable fails closed (503).
 *
 * Usage (server.ts, transports/http.ts):
 *   const webhooks = new WebhookVerifier({ secrets: vault, replay: store, metrics: new WebhookMetrics(registry), logger });
 *   const result = webhooks.verify(exchange, expectContinue);   // Refusal | Promise<VerifiedDelivery | Refusal>
 */
import { settle, type Stage } from '../pipeline/pipeline.ts';
import type { RouteConfig } from '../config/schema.ts';
import type { Logger } from '../observability/logger.ts';
import { RETRY, type Refusal } from '../auth/refusals.ts';
import type { AuthOutcome, HttpExchange } from '../pipeline/exchange.ts';
import { hasBody, PayloadTooLargeError } from '../http/body-limit.ts';
import type { ProblemCode } from '../http/problem.ts';
import type { SecretValue, ValueResult } from '../secrets/vault.ts';
import type { ReplayStore } from '../store/replay-store.ts';
import type { WebhookConfig } from '../config/webhooks.ts';
import type { WebhookCounters, WebhookMetrics, WebhookResult } from './metrics.ts';
import { BodyAbortedError, BodyTimeoutError, readBody } from '../http/read-body.ts';
import type { HeaderProblem, Scheme, SignedParts } from './scheme.ts';
import { schemeFor } from './schemes.ts';
import { SignatureCheck, replayTtlMs, timestampProblem } from './signature.ts';

/** What the gateway forwards for a verified delivery (exchange.delivery). */
export interface VerifiedDelivery {
  /** The body exactly as received; null when the request had none. */
  readonly body: Buffer | null;
  /** Value of headers.webhook upstream: `<scheme>;secret="<id of the secret that matched>"`. */
  readonly verified: string;
  /** headers.tenant upstream (signature-only routes with `webhook.tenant`), else null. */
  readonly tenant: string | null;
  /** The replay claim made for it (null: `replay: false`), given back if the upstream fails (`release`). */
  readonly claim: string | null;
}

export type DeliveryResult = VerifiedDelivery | Refusal;

export function isDeliveryRefusal(result: DeliveryResult): result is Refusal {
  return (result as Refusal).code !== undefined;
}

/** Where signing secrets come from (secrets/vault.ts). */
export interface SigningSecrets {
  valueFor(id: string): ValueResult | Promise<ValueResult>;
}

export interface WebhookVerifierOptions {
  /** null: keygate has no vault (no master key was ever loaded) — webhook routes answer 502. */
  secrets: SigningSecrets | null;
  replay: ReplayStore;
  metrics: WebhookMetrics;
  logger: Logger;
  now?: () => number;
}

/** A route's webhook section with everything derived from it once. */
interface Compiled {
  readonly route: string;
  readonly config: WebhookConfig;
  readonly scheme: Scheme;
  readonly maxBodyBytes: number;
  readonly idleMs: number;
  readonly counters: WebhookCounters;
  /** `headers.webhook` values, one per secret. */
  readonly verified: readonly string[];
  readonly challenge: Record<string, string>;
}

const WARN_EVERY_MS = 30_000;

export class WebhookVerifier {
  readonly #o: WebhookVerifierOptions;
  readonly #now: () => number;
  readonly #compiled = new WeakMap<RouteConfig, Compiled>();
  /** HMAC keys derived from secret values, per scheme (a value object is replaced when the vault reloads it). */
  readonly #keys = new WeakMap<Scheme, WeakMap<SecretValue, Buffer | null>>();
  readonly #warnedAt = new Map<string, number>();

  constructor(options: WebhookVerifierOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
  }

  /** Derives each webhook route's state (and its metric series) up front; routes added by a reload are prepared on first use. */
  prepare(routes: readonly RouteConfig[]): void {
    for (const route of routes) if (route.webhook !== undefined) this.#compile(route);
  }

  /**
   * A refusal synchronously when the headers or the secrets already decide it; otherwise a
   * Promise that settles once the body has been read and verified (and the replay claimed).
   */
  verify(exchange: HttpExchange, expectContinue: boolean): DeliveryResult | Promise<DeliveryResult> {
    const c = this.#compile(exchange.route!.config);
    const parts = c.scheme.parse(exchange.req.headers, exchange.req.url);
    if ('problem' in parts) return this.#refuseHeaders(c, parts);
    if (parts.timestamp !== null) {
      const stale = timestampProblem(parts.timestamp, this.#now(), c.config.toleranceSeconds);
      if (stale !== null) return this.#refuse(c, 'expired', 'signature_expired', 'expired', stale, c.challenge);
    }
    const ids = c.config.secrets;
    const values: (ValueResult | Promise<ValueResult>)[] = ids.map((id) => (this.#o.secrets === null ? 'no_master_key' : this.#o.secrets.valueFor(id)));
    if (values.some((v) => v instanceof Promise)) {
      return Promise.all(values).then((resolved) => this.#withSecrets(exchange, c, parts, resolved, expectContinue));
    }
    return this.#withSecrets(exchange, c, parts, values as ValueResult[], expectContinue);
  }

  #withSecrets(exchange: HttpExchange, c: Compiled, parts: SignedParts, values: readonly ValueResult[], expectContinue: boolean): DeliveryResult | Promise<DeliveryResult> {
    const keys: Buffer[] = [];
    /** Index into config.secrets of each usable key. */
    const which: number[] = [];
    let storeDown = false;
    values.forEach((value, i) => {
      const id = c.config.secrets[i]!;
      if (typeof value === 'string') {
        storeDown ||= value === 'store_unavailable';
        return;
      }
      const key = this.#keyOf(c.scheme, value);
      if (key === null) {
        this.#warn(`unusable:${c.route}:${id}`, { route: c.route, secretId: id, scheme: c.scheme.name }, c.scheme.name === 'standard' ? 'webhook signing secret is not "whsec_<base64>"; it cannot verify anything' : 'webhook signing secret is empty');
        return;
      }
      keys.push(key);
      which.push(i);
    });
    if (keys.length === 0) {
      // The vault has logged why (with the secret id); the sender learns nothing about the secret.
      if (storeDown) return this.#refuse(c, 'unavailable', 'auth_unavailable', 'unavailable', 'the signing secret cannot be read from the store; try again shortly', RETRY);
      return this.#refuse(c, 'unavailable', 'upstream_unavailable', 'unavailable', "this route's signing secret is not available");
    }
    if (expectContinue) exchange.res.writeContinue();
    return this.#read(exchange, c, parts, keys, which, storeDown);
  }

  async #read(exchange: HttpExchange, c: Compiled, parts: SignedParts, keys: Buffer[], which: number[], storeDown: boolean): Promise<DeliveryResult> {
    const req = exchange.req;
    const check = new SignatureCheck(parts, keys, c.config.replay ? { replayOf: c.scheme.name } : {});
    let body: Buffer;
    try {
      body = await readBody(req, c.maxBodyBytes, c.idleMs, (chunk) => check.update(chunk));
    } catch (error) {
      if (error instanceof PayloadTooLargeError) return this.#refuse(c, 'too_large', 'payload_too_large', 'bad_request', error.message);
      c.counters.aborted.inc();
      // Silent too long: drop the connection (nothing useful can be said to a client that stopped sending).
      if (error instanceof BodyTimeoutError) exchange.res.destroy();
      if (!(error instanceof BodyAbortedError) && !(error instanceof BodyTimeoutError)) this.#o.logger.debug({ route: c.route, err: { message: (error as Error).message } }, 'webhook body read failed');
      return { code: 'bad_request', outcome: 'bad_request', detail: 'the request body did not arrive', headers: undefined };
    }
    const { matched, replayId, problem } = check.finish(body);
    if (problem !== undefined) return this.#refuse(c, 'invalid', 'invalid_signature', 'invalid', problem, c.challenge);
    if (matched === -1) {
      // A secret that could not be read might have been the one that signed: not "invalid" then.
      if (storeDown) return this.#refuse(c, 'unavailable', 'auth_unavailable', 'unavailable', 'a signing secret cannot be read from the store; try again shortly', RETRY);
      return this.#refuse(c, 'invalid', 'invalid_signature', 'invalid', 'no signature matches the body (it must reach keygate exactly as the sender signed it)', c.challenge);
    }
    const now = this.#now();
    if (parts.timestamp !== null) {
      const stale = timestampProblem(parts.timestamp, now, c.config.toleranceSeconds);
      if (stale !== null) return this.#refuse(c, 'expired', 'signature_expired', 'expired', stale, c.challenge);
    }
    if (replayId !== null) {
      let first: boolean;
      try {
        first = await this.#o.replay.claimOnce(replayId, replayTtlMs(parts.timestamp, now, c.config.toleranceSeconds));
      } catch (error) {
        this.#warn('replay-store', { err: { message: (error as Error).message } }, 'webhook replay check: the store cannot be reached; refusing deliveries (503)');
        return this.#refuse(c, 'unavailable', 'auth_unavailable', 'unavailable', 'the replay check cannot reach the store; try again shortly', RETRY);
      }
      if (!first) return this.#refuse(c, 'replayed', 'replayed_delivery', 'invalid', 'this signed delivery was already accepted; a sender retry carries a new timestamp and signature');
    }
    c.counters.ok.inc();
    const index = which[matched]!;
    return { body: body.length === 0 && !hasBody(req) ? null : body, verified: c.verified[index]!, tenant: c.config.tenant ?? null, claim: replayId };
  }

  /**
   * The delivery never reached a working upstream (it failed, answered 5xx, or keygate could
   * not forward it): its replay claim is given back, so the sender's retry of the very same
   * delivery — GitHub's redelivery, Shopify's and Twilio's retries carry the same signature —
   * is not refused as a replay. A retry can only repeat what failed; a delivery the upstream
   * took stays claimed. Never throws; a store that cannot answer leaves the claim to expire.
   */
  release(delivery: VerifiedDelivery): void {
    if (delivery.claim === null) return;
    this.#o.replay.releaseClaim(delivery.claim).catch((error: unknown) => this.#warn('replay-release', { err: { message: (error as Error).message } }, 'webhook replay claim could not be given back after an upstream failure; a retry is refused until it expires'));
  }

  #refuseHeaders(c: Compiled, parts: HeaderProblem): Refusal {
    return parts.problem === 'missing_signature'
      ? this.#refuse(c, 'missing', 'missing_signature', 'missing', parts.detail, c.challenge)
      : this.#refuse(c, 'invalid', 'invalid_signature', 'invalid', parts.detail, c.challenge);
  }

  #refuse(c: Compiled, result: WebhookResult, code: ProblemCode, outcome: AuthOutcome, detail: string, headers?: Record<string, string>): Refusal {
    c.counters[result].inc();
    return { code, outcome, detail, headers };
  }

  #keyOf(scheme: Scheme, value: SecretValue): Buffer | null {
    let cache = this.#keys.get(scheme);
    if (cache === undefined) this.#keys.set(scheme, (cache = new WeakMap()));
    let key = cache.get(value);
    if (key === undefined) {
      key = scheme.key(value.value);
      cache.set(value, key);
    }
    return key;
  }

  #compile(route: RouteConfig): Compiled {
    let c = this.#compiled.get(route);
    if (c === undefined) {
      const config = route.webhook!;
      c = {
        route: route.name,
        config,
        scheme: schemeFor(config, route.pathPrefix),
        maxBodyBytes: route.maxBodyBytes,
        idleMs: route.timeouts.idleMs,
        counters: this.#o.metrics.forRoute(route.name),
        verified: config.secrets.map((id) => `${config.scheme};secret="${id}"`),
        challenge: { 'www-authenticate': `Webhook-Signature realm="keygate", scheme="${config.scheme}"` },
      };
      this.#compiled.set(route, c);
    }
    return c;
  }

  /** One warning per `key` per 30 s, never with a secret or a signature in it. */
  #warn(key: string, fields: Record<string, unknown>, message: string): void {
    const now = this.#now();
    if (now - (this.#warnedAt.get(key) ?? -Infinity) < WARN_EVERY_MS) return;
    this.#warnedAt.set(key, now);
    this.#o.logger.warn(fields, message);
  }
}

const NO_VERIFIER: Refusal = { code: 'upstream_unavailable', outcome: 'unavailable', detail: 'webhook signatures cannot be verified by this keygate', headers: undefined };

function delivered(exchange: HttpExchange, result: DeliveryResult): Refusal | undefined {
  if (isDeliveryRefusal(result)) return result;
  exchange.delivery = result;
  // A public webhook route: the signature was the authentication.
  if (exchange.identity === null) exchange.outcome = 'ok';
  return undefined;
}

/**
 * The webhook-signature stage (routes with `webhook`): the whole body is read and its
 * signature verified before anything goes upstream; the forward stage then sends exactly
 * those bytes. null: this keygate cannot verify signatures, such routes answer 502.
 */
export function webhookStage(webhooks: WebhookVerifier | null): Stage<HttpExchange> {
  return {
    name: 'webhook signature',
    applies: (route) => route.config.webhook !== undefined,
    run(exchange) {
      if (webhooks === null) return NO_VERIFIER;
      return settle(webhooks.verify(exchange, exchange.expectContinue), (result) => delivered(exchange, result));
    },
  };
}

/**
 * RFC 7662 token introspection, for opaque access tokens (tokens that are not JWTs keygate can
 * verify itself). An `oauth.issuers[]` entry with `introspection` has keygate ask the issuer:
 *
 *   POST <endpoint>
 *   Authorization: Basic base64(urlencode(clientId) ":" urlencode(secret))   (RFC 6749 §2.3.1)
 *   Content-Type: application/x-www-form-urlencoded
 *
 *   token=<token>&token_type_hint=access_token                                (RFC 7662 §2.1)
 *
 * and takes the JSON answer (§2.2) only when it is a 200 with `"active": true`; what the
 * claims must then say (aud, exp, iss) is checked by access-token.ts, as for a JWT.
 *
 * What it costs the issuer is bounded here, whatever arrives: at most `maxConcurrent`
 * introspections under way, at most `maxPending` waiting for one of those places (each for at
 * most `timeoutMs`); past that a token gets `introspection_busy` (503, Retry-After) at once,
 * without a request. One undici Pool per issuer, created with it. Every request is bounded
 * by `timeoutMs` (connect, headers and body) and its answer by MAX_ANSWER_BYTES. The token
 * and the secret are never logged: a failure logs the issuer's name, the HTTP status or the
 * error's message (undici's never carry a body), at most once per 5 s with a count.
 *
 * The client secret is read from the environment variable `clientSecretEnv` (never from the
 * file): `introspectionSecret()` is what `serve` and `config check` run first (cli/environment.ts),
 * so a variable that is not set is an exit 2 naming the field, not a 503 later.
 *
 * @example
 *   const introspector = new Introspector(issuerConfig.introspection, secret, 'corp', logger);
 *   const answer = await introspector.introspect(token);  // claims | 'inactive' | 'unavailable' | 'busy'
 */
import { Pool } from 'undici';
import type { IssuerConfig } from '../config/mcp.ts';
import { ConfigError } from '../config/load.ts';
import type { Logger } from '../observability/logger.ts';

export type IntrospectionConfig = NonNullable<IssuerConfig['introspection']>;

/** A JSON object the endpoint said is active: the token's claims (RFC 7662 §2.2). */
export type ActiveClaims = Record<string, unknown>;
export type IntrospectionAnswer = ActiveClaims | 'inactive' | 'unavailable' | 'busy';

/** An introspection answer larger than this is not one (they are a few hundred bytes). */
const MAX_ANSWER_BYTES = 64 * 1024;

/** The secret of an issuer's introspection client, or a ConfigError naming the field (never a value). */
export function introspectionSecret(issuer: IssuerConfig, index: number, env: NodeJS.ProcessEnv): string {
  const name = issuer.introspection!.clientSecretEnv;
  const value = env[name];
  if (value === undefined || value === '') {
    throw new ConfigError('the environment', [`oauth.issuers[${index}].introspection.clientSecretEnv: the environment variable ${name} is not set (it must hold the client secret keygate introspects tokens with)`]);
  }
  return value;
}

/** What `serve` and `config check` run: every introspection secret is there. */
export function checkIntrospectionSecrets(issuers: readonly IssuerConfig[], env: NodeJS.ProcessEnv): void {
  issuers.forEach((issuer, i) => {
    if (issuer.introspection !== undefined) introspectionSecret(issuer, i, env);
  });
}

/** RFC 6749 §2.3.1: client id and secret are form-urlencoded before they are joined and base64-encoded. */
function formEncode(value: string): string {
  return encodeURIComponent(value).replace(/%20/g, '+');
}

export class Introspector {
  readonly #config: IntrospectionConfig;
  readonly #issuer: string;
  readonly #logger: Logger;
  readonly #pool: Pool;
  readonly #path: string;
  readonly #authorization: string;
  #active = 0;
  readonly #waiting: (() => void)[] = [];
  #lastWarning = 0;
  #suppressed = 0;

  constructor(config: IntrospectionConfig, secret: string, issuerName: string, logger: Logger) {
    this.#config = config;
    this.#issuer = issuerName;
    this.#logger = logger;
    const url = new URL(config.endpoint);
    this.#path = url.pathname + url.search;
    this.#authorization = `Basic ${Buffer.from(`${formEncode(config.clientId)}:${formEncode(secret)}`).toString('base64')}`;
    this.#pool = new Pool(url.origin, {
      connections: config.maxConcurrent,
      connect: { timeout: config.timeoutMs },
      headersTimeout: config.timeoutMs,
      bodyTimeout: config.timeoutMs,
      keepAliveTimeout: 30_000,
    });
  }

  /** Introspections under way and waiting, for tests and metrics. */
  get load(): { active: number; waiting: number } {
    return { active: this.#active, waiting: this.#waiting.length };
  }

  async introspect(token: string): Promise<IntrospectionAnswer> {
    if (!(await this.#acquire())) return 'busy';
    try {
      return await this.#ask(token);
    } finally {
      this.#release();
    }
  }

  /** A place among maxConcurrent; false when none is free within timeoutMs or too many already wait. */
  #acquire(): Promise<boolean> | boolean {
    if (this.#active < this.#config.maxConcurrent) {
      this.#active++;
      return true;
    }
    if (this.#waiting.length >= this.#config.maxPending) return false;
    return new Promise<boolean>((resolve) => {
      const waiter = () => {
        clearTimeout(timer);
        this.#active++;
        resolve(true);
      };
      const timer = setTimeout(() => {
        const at = this.#waiting.indexOf(waiter);
        if (at !== -1) this.#waiting.splice(at, 1);
        resolve(false);
      }, this.#config.timeoutMs);
      timer.unref();
      this.#waiting.push(waiter);
    });
  }

  #release(): void {
    this.#active--;
    this.#waiting.shift()?.();
  }

  async #ask(token: string): Promise<IntrospectionAnswer> {
    const body = `token=${encodeURIComponent(token)}&token_type_hint=access_token`;
    let status: number;
    let text: string;
    try {
      const res = await this.#pool.request({
        path: this.#path,
        method: 'POST',
        headers: {
          authorization: this.#authorization,
          'content-type': 'application/x-www-form-urlencoded',
          accept: 'application/json',
        },
        body,
        signal: AbortSignal.timeout(this.#config.timeoutMs),
      });
      status = res.statusCode;
      if (status !== 200) {
        await res.body.dump();
        this.#warn({ status }, 'token introspection answered an error: tokens of this issuer get 503');
        return 'unavailable';
      }
      const declared = Number(res.headers['content-length']);
      if (declared > MAX_ANSWER_BYTES) {
        await res.body.dump();
        this.#warn({ status, bytes: declared }, 'token introspection answer too large: tokens of this issuer get 503');
        return 'unavailable';
      }
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (size > MAX_ANSWER_BYTES) {
          res.body.destroy();
          this.#warn({ status }, 'token introspection answer too large: tokens of this issuer get 503');
          return 'unavailable';
        }
        chunks.push(chunk);
      }
      text = Buffer.concat(chunks).toString('utf8');
    } catch (error) {
      this.#warn({ err: { message: (error as Error).message, code: (error as { code?: string }).code } }, 'token introspection failed: tokens of this issuer get 503');
      return 'unavailable';
    }
    let answer: unknown;
    try {
      answer = JSON.parse(text);
    } catch {
      this.#warn({ status }, 'token introspection answer is not JSON: tokens of this issuer get 503');
      return 'unavailable';
    }
    if (answer === null || typeof answer !== 'object' || Array.isArray(answer) || typeof (answer as ActiveClaims).active !== 'boolean') {
      this.#warn({ status }, 'token introspection answer has no boolean "active": tokens of this issuer get 503');
      return 'unavailable';
    }
    // RFC 7662 §2.2: "active" is the one member that must be there; only exactly true counts.
    return (answer as ActiveClaims).active === true ? (answer as ActiveClaims) : 'inactive';
  }

  /** One warning per 5 s with a count, not one per token, while the endpoint misbehaves. */
  #warn(fields: Record<string, unknown>, message: string): void {
    const now = Date.now();
    if (now - this.#lastWarning < 5000) {
      this.#suppressed++;
      return;
    }
    this.#logger.warn({ issuer: this.#issuer, ...fields, failuresSinceLast: this.#suppressed }, message);
    this.#lastWarning = now;
    this.#suppressed = 0;
  }

  close(): Promise<void> {
    return this.#pool.close().catch(() => this.#pool.destroy());
  }
}

/**
 * GitHub's secret scanning partner protocol
 * (https://docs.github.com/en/code-security/secret-scanning/secret-scanning-partnership-program/secret-scanning-partner-program):
 *
 *   POST <leakReports.github.path>
 *   Github-Public-Key-Identifier: <key_identifier>
 *   Github-Public-Key-Signature: <base64 DER ECDSA P-256 / SHA-256 signature of the raw body>
 *
 *   [{ "token": "kg_acme_…", "type": "keygate_api_key", "url": "https://github.com/…", "source": "content" }, …]
 *
 * answered 200 with one feedback entry per reported token, in order:
 *
 *   [{ "token_hash": "<lowercase hex SHA-256 of the token>", "token_type": "keygate_api_key", "label": "true_positive" }, …]
 *
 * The signature is the only credential (no API key): checked against the public key GitHub
 * names, from `keysUrl` (public-keys.ts), before the body is parsed. Refusals are
 * problem+json: 401 `missing_signature` / `invalid_signature` (nothing is done), 400
 * `bad_request` (signed, but not a list of reports), 413 `payload_too_large` (over
 * `maxBodyBytes`, refused before reading when the length is declared), 405 for anything
 * but POST, 503 `auth_unavailable` when the public keys cannot be fetched or the store does
 * not answer (GitHub retries). A token is never logged, echoed or stored: feedback names it
 * by its SHA-256, logs by the key id it matched.
 */
import { createHash, verify, type KeyObject } from 'node:crypto';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { GitHubLeakConfig } from '../config/leak-reports.ts';
import type { Logger } from '../observability/logger.ts';
import { hasBody, lingeringClose, PayloadTooLargeError } from '../http/body-limit.ts';
import { sendProblem, type ProblemCode } from '../http/problem.ts';
import { BodyAbortedError, BodyTimeoutError, readBody } from '../http/read-body.ts';
import type { LeakedKeys, LeakLabel, LeakOutcome } from './leaked-keys.ts';
import type { PublicKeyAnswer } from './public-keys.ts';

export const GITHUB_ACTOR = 'github-secret-scanning';
const IDENTIFIER_HEADER = 'github-public-key-identifier';
const SIGNATURE_HEADER = 'github-public-key-signature';
const BODY_IDLE_MS = 10_000;
/** A DER ECDSA P-256 signature is at most 72 bytes (96 base64 characters); leave room. */
const MAX_SIGNATURE_CHARS = 256;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

export interface GitHubReport {
  token: string;
  type: string;
  url: string | null;
  source: string | null;
}

export interface GitHubFeedback {
  token_hash: string;
  token_type: string;
  label: LeakLabel;
}

/** The lowercase hex SHA-256 of a token: how feedback names it. */
export function tokenHash(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** Whether `signature` (base64 DER) is `key`'s ECDSA P-256/SHA-256 signature of `body`. */
export function verifyGitHubSignature(body: Buffer, signature: string, key: KeyObject): boolean {
  if (signature.length > MAX_SIGNATURE_CHARS || !BASE64.test(signature)) return false;
  try {
    return verify('sha256', body, { key, dsaEncoding: 'der' }, Buffer.from(signature, 'base64'));
  } catch {
    return false;
  }
}

/** The reports in a body, or a reason it is not a list of them. */
export function parseGitHubReports(body: Buffer): GitHubReport[] | string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    return 'the body is not JSON';
  }
  if (!Array.isArray(parsed)) return 'the body must be a JSON array of reports';
  const reports: GitHubReport[] = [];
  for (const [i, entry] of parsed.entries()) {
    if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) return `report [${i}] is not an object`;
    const { token, type, url, source } = entry as Record<string, unknown>;
    if (typeof token !== 'string' || token === '') return `report [${i}] has no token string`;
    reports.push({
      token,
      type: typeof type === 'string' ? type : '',
      url: typeof url === 'string' ? url : null,
      source: typeof source === 'string' ? source : null,
    });
  }
  return reports;
}

function single(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return typeof value === 'string' && value !== '' ? value.trim() : undefined;
}

export interface GitHubLeakHandlerOptions {
  config: GitHubLeakConfig;
  keys: { get(identifier: string): Promise<PublicKeyAnswer> };
  leaked: LeakedKeys;
  logger: Logger;
}

const RETRY = { 'retry-after': '60' };

export class GitHubLeakHandler {
  readonly #o: GitHubLeakHandlerOptions;
  /** Refusals are logged at most once per 5 s (with a count): anyone can send them. */
  #refusalLoggedAt = 0;
  #refusalsSuppressed = 0;

  constructor(options: GitHubLeakHandlerOptions) {
    this.#o = options;
  }

  handle(req: IncomingMessage, res: ServerResponse, expectContinue = false): void {
    this.#handle(req, res, expectContinue).catch((error: unknown) => {
      this.#o.logger.error({ err: { message: (error as Error).message } }, 'secret scanning report failed');
      this.#refuse(req, res, 'internal_error', 'the report could not be processed; try again', undefined, false);
    });
  }

  #refuse(req: IncomingMessage, res: ServerResponse, code: ProblemCode, detail: string, headers: Record<string, string> | undefined, log = true, bodyUnread = false): void {
    if (log) {
      const now = Date.now();
      if (now - this.#refusalLoggedAt >= 5000) {
        this.#o.logger.warn({ code, detail, suppressedSinceLast: this.#refusalsSuppressed }, 'secret scanning report refused');
        this.#refusalLoggedAt = now;
        this.#refusalsSuppressed = 0;
      } else this.#refusalsSuppressed++;
    }
    sendProblem(res, code, detail, headers, bodyUnread);
    if (bodyUnread) lingeringClose(req);
  }

  async #handle(req: IncomingMessage, res: ServerResponse, expectContinue: boolean): Promise<void> {
    const { config, keys, leaked, logger } = this.#o;
    if (req.method !== 'POST') {
      return this.#refuse(req, res, 'method_not_allowed', 'secret scanning reports are POSTed', { allow: 'POST' }, false, hasBody(req) && !expectContinue);
    }
    const identifier = single(req.headers, IDENTIFIER_HEADER);
    const signature = single(req.headers, SIGNATURE_HEADER);
    // Refused before the body was read: the answer closes the connection (lingeringClose).
    const unread = !expectContinue && hasBody(req);
    if (identifier === undefined || signature === undefined) {
      return this.#refuse(req, res, 'missing_signature', 'the report needs the Github-Public-Key-Identifier and Github-Public-Key-Signature headers', undefined, true, unread);
    }
    if (identifier.length > 256) return this.#refuse(req, res, 'invalid_signature', 'Github-Public-Key-Identifier is too long', undefined, true, unread);
    const declared = Number(req.headers['content-length'] ?? -1);
    if (declared > config.maxBodyBytes) {
      return this.#refuse(req, res, 'payload_too_large', `the report is larger than ${config.maxBodyBytes} bytes`, undefined, true, unread);
    }
    if (expectContinue) res.writeContinue();
    let body: Buffer;
    try {
      body = await readBody(req, config.maxBodyBytes, BODY_IDLE_MS, () => {});
    } catch (error) {
      if (error instanceof PayloadTooLargeError) return this.#refuse(req, res, 'payload_too_large', `the report is larger than ${config.maxBodyBytes} bytes`, undefined, true, true);
      if (error instanceof BodyTimeoutError || error instanceof BodyAbortedError) {
        res.destroy();
        return;
      }
      throw error;
    }
    const key = await keys.get(identifier);
    if (key === 'unavailable') return this.#refuse(req, res, 'auth_unavailable', "GitHub's public keys could not be fetched; try again shortly", RETRY);
    if (key === 'unknown') return this.#refuse(req, res, 'invalid_signature', 'Github-Public-Key-Identifier names no current GitHub secret scanning key', undefined);
    if (!verifyGitHubSignature(body, signature, key)) {
      return this.#refuse(req, res, 'invalid_signature', 'the signature does not match the body (it must reach keygate exactly as GitHub signed it)', undefined);
    }
    const reports = parseGitHubReports(body);
    if (typeof reports === 'string') return this.#refuse(req, res, 'bad_request', reports, undefined);

    const feedback: GitHubFeedback[] = [];
    const outcomes: Partial<Record<LeakOutcome, number>> = {};
    const keyIds = new Set<string>();
    try {
      for (const report of reports) {
        const result = await leaked.report(report.token, report);
        feedback.push({ token_hash: tokenHash(report.token), token_type: report.type, label: result.label });
        outcomes[result.outcome] = (outcomes[result.outcome] ?? 0) + 1;
        if (result.keyId !== null) keyIds.add(result.keyId);
      }
    } catch (error) {
      // What was done so far stands (and is idempotent): GitHub sends the whole report again.
      logger.warn({ err: { message: (error as Error).message }, done: feedback.length, of: reports.length, keyIds: [...keyIds] }, 'secret scanning report: the key store did not answer');
      return this.#refuse(req, res, 'auth_unavailable', 'the key store did not answer; try again shortly', RETRY, false);
    }
    logger.info({ reporter: 'github', keyIdentifier: identifier.slice(0, 100), reports: reports.length, outcomes, keyIds: [...keyIds] }, 'secret scanning report');
    const text = JSON.stringify(feedback);
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
    res.end(text);
  }
}

/**
 * Errors from keygate itself: `application/problem+json` (RFC 9457) with the stable codes
 * of CONTRACT.md. The `detail` never contains a key, a hash or a secret.
 */
import type { ServerResponse } from 'node:http';

export const PROBLEMS = {
  missing_credentials: { status: 401, title: 'Missing credentials' },
  invalid_key: { status: 401, title: 'Invalid API key' },
  key_revoked: { status: 401, title: 'API key revoked' },
  key_expired: { status: 401, title: 'API key expired' },
  // A key that acts as a user (permissionsFrom: user) whose user is disabled.
  user_disabled: { status: 401, title: 'User disabled' },
  invalid_token: { status: 401, title: 'Invalid access token' },
  conflicting_credentials: { status: 400, title: 'Conflicting credentials' },
  bad_request: { status: 400, title: 'Bad request' },
  missing_signature: { status: 401, title: 'Missing webhook signature' },
  invalid_signature: { status: 401, title: 'Invalid webhook signature' },
  signature_expired: { status: 401, title: 'Webhook signature expired' },
  forbidden_permission: { status: 403, title: 'Missing permission' },
  forbidden_tenant: { status: 403, title: 'Wrong tenant' },
  forbidden_client: { status: 403, title: 'Client not allowed' },
  forbidden_origin: { status: 403, title: 'Origin not allowed' },
  // A sandbox key on a route without a sandbox upstream (keys/format.ts, README "Sandbox keys").
  forbidden_environment: { status: 403, title: 'Environment not served' },
  forbidden: { status: 403, title: 'Forbidden' },
  // The admin listener's web console (src/admin/console/).
  invalid_session: { status: 401, title: 'Session not valid' },
  csrf_rejected: { status: 403, title: 'Cross-site request refused' },
  no_route: { status: 404, title: 'No route' },
  not_found: { status: 404, title: 'Not found' },
  method_not_allowed: { status: 405, title: 'Method not allowed' },
  request_timeout: { status: 408, title: 'Request timeout' },
  conflict: { status: 409, title: 'Conflict' },
  replayed_delivery: { status: 409, title: 'Replayed webhook delivery' },
  payload_too_large: { status: 413, title: 'Payload too large' },
  unsupported_media_type: { status: 415, title: 'Unsupported media type' },
  // The admin listener, for a Host it is not configured to answer (admin.hosts: DNS rebinding).
  misdirected_request: { status: 421, title: 'Misdirected request' },
  validation_failed: { status: 422, title: 'Validation failed' },
  rate_limited: { status: 429, title: 'Too many requests' },
  quota_exhausted: { status: 429, title: 'Quota exhausted' },
  headers_too_large: { status: 431, title: 'Request header fields too large' },
  internal_error: { status: 500, title: 'Internal error' },
  upstream_unavailable: { status: 502, title: 'Upstream unavailable' },
  auth_unavailable: { status: 503, title: 'Authentication unavailable' },
  // A rate-limited route with onStoreError: closed, while the store that decides cannot be reached.
  limit_unavailable: { status: 503, title: 'Rate limit unavailable' },
  upstream_timeout: { status: 504, title: 'Upstream timeout' },
} as const;

export type ProblemCode = keyof typeof PROBLEMS;

export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  code: ProblemCode;
  detail: string;
}

export function problemBody(code: ProblemCode, detail: string): ProblemBody {
  const { status, title } = PROBLEMS[code];
  return { type: `urn:keygate:problem:${code}`, title, status, code, detail };
}

/**
 * Writes a problem response. `close` asks the client to open a new connection, used when a
 * request body was refused unread.
 */
export function sendProblem(res: ServerResponse, code: ProblemCode, detail: string, headers?: Record<string, string>, close = false): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify(problemBody(code, detail));
  res.statusCode = PROBLEMS[code].status;
  res.setHeader('content-type', 'application/problem+json');
  res.setHeader('content-length', Buffer.byteLength(body));
  res.setHeader('cache-control', 'no-store');
  if (headers) for (const name in headers) res.setHeader(name, headers[name]!);
  if (close) res.setHeader('connection', 'close');
  res.end(body);
}

/**
 * keygate's own errors, whichever layer throws them: the problem code they answer with
 * (PROBLEMS gives the status and title), the message as the answer's detail, and for bad
 * input the field at fault. Any layer answers `sendProblem(res, error.code, error.message)`
 * without knowing where the error came from, and the CLI's exit status comes from the code
 * (cli/args.ts). Anything thrown that is not a KeygateError is a failure inside keygate or a
 * dependency: 500 internal_error, logged. Subclasses exist only where a caller tells one
 * case apart from the others of its code (ConfigError's `problems`, StoreUnavailableError,
 * …); they never change the answer.
 */
export class KeygateError extends Error {
  override name = 'KeygateError';
  readonly code: ProblemCode;
  /** The field, flag or variable at fault, e.g. `tenant`, `body.name` or `KEYGATE_MASTER_KEY` (bad input, mostly). */
  readonly field: string | undefined;
  constructor(code: ProblemCode, message: string, options?: { field?: string; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.field = options?.field;
  }

  get status(): number {
    return PROBLEMS[this.code].status;
  }
}

/**
 * A named kind of KeygateError with a fixed code, for failures that callers tell apart by
 * class (`instanceof`) — the store's, a body's — without an instanceof chain to map codes.
 *
 * @example
 *   export const StoreUnavailableError = problemKind('StoreUnavailableError', 'auth_unavailable');
 *   throw new StoreUnavailableError('Redis did not answer within 250 ms');
 */
export function problemKind(name: string, code: ProblemCode) {
  return class extends KeygateError {
    override name = name;
    constructor(message: string) {
      super(code, message);
    }
  };
}

/** Whether `error` is keygate's own, with `code` when given. */
export function isKeygateError(error: unknown, code?: ProblemCode): error is KeygateError {
  return error instanceof KeygateError && (code === undefined || error.code === code);
}

/** Bad input, `<field>: <what is wrong>`: 422 validation_failed (exit 2 in the CLI). */
export function invalidField(field: string, rule: string): KeygateError {
  return new KeygateError('validation_failed', `${field}: ${rule}`, { field });
}

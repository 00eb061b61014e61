/**
 * The console's only way to talk to keygate: same-origin fetch to the admin API (/v1/…)
 * and the session endpoints, with the session cookie the browser attaches by itself and
 * the CSRF token on every state-changing request. The token lives in this module's memory
 * only (a reload fetches it again); the admin key typed at sign-in is sent once, in
 * `signIn`, and kept nowhere.
 */

/**
 * @typedef {{ id: string, tenant: string, name: string, role: 'api-user' | 'admin', permissions: string[], group: string | null,
 *   user: string | null, client: string | null, status: 'active' | 'expired' | 'revoked', prefix: string, createdAt: string,
 *   expiresAt: string | null, revokedAt: string | null, revokesAt: string | null, lastUsedAt: string | null }} KeyRecord
 * @typedef {KeyRecord & { key: string }} CreatedKey
 * @typedef {CreatedKey & { previous: KeyRecord }} RotatedKey
 * @typedef {{ id: string, name: string, createdAt: string, lastUsedAt: string | null, keyVersion: string }} SecretRecord
 * @typedef {{ id: string, at: string, actor: string | null, action: string, tenant: string | null, target: string | null,
 *   detail: Record<string, string | number | boolean | null> }} AuditEntry
 * @typedef {{ tenant: string, active: number, expired: number, revoked: number }} TenantSummary
 * @typedef {{ key: { id: string, name: string, prefix: string, tenant: string, role: string },
 *   scope: { platform: boolean, tenant: string | null },
 *   session: { signedInAt: string, expiresAt: string, endsAt: string, idleMs: number },
 *   csrfToken: string, systemTenant: string, keyPrefix: string,
 *   permissionGroups: Record<string, string[]>,
 *   secrets: { manage: boolean, masterKey: boolean } }} SessionInfo
 */

export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {string} code keygate's problem code
   * @param {string} detail
   */
  constructor(status, code, detail) {
    super(detail);
    this.status = status;
    this.code = code;
    this.detail = detail;
  }
}

/** @type {string | null} */
let csrfToken = null;
/** @type {((reason: string) => void) | null} */
let onSessionEnd = null;
/** @type {(() => void) | null} */
let onActivity = null;

/**
 * @param {{ csrfToken: string | null, onSessionEnd: (reason: string) => void, onActivity: () => void }} options
 */
export function configure(options) {
  csrfToken = options.csrfToken;
  onSessionEnd = options.onSessionEnd;
  onActivity = options.onActivity;
}

export function forgetSession() {
  csrfToken = null;
}

/** @param {Response} res */
async function problemOf(res) {
  try {
    const body = await res.json();
    return new ApiError(res.status, String(body.code ?? 'error'), String(body.detail ?? res.statusText));
  } catch {
    return new ApiError(res.status, 'error', `keygate answered ${res.status} ${res.statusText}`);
  }
}

/**
 * @param {string} method
 * @param {string} path
 * @param {unknown} [body]
 * @returns {Promise<any>}
 */
export async function request(method, path, body) {
  /** @type {Record<string, string>} */
  const headers = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && csrfToken !== null) headers['x-csrf-token'] = csrfToken;
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin', cache: 'no-store' });
  } catch {
    throw new ApiError(0, 'network', 'keygate cannot be reached. Check that it is running, then try again.');
  }
  if (res.status === 401) {
    const problem = await problemOf(res);
    onSessionEnd?.(problem.detail);
    throw problem;
  }
  if (!res.ok) throw await problemOf(res);
  onActivity?.();
  if (res.status === 204) return null;
  return res.json();
}

/**
 * Exchanges the admin key for a session. The key is in this call's argument and the
 * request header only; the caller has already emptied the form field.
 * @param {string} key
 * @returns {Promise<SessionInfo>}
 */
export async function signIn(key) {
  let res;
  try {
    res = await fetch('/console/api/session', { method: 'POST', headers: { accept: 'application/json', 'x-api-key': key }, credentials: 'same-origin', cache: 'no-store' });
  } catch {
    throw new ApiError(0, 'network', 'keygate cannot be reached. Check that it is running, then try again.');
  }
  if (!res.ok) throw await problemOf(res);
  return res.json();
}

/** @returns {Promise<SessionInfo | null>} the current session, or null when not signed in */
export async function currentSession() {
  const res = await fetch('/console/api/session', { headers: { accept: 'application/json' }, credentials: 'same-origin', cache: 'no-store' });
  if (res.status === 401) return null;
  if (!res.ok) throw await problemOf(res);
  return res.json();
}

export async function signOut() {
  await request('DELETE', '/console/api/session');
}

/** @param {Record<string, string | undefined>} params */
export function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) if (value !== undefined && value !== '') search.set(name, value);
  const text = search.toString();
  return text ? `?${text}` : '';
}

/**
 * The admin listener: operations endpoints, the admin API and the web console. Bound to
 * 127.0.0.1 by default; it never shares a port with the proxy.
 *
 * It answers only the Host names it is configured for (`admin.hosts`; adminAccess below):
 * a web page whose name an attacker re-points at 127.0.0.1 (DNS rebinding) reaches the
 * listener with its own name in Host, and gets 421 `misdirected_request` for every path.
 * With `admin.metricsTokenEnv`, GET /metrics also wants `Authorization: Bearer <token>`.
 */
import { hash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import { bearerToken, CONFLICT } from '../auth/extract.ts';
import type { MetricsSource } from '../cluster/metrics-ipc.ts';
import { ConfigError } from '../config/load.ts';
import type { Config } from '../config/schema.ts';
import type { KeyStore } from '../store/key-store.ts';
import { sendProblem } from '../http/problem.ts';
import { sendJson } from '../http/json.ts';
import { openApiDocument } from './openapi.ts';

export interface AdminOptions {
  store: KeyStore;
  /** True once shutdown has begun: /readyz says 503 so load balancers stop sending traffic. */
  draining?: () => boolean;
  /** Served at GET /metrics (cluster-wide under `workers: N`). */
  metrics?: MetricsSource;
  /** The /v1/… admin API (api.ts). */
  api?: (req: IncomingMessage, res: ServerResponse, path: string, search: URLSearchParams) => void;
  /** The web console: every path under /console (console/console.ts). */
  console?: (req: IncomingMessage, res: ServerResponse, path: string) => void;
  /** Which Host names are answered and what /metrics requires (adminAccess); left out: any Host, /metrics open. */
  access?: AdminAccess;
  /** GET /.well-known/jwks.json: the public keys upstreams verify signed identities with. */
  jwks?: () => unknown;
}

export interface AdminAccess {
  /** Lower-case host names answered on any port, and `name:port` entries answered on that port only. */
  readonly hosts: ReadonlySet<string>;
  /** SHA-256 of the token /metrics requires as `Authorization: Bearer`; null: /metrics is open. */
  readonly metricsToken: Buffer | null;
}

/** Shorter than this, a /metrics token could be guessed. */
const MIN_METRICS_TOKEN = 16;
const WILDCARD = new Set(['0.0.0.0', '::', '[::]']);
const HOST = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::([0-9]{1,5}))?$/;

/**
 * The admin section's access rules. `admin.hosts` when given; by default localhost,
 * 127.0.0.1, [::1], `admin.host` (unless it is a wildcard such as 0.0.0.0) and the host of
 * `admin.console.origin`. Whatever the list, an IP address in Host is always answered: DNS
 * rebinding needs a name, and health checks address the listener by IP. Throws a
 * ConfigError (naming the field and the variable, never a value) when `metricsTokenEnv`
 * names a variable that is unset or too short.
 */
export function adminAccess(admin: Pick<Config['admin'], 'host' | 'hosts' | 'metricsTokenEnv' | 'console'>, env: NodeJS.ProcessEnv): AdminAccess {
  let hosts: string[];
  if (admin.hosts !== undefined) hosts = admin.hosts;
  else {
    hosts = ['localhost', '127.0.0.1', '[::1]'];
    const own = admin.host.toLowerCase();
    if (!WILDCARD.has(own)) hosts.push(isIP(own) === 6 ? `[${own}]` : own);
    if (admin.console.origin !== undefined) hosts.push(new URL(admin.console.origin).hostname.toLowerCase());
  }
  let metricsToken: Buffer | null = null;
  if (admin.metricsTokenEnv !== undefined) {
    const name = admin.metricsTokenEnv;
    const value = env[name];
    if (value === undefined || value === '') throw new ConfigError('the environment', [`admin.metricsTokenEnv: the environment variable ${name} is not set (it must hold the token GET /metrics requires)`]);
    if (value.length < MIN_METRICS_TOKEN || /\s|,/.test(value)) {
      throw new ConfigError('the environment', [`admin.metricsTokenEnv: the environment variable ${name} must hold at least ${MIN_METRICS_TOKEN} characters, without spaces or commas (e.g. openssl rand -hex 32)`]);
    }
    metricsToken = hash('sha256', value, 'buffer');
  }
  return { hosts: new Set(hosts.map(withoutTrailingDot)), metricsToken };
}

function withoutTrailingDot(host: string): string {
  const colon = host.startsWith('[') ? host.indexOf(':', host.indexOf(']')) : host.indexOf(':');
  const name = colon === -1 ? host : host.slice(0, colon);
  const port = colon === -1 ? '' : host.slice(colon);
  return (name.endsWith('.') ? name.slice(0, -1) : name) + port;
}

/** Whether the request's one Host is a name this listener answers (any IP address is). */
export function hostAllowed(req: IncomingMessage, hosts: ReadonlySet<string>): boolean {
  const raw = req.rawHeaders;
  let copies = 0;
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.length === 4 && raw[i]!.toLowerCase() === 'host') copies++;
  if (copies > 1) return false;
  const host = req.headers.host;
  // node refuses HTTP/1.1 without Host (400); HTTP/1.0 clients (no browser) may leave it out.
  if (host === undefined) return true;
  const match = HOST.exec(host);
  if (match === null) return false;
  let name = match[1]!.toLowerCase();
  if (name.endsWith('.')) name = name.slice(0, -1);
  if (name.startsWith('[') ? isIP(name.slice(1, -1)) === 6 : isIP(name) === 4) return true;
  return hosts.has(name) || (match[2] !== undefined && hosts.has(`${name}:${match[2]}`));
}

/** 401 unless the request carries the /metrics token (compared in constant time, as digests). */
function metricsRefused(req: IncomingMessage, res: ServerResponse, expected: Buffer): boolean {
  const token = bearerToken(req.headers.authorization);
  if (token === undefined || token === CONFLICT) {
    sendProblem(res, 'missing_credentials', 'GET /metrics needs Authorization: Bearer <token> (admin.metricsTokenEnv)', { 'www-authenticate': 'Bearer realm="keygate-metrics"' });
    return true;
  }
  if (!timingSafeEqual(hash('sha256', token, 'buffer'), expected)) {
    sendProblem(res, 'invalid_token', 'the /metrics token is not the configured one', { 'www-authenticate': 'Bearer realm="keygate-metrics", error="invalid_token"' });
    return true;
  }
  return false;
}

async function ready(store: KeyStore, draining: boolean): Promise<{ ok: boolean; checks: Record<string, string> }> {
  const checks: Record<string, string> = { config: 'ok', shutdown: draining ? 'draining' : 'ok' };
  try {
    await store.ping();
    checks.store = 'ok';
  } catch (error) {
    checks.store = `unreachable: ${(error as Error).message}`;
  }
  checks.revocationFeed = store.feedHealthy ? 'ok' : 'disconnected';
  return { ok: Object.values(checks).every((v) => v === 'ok'), checks };
}

export function createAdminServer(options: AdminOptions): Server {
  const access = options.access;
  return createServer((req: IncomingMessage, res: ServerResponse) => {
    if (access !== undefined && !hostAllowed(req, access.hosts)) {
      // Before anything else, console and API included; the Host is not echoed back.
      sendProblem(res, 'misdirected_request', 'this admin listener does not answer for the Host sent (admin.hosts)', undefined, true);
      return;
    }
    const url = new URL(req.url ?? '/', 'http://admin');
    const path = url.pathname;
    if (path.startsWith('/v1/') && options.api) {
      options.api(req, res, path, url.searchParams);
      return;
    }
    if ((path === '/console' || path.startsWith('/console/')) && options.console) {
      options.console(req, res, path);
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      sendProblem(res, 'method_not_allowed', `${req.method} is not allowed here`);
      return;
    }
    if (path === '/healthz') {
      sendJson(res, 200, { status: 'ok' });
    } else if (path === '/metrics' && options.metrics) {
      if (access?.metricsToken && metricsRefused(req, res, access.metricsToken)) return;
      const source = options.metrics;
      source.text().then(
        (text) => {
          res.writeHead(200, { 'content-type': source.contentType, 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
          res.end(req.method === 'HEAD' ? undefined : text);
        },
        () => sendProblem(res, 'internal_error', 'metrics could not be collected'),
      );
    } else if (path === '/openapi.json') {
      sendJson(res, 200, openApiDocument());
    } else if (path === '/.well-known/jwks.json' && options.jwks) {
      // The public keys of signed-identity assertions (auth/identity-signer.ts): cacheable for
      // a while, since the next period's key is published a whole period ahead.
      res.setHeader('cache-control', 'public, max-age=300');
      sendJson(res, 200, options.jwks());
    } else if (path === '/readyz') {
      ready(options.store, options.draining?.() ?? false).then(
        (result) => sendJson(res, result.ok ? 200 : 503, { status: result.ok ? 'ready' : 'not ready', checks: result.checks }),
        () => sendJson(res, 503, { status: 'not ready' }),
      );
    } else {
      sendProblem(res, 'not_found', 'no such admin endpoint');
    }
  });
}

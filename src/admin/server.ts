/**
 * The admin listener: operations endpoints, the admin API and the web console. Bound to
 * 127.0.0.1 by default; it never shares a port with the proxy.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { MetricsSource } from '../cluster/metrics-ipc.ts';
import type { KeyStore } from '../store/key-store.ts';
import { sendProblem } from '../proxy/problem.ts';
import { sendJson } from './body.ts';
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
  return createServer((req: IncomingMessage, res: ServerResponse) => {
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

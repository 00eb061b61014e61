/**
 * The web console on the admin listener, under /console/: the page and its files, and the
 * session endpoints it signs in and out with. Everything else the page does goes through
 * the admin API (/v1/…), authenticated by the session cookie (sessions.ts), so the console
 * has no rules of its own about keys or secrets.
 *
 *   GET    /console/              the page
 *   GET    /console/<file>        its scripts, stylesheet, icon
 *   POST   /console/api/session   sign in: X-Api-Key of an admin key → session cookie + CSRF token
 *   GET    /console/api/session   who is signed in, the CSRF token, what the page may offer
 *   DELETE /console/api/session   sign out
 *
 * @example
 *   const app = createConsole({ config: config.admin.console, pepper, store, ... });
 *   createAdminServer({ console: app.handle, api: createAdminApi({ ..., authenticate: app.authenticate }) });
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isKeygateError, sendProblem } from '../../http/problem.ts';
import type { SecretService } from '../../secrets/service.ts';
import type { Authenticate } from '../authenticate.ts';
import { sendJson } from '../../http/json.ts';
import { Assets, setSecurityHeaders } from './assets.ts';
import { ConsoleSessions, type ConsoleSessionsOptions, type Session } from './sessions.ts';

export const CONSOLE_PATH = '/console';

export interface ConsoleOptions extends ConsoleSessionsOptions {
  /** Key prefix of this deployment (the sign-in form checks the shape of what is typed). */
  keyPrefix: string;
  secrets?: SecretService;
}

export interface Console {
  /** For the admin listener: every path under /console. */
  handle(req: IncomingMessage, res: ServerResponse, path: string): void;
  /** The admin API's authenticator: keys as before, plus the console's session cookie. */
  authenticate: Authenticate;
}

const iso = (ms: number) => new Date(ms).toISOString();

export function createConsole(options: ConsoleOptions): Console {
  const sessions = new ConsoleSessions(options);
  const assets = new Assets();
  const { logger } = options;

  /** What the page needs to know about its session and what it may offer. */
  const describe = (session: Session) => {
    const { record, caller, payload } = session;
    const platform = caller.tenant === null;
    return {
      key: { id: record.id, name: record.name, prefix: record.prefix, tenant: record.tenant, role: record.role },
      scope: { platform, tenant: caller.tenant },
      session: { signedInAt: iso(payload.iat), expiresAt: iso(payload.exp), endsAt: iso(payload.max), idleMs: options.config.sessionIdleMs },
      csrfToken: sessions.csrfToken(session),
      systemTenant: options.systemTenant,
      keyPrefix: options.keyPrefix,
      // The groups keys of the caller's own tenant may use (a platform admin's: the system tenant's and the config's).
      permissionGroups: options.directory.groupsOf(record.tenant),
      secrets: { manage: platform && options.secrets !== undefined, masterKey: options.secrets?.keyring != null },
    };
  };

  async function session(req: IncomingMessage, res: ServerResponse): Promise<void> {
    switch (req.method) {
      case 'POST': {
        const started = await sessions.start(req, res);
        if (started) sendJson(res, 200, describe(started));
        return;
      }
      case 'GET': {
        const current = await sessions.resolve(req, res);
        if (current) sendJson(res, 200, describe(current));
        return;
      }
      case 'DELETE':
        if (await sessions.end(req, res)) {
          res.writeHead(204);
          res.end();
        }
        return;
      default:
        sendProblem(res, 'method_not_allowed', `${req.method} is not allowed on ${CONSOLE_PATH}/api/session`, { allow: 'GET, POST, DELETE' });
    }
  }

  function handle(req: IncomingMessage, res: ServerResponse, path: string): void {
    setSecurityHeaders(res);
    if (path === `${CONSOLE_PATH}/api/session`) {
      session(req, res).catch((error: unknown) => {
        if (!isKeygateError(error)) {
          logger.error({ err: { message: (error as Error).message, name: (error as Error).name } }, 'console session request failed');
          sendProblem(res, 'internal_error', 'the request failed inside keygate');
        } else if (error.code === 'auth_unavailable') sendProblem(res, 'auth_unavailable', 'the key store cannot be reached', { 'retry-after': '1' });
        else sendProblem(res, error.code, error.message);
      });
      return;
    }
    const name = path === `${CONSOLE_PATH}/` ? 'index.html' : path.startsWith(`${CONSOLE_PATH}/`) && path !== `${CONSOLE_PATH}/index.html` ? path.slice(CONSOLE_PATH.length + 1) : null;
    if (path !== CONSOLE_PATH && (name === null || !assets.has(name))) {
      sendProblem(res, 'not_found', 'no such console page');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      sendProblem(res, 'method_not_allowed', `${req.method} is not allowed on ${path}`, { allow: 'GET, HEAD' });
      return;
    }
    if (path === CONSOLE_PATH) {
      res.writeHead(308, { location: `${CONSOLE_PATH}/`, 'content-length': 0 });
      res.end();
      return;
    }
    assets.serve(req, res, name!);
  }

  return { handle, authenticate: sessions.authenticator() };
}

/**
 * The admin API (/v1/…): authenticate the caller with its keygate key, decide which
 * tenants it manages (KeyService.callerFor), validate the request with the schemas that
 * also make /openapi.json, and hand the work to KeyService — the same rules the CLI uses.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Verifier } from '../auth/verify.ts';
import { ConfigError } from '../config/load.ts';
import type { EventSink } from '../events/event-sink.ts';
import { toPublic } from '../keys/record.ts';
import { KeyService, type Caller } from '../keys/service.ts';
import { createKeyAuthenticator, type Authenticate } from './authenticate.ts';
import type { Logger } from '../observability/logger.ts';
import { invalidField, isKeygateError, KeygateError, sendProblem } from '../http/problem.ts';
import { readJson, sendJson } from '../http/json.ts';
import { auditQuery, createKeyBody, listKeysQuery, renameKeyBody, rotateKeyBody, topUpBody } from './schemas.ts';
import type { SecretService } from '../secrets/service.ts';
import { parse, query, type AdminRoute, type Handler } from './routes.ts';
import { secretRoutes } from './secret-routes.ts';
import { directoryRoutes } from './directory-routes.ts';
import { usageRoutes } from './usage-routes.ts';
import type { UsageStore } from '../store/usage-store.ts';
import type { UserService } from '../users/service.ts';
import type { QuotaService } from '../limits/quota-service.ts';

export interface AdminApiOptions {
  service: KeyService;
  verifier: Verifier;
  events: EventSink;
  systemTenant: string;
  logger: Logger;
  /** /v1/secrets (platform admins only); without it those endpoints answer 404. */
  secrets?: SecretService;
  /** /v1/users and /v1/groups. */
  users: UserService;
  /** Budgets: GET /v1/keys/{id}/quota, top-ups. */
  quotas: QuotaService;
  /** Per-key usage: GET /v1/keys/{id}/usage, GET /v1/tenants/{tenant}/usage (usage-routes.ts); without it those answer 404. */
  usage?: Pick<UsageStore, 'readUsage'>;
  /** POST /v1/reload (platform admins only). */
  reload?: () => { applied: string[]; restartNeeded: string[] };
  /** How callers are recognised; by default their key (authenticate.ts). The console adds its session cookie. */
  authenticate?: Authenticate;
}

export function createAdminApi(options: AdminApiOptions): (req: IncomingMessage, res: ServerResponse, path: string, search: URLSearchParams) => void {
  const { service, logger } = options;
  const authenticate = options.authenticate ?? createKeyAuthenticator(options);
  const routes: AdminRoute[] = [
    [
      'POST',
      /^\/v1\/reload$/,
      async (ctx) => {
        if (ctx.caller.tenant !== null) throw new KeygateError('forbidden', 'only a platform admin may reload the configuration');
        if (!options.reload) throw new KeygateError('conflict', 'this keygate has no config file to reload');
        try {
          return { status: 200, body: options.reload() };
        } catch (error) {
          if (error instanceof ConfigError) throw new KeygateError('validation_failed', `the new configuration was refused, the old one is still in force: ${error.problems.join('; ')}`);
          throw error;
        }
      },
    ],
    [
      'POST',
      /^\/v1\/keys$/,
      async (ctx) => {
        const body = parse(createKeyBody, await readJson(ctx.req), 'body');
        const tenant = body.tenant ?? ctx.caller.tenant;
        if (tenant === null) throw invalidField('tenant', 'is required for a platform admin');
        const created = await service.create(ctx.caller, { ...body, tenant });
        return { status: 201, body: { ...toPublic(created.record), key: created.key } };
      },
    ],
    [
      'GET',
      /^\/v1\/keys$/,
      async (ctx) => {
        const q = parse(listKeysQuery, query(ctx), 'query');
        const unusedDays = q.unusedDays === undefined ? undefined : Number(q.unusedDays);
        const records = await service.list(ctx.caller, { tenant: q.tenant, includeRevoked: q.revoked === 'true', prefix: q.prefix, environment: q.environment, unusedDays });
        // One `now` for the whole answer: every status is keyState at the same instant.
        const now = Date.now();
        // What is left of each budget, for the keys that have one (one pipelined read each).
        const left = await Promise.all(records.map((r) => (r.quota === null ? null : options.quotas.keyStatus(r))));
        return { status: 200, body: { keys: records.map((r, i) => (left[i] ? { ...toPublic(r, now), quotaRemaining: left[i].remaining } : toPublic(r, now))) } };
      },
    ],
    ['GET', /^\/v1\/keys\/([^/]+)$/, async (ctx) => ({ status: 200, body: toPublic(await service.get(ctx.caller, ctx.params[0]!)) })],
    [
      'PATCH',
      /^\/v1\/keys\/([^/]+)$/,
      async (ctx) => {
        const body = parse(renameKeyBody, await readJson(ctx.req), 'body');
        if (body.name === undefined && body.rateLimits === undefined && body.quota === undefined) throw invalidField('body', 'give name, rateLimits and/or quota');
        let record = body.name === undefined ? null : await service.rename(ctx.caller, ctx.params[0]!, body.name);
        if (body.rateLimits !== undefined) record = await service.setRateLimits(ctx.caller, ctx.params[0]!, body.rateLimits);
        if (body.quota !== undefined) record = await service.setQuota(ctx.caller, ctx.params[0]!, body.quota);
        return { status: 200, body: toPublic(record!) };
      },
    ],
    [
      'GET',
      /^\/v1\/keys\/([^/]+)\/quota$/,
      async (ctx) => {
        const record = await service.get(ctx.caller, ctx.params[0]!);
        const tenant = await options.users.tenantLimits({ ...ctx.caller, tenant: null }, record.tenant);
        const statuses = await Promise.all([options.quotas.keyStatus(record), options.quotas.tenantStatus(record.tenant, tenant.quota)]);
        return { status: 200, body: { id: record.id, quotas: statuses.filter((q) => q !== null) } };
      },
    ],
    [
      'POST',
      /^\/v1\/keys\/([^/]+)\/quota\/top-up$/,
      async (ctx) => {
        const record = await service.get(ctx.caller, ctx.params[0]!);
        const body = parse(topUpBody, await readJson(ctx.req), 'body');
        return { status: 200, body: await options.quotas.topUpKey(ctx.caller, record, body.amount) };
      },
    ],
    ['POST', /^\/v1\/keys\/([^/]+)\/revoke$/, async (ctx) => ({ status: 200, body: toPublic((await service.revoke(ctx.caller, ctx.params[0]!)).record) })],
    [
      'POST',
      /^\/v1\/keys\/([^/]+)\/rotate$/,
      async (ctx) => {
        const body = parse(rotateKeyBody, await readJson(ctx.req), 'body');
        const rotated = await service.rotate(ctx.caller, ctx.params[0]!, body.overlapSeconds, body.expires);
        const now = Date.now();
        return { status: 201, body: { ...toPublic(rotated.record, now), key: rotated.key, previous: toPublic(rotated.previous, now) } };
      },
    ],
    ['GET', /^\/v1\/tenants$/, async (ctx) => ({ status: 200, body: { tenants: await service.tenants(ctx.caller) } })],
    [
      'POST',
      /^\/v1\/tenants\/([^/]+)\/keys\/revoke$/,
      async (ctx) => {
        const tenant = ctx.params[0]!;
        return { status: 200, body: { tenant, revoked: await service.revokeTenant(ctx.caller, tenant) } };
      },
    ],
    ...directoryRoutes(options.users, options.quotas),
    ...usageRoutes(service, options.usage),
    ...secretRoutes(options.secrets),
    [
      'GET',
      /^\/v1\/audit$/,
      async (ctx) => {
        const q = parse(auditQuery, query(ctx), 'query');
        const limit = Math.min(Math.max(Number(q.limit ?? 100), 1), 500);
        const page = await service.audit(ctx.caller, { before: q.before, limit });
        return { status: 200, body: { entries: page.entries.map((e) => ({ ...e, at: new Date(e.at).toISOString() })), next: page.next } };
      },
    ],
  ];

  function fail(res: ServerResponse, error: unknown): void {
    if (!isKeygateError(error)) {
      logger.error({ err: { message: (error as Error).message, name: (error as Error).name } }, 'admin request failed');
      sendProblem(res, 'internal_error', 'the request failed inside keygate');
    } else if (error.code === 'auth_unavailable') {
      // The key store (Redis) cannot be reached or did not answer in time (store/key-store.ts):
      // 503 with Retry-After, as for a request that cannot be authenticated. A write may still
      // have been applied; repeating it is safe (docs/redis.md, "Timeouts, retries and outages").
      logger.warn({ err: { message: error.message } }, 'admin request: key store unavailable');
      sendProblem(res, 'auth_unavailable', `the key store cannot be reached: ${error.message}; try again (a write may already have been applied: repeating it is safe)`, { 'retry-after': '1' });
    } else sendProblem(res, error.code, error.message);
  }

  return (req, res, path, search) => {
    let handler: Handler | undefined;
    let params: string[] = [];
    let pathKnown = false;
    for (const [method, pattern, h] of routes) {
      const match = pattern.exec(path);
      if (!match) continue;
      pathKnown = true;
      if (method !== req.method) continue;
      handler = h;
      try {
        params = match.slice(1).map((p) => decodeURIComponent(p));
      } catch {
        sendProblem(res, 'bad_request', 'the path is not valid percent-encoding');
        return;
      }
      break;
    }
    if (handler === undefined) {
      sendProblem(res, pathKnown ? 'method_not_allowed' : 'not_found', pathKnown ? `${req.method} is not allowed on ${path}` : 'no such admin endpoint');
      return;
    }
    const run = handler;
    (async () => {
      const caller = await authenticate(req, res);
      if (caller === null) return;
      const result = await run({ caller, req, params, query: search });
      sendJson(res, result.status, result.body);
    })().catch((error: unknown) => fail(res, error));
  };
}

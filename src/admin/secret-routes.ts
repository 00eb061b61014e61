/**
 * /v1/secrets: upstream secrets, for platform admins only. A value is written once and
 * never read back (secrets/service.ts). The list and /v1/secrets/{id}/usages say where the
 * configuration in force names each secret (secrets/usages.ts); DELETE refuses (409) to
 * remove one it names unless `?force=true`.
 */
import { invalidField, KeygateError } from '../http/problem.ts';
import { readJson } from '../http/json.ts';
import type { Caller } from '../keys/service.ts';
import { toPublicSecret } from '../secrets/secret-store.ts';
import { SecretInUseError, type SecretService } from '../secrets/service.ts';
import { toPublicUsage } from '../secrets/usages.ts';
import { parse, query, type AdminRoute, type Context } from './routes.ts';
import { createSecretBody, removeSecretQuery, secretIdParam, updateSecretBody } from './schemas.ts';

/** The {id} of /v1/secrets/{id}…: 422 naming `path.id` when it cannot be a secret id. */
const pathId = (ctx: Context): string => parse(secretIdParam, ctx.params[0]!, 'path.id');

/** `?force=true|false`, given once at most. */
function force(ctx: Context): boolean {
  if (ctx.query.getAll('force').length > 1) throw invalidField('query.force', 'must be given once');
  return parse(removeSecretQuery, query(ctx), 'query').force === 'true';
}

/** @param service without it (no vault configured) every endpoint answers 404. */
export function secretRoutes(service: SecretService | undefined): AdminRoute[] {
  /** Platform admins only: checked before the body is even read. */
  const secretService = (caller: Caller): SecretService => {
    if (caller.tenant !== null) throw new KeygateError('forbidden', 'only a platform admin may manage upstream secrets');
    if (!service) throw new KeygateError('not_found', 'upstream secrets are not available on this keygate');
    return service;
  };
  return [
    [
      'POST',
      /^\/v1\/secrets$/,
      async (ctx) => {
        const secrets = secretService(ctx.caller);
        const body = parse(createSecretBody, await readJson(ctx.req), 'body');
        return { status: 201, body: toPublicSecret(await secrets.add(ctx.caller, body)) };
      },
    ],
    [
      'GET',
      /^\/v1\/secrets$/,
      async (ctx) => {
        const secrets = secretService(ctx.caller);
        const list = await secrets.list(ctx.caller);
        return { status: 200, body: { secrets: list.map((s) => ({ ...toPublicSecret(s), usages: secrets.usagesOf(s.id).map(toPublicUsage) })) } };
      },
    ],
    [
      'GET',
      /^\/v1\/secrets\/([^/]+)\/usages$/,
      async (ctx) => {
        const secrets = secretService(ctx.caller);
        const report = await secrets.usages(ctx.caller, pathId(ctx));
        return { status: 200, body: { id: report.id, name: report.name, stored: report.stored, usages: report.usages.map(toPublicUsage) } };
      },
    ],
    [
      'PATCH',
      /^\/v1\/secrets\/([^/]+)$/,
      async (ctx) => {
        const secrets = secretService(ctx.caller);
        const raw = await readJson(ctx.req);
        if (raw !== null && typeof raw === 'object' && 'value' in raw) {
          throw invalidField('body.value', 'a secret\'s value cannot change; add a new secret and repoint the routes to it');
        }
        const body = parse(updateSecretBody, raw, 'body');
        return { status: 200, body: toPublicSecret(await secrets.rename(ctx.caller, ctx.params[0]!, body)) };
      },
    ],
    [
      'DELETE',
      /^\/v1\/secrets\/([^/]+)$/,
      async (ctx) => {
        const secrets = secretService(ctx.caller);
        const id = pathId(ctx);
        const forced = force(ctx);
        // What the removal breaks: the configuration in force just before it.
        const usages = forced ? secrets.usagesOf(id) : [];
        try {
          const removed = await secrets.remove(ctx.caller, id, { force: forced });
          return { status: 200, body: { ...toPublicSecret(removed), removed: true, usages: usages.map(toPublicUsage) } };
        } catch (error) {
          if (error instanceof SecretInUseError) throw new KeygateError('conflict', `${error.message} (DELETE with ?force=true)`);
          throw error;
        }
      },
    ],
  ];
}

/**
 * /v1/secrets: upstream secrets, for platform admins only. A value is written once and
 * never read back (secrets/service.ts).
 */
import { invalidField, KeygateError } from '../http/problem.ts';
import { readJson } from '../http/json.ts';
import type { Caller } from '../keys/service.ts';
import { toPublicSecret } from '../secrets/secret-store.ts';
import type { SecretService } from '../secrets/service.ts';
import { parse, type AdminRoute } from './routes.ts';
import { createSecretBody, updateSecretBody } from './schemas.ts';

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
    ['GET', /^\/v1\/secrets$/, async (ctx) => ({ status: 200, body: { secrets: (await secretService(ctx.caller).list(ctx.caller)).map(toPublicSecret) } })],
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
    ['DELETE', /^\/v1\/secrets\/([^/]+)$/, async (ctx) => ({ status: 200, body: { ...toPublicSecret(await secretService(ctx.caller).remove(ctx.caller, ctx.params[0]!)), removed: true } })],
  ];
}

/**
 * /v1/users and /v1/groups: a tenant's users and permission groups (users/service.ts holds
 * the rules, shared with the CLI). A user or group is named by its tenant and name:
 * /v1/users/{tenant}/{name} (a name with "/" is percent-encoded).
 */
import { readJson } from '../http/json.ts';
import { invalidField } from '../http/problem.ts';
import { toPublic } from '../keys/record.ts';
import type { Caller } from '../keys/service.ts';
import { toPublicGroup, toPublicUser, type TenantRecord } from '../users/records.ts';

const toPublicTenantLimits = (t: TenantRecord) => ({ tenant: t.tenant, rateLimits: t.rateLimits, quota: t.quota, updatedAt: t.updatedAt === 0 ? null : new Date(t.updatedAt).toISOString() });
import type { UserService } from '../users/service.ts';
import type { QuotaService } from '../limits/quota-service.ts';
import { topUpBody } from './schemas.ts';
import { createGroupBody, createUserBody, listGroupsQuery, listUsersQuery, tenantLimitsBody, updateGroupBody, updateUserBody } from './directory-schemas.ts';
import { parse, query, type AdminRoute } from './routes.ts';

/** The tenant a create is for: the body's, else the caller's own; a platform admin must name one. */
function tenantOf(caller: Caller, tenant: string | undefined): string {
  const chosen = tenant ?? caller.tenant;
  if (chosen === null) throw invalidField('tenant', 'is required for a platform admin');
  return chosen;
}

export function directoryRoutes(users: UserService, quotas: QuotaService): AdminRoute[] {
  return [
    [
      'GET',
      /^\/v1\/users$/,
      async (ctx) => {
        const q = parse(listUsersQuery, query(ctx), 'query');
        return { status: 200, body: { users: (await users.listUsers(ctx.caller, q.tenant)).map(toPublicUser) } };
      },
    ],
    [
      'POST',
      /^\/v1\/users$/,
      async (ctx) => {
        const body = parse(createUserBody, await readJson(ctx.req), 'body');
        return { status: 201, body: toPublicUser(await users.createUser(ctx.caller, { ...body, tenant: tenantOf(ctx.caller, body.tenant) })) };
      },
    ],
    [
      'GET',
      /^\/v1\/users\/([^/]+)\/([^/]+)$/,
      async (ctx) => {
        const { user, keys } = await users.getUser(ctx.caller, ctx.params[0]!, ctx.params[1]!);
        const now = Date.now();
        return { status: 200, body: { ...toPublicUser(user), keys: keys.map((k) => toPublic(k, now)) } };
      },
    ],
    [
      'PATCH',
      /^\/v1\/users\/([^/]+)\/([^/]+)$/,
      async (ctx) => {
        const body = parse(updateUserBody, await readJson(ctx.req), 'body');
        return { status: 200, body: toPublicUser(await users.updateUser(ctx.caller, ctx.params[0]!, ctx.params[1]!, body)) };
      },
    ],
    [
      'GET',
      /^\/v1\/groups$/,
      async (ctx) => {
        const q = parse(listGroupsQuery, query(ctx), 'query');
        const { global, groups } = await users.listGroups(ctx.caller, q.tenant);
        const configured = Object.entries(global).map(([name, permissions]) => toPublicGroup({ tenant: null, name, permissions }));
        return { status: 200, body: { groups: [...configured, ...groups.map(toPublicGroup)] } };
      },
    ],
    [
      'POST',
      /^\/v1\/groups$/,
      async (ctx) => {
        const body = parse(createGroupBody, await readJson(ctx.req), 'body');
        return { status: 201, body: toPublicGroup(await users.createGroup(ctx.caller, { ...body, tenant: tenantOf(ctx.caller, body.tenant) })) };
      },
    ],
    [
      'PATCH',
      /^\/v1\/groups\/([^/]+)\/([^/]+)$/,
      async (ctx) => {
        const body = parse(updateGroupBody, await readJson(ctx.req), 'body');
        return { status: 200, body: toPublicGroup(await users.updateGroup(ctx.caller, ctx.params[0]!, ctx.params[1]!, body)) };
      },
    ],
    [
      'GET',
      /^\/v1\/tenants\/([^/]+)\/limits$/,
      async (ctx) => {
        const tenant = await users.tenantLimits(ctx.caller, ctx.params[0]!);
        return { status: 200, body: { ...toPublicTenantLimits(tenant), quotaStatus: await quotas.tenantStatus(tenant.tenant, tenant.quota) } };
      },
    ],
    [
      'POST',
      /^\/v1\/tenants\/([^/]+)\/quota\/top-up$/,
      async (ctx) => {
        const tenant = await users.tenantLimits(ctx.caller, ctx.params[0]!);
        const body = parse(topUpBody, await readJson(ctx.req), 'body');
        return { status: 200, body: await quotas.topUpTenant(ctx.caller, tenant.tenant, tenant.quota, body.amount) };
      },
    ],
    [
      'PUT',
      /^\/v1\/tenants\/([^/]+)\/limits$/,
      async (ctx) => {
        const body = parse(tenantLimitsBody, await readJson(ctx.req), 'body');
        return { status: 200, body: toPublicTenantLimits(await users.setTenantLimits(ctx.caller, ctx.params[0]!, body.rateLimits, body.quota)) };
      },
    ],
    ['DELETE', /^\/v1\/groups\/([^/]+)\/([^/]+)$/, async (ctx) => ({ status: 200, body: { ...toPublicGroup(await users.deleteGroup(ctx.caller, ctx.params[0]!, ctx.params[1]!)), deleted: true } })],
  ];
}

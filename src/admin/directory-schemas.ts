/**
 * The admin API's shapes for users and tenant permission groups (/v1/users, /v1/groups):
 * they validate requests and generate /openapi.json (openapi.ts), like schemas.ts.
 */
import { z } from 'zod';
import { TENANT_PATTERN } from '../keys/format.ts';
import { PERMISSION_PATTERN, PERMISSION_RULE, USER_PATTERN } from '../keys/patterns.ts';
import { isoDate, publicKeyRecordSchema } from '../keys/record.ts';
import { GROUP_NAME_PATTERN, GROUP_NAME_RULE, USER_NAME_RULE } from '../users/records.ts';

const tenant = z.string().regex(TENANT_PATTERN, 'must match [a-z0-9][a-z0-9-]{0,62}');
const groupName = z.string().regex(GROUP_NAME_PATTERN, GROUP_NAME_RULE);
const displayName = z.string().max(128, 'must be at most 128 characters');
const permissions = z.array(z.string().regex(PERMISSION_PATTERN, PERMISSION_RULE)).max(100, 'at most 100 permissions');

export const createUserBody = z
  .strictObject({
    tenant: tenant.optional().describe("the user's tenant; defaults to the caller's own"),
    name: z.string().regex(USER_PATTERN, USER_NAME_RULE).describe('unique in the tenant; what keys acting as the user send upstream in x-auth-user'),
    displayName: displayName.optional(),
    group: groupName.describe("the user's permission group: the tenant's own or one of the configuration's"),
  })
  .meta({ id: 'CreateUser' });

export const updateUserBody = z
  .strictObject({
    displayName: displayName.optional(),
    group: groupName.optional().describe('every key acting as the user has the new group on its next request, on every instance'),
    disabled: z.boolean({ error: 'must be true or false' }).optional().describe("true: every key acting as the user is refused (401 user_disabled), on every instance"),
  })
  .meta({ id: 'UpdateUser' });

export const userRecord = z
  .object({
    tenant: z.string(),
    name: z.string(),
    displayName: z.string(),
    group: z.string(),
    disabled: z.boolean(),
    createdAt: isoDate,
    updatedAt: isoDate,
    disabledAt: isoDate.nullable(),
  })
  .meta({ id: 'User' });

export const userWithKeys = userRecord.extend({ keys: z.array(publicKeyRecordSchema).describe('keys whose user is this name: those with permissionsFrom "user" act as it') }).meta({ id: 'UserWithKeys' });

const rateLimits = z.array(z.string()).max(10, 'at most 10 rate limits').describe('e.g. ["20/s", "50000/1d"]: <count>/<period>, units ms, s, m, h, d');

export const createGroupBody = z
  .strictObject({ tenant: tenant.optional().describe("defaults to the caller's own"), name: groupName, permissions, rateLimits: rateLimits.optional().describe('rate limits of each key of the group, on every route') })
  .meta({ id: 'CreateGroup' });
export const updateGroupBody = z.strictObject({ permissions: permissions.optional(), rateLimits: rateLimits.optional() }).meta({ id: 'UpdateGroup' });
export const tenantLimitsBody = z
  .strictObject({
    rateLimits: rateLimits.describe("the tenant's limits, all its keys together, on every route"),
    quota: z.string().nullable().optional().describe('the tenant\'s budget, all its keys together ("10000/day", "300000/month", "5000 credits", "5000 credits/month"); null: none; left out: unchanged'),
  })
  .meta({ id: 'TenantLimits' });

export const groupRecord = z
  .object({
    tenant: z.string().nullable().describe('null for a group of the configuration (permissionGroups), which every tenant sees'),
    name: z.string(),
    permissions: z.array(z.string()),
    rateLimits: z.array(z.string()),
    source: z.enum(['config', 'tenant']),
    createdAt: isoDate.nullable(),
    updatedAt: isoDate.nullable(),
  })
  .meta({ id: 'Group' });

export const listUsersQuery = z.strictObject({ tenant: tenant.optional() });
export const listGroupsQuery = z.strictObject({ tenant: tenant.optional() });

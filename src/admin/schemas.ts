/**
 * The admin API's request and response shapes. These zod schemas both validate requests
 * and generate /openapi.json (openapi.ts), so the documentation cannot drift from the code.
 */
import { CLIENT_PATTERN, USER_PATTERN } from '../keys/patterns.ts';
import { z } from 'zod';
import { EXPIRY_PRESETS } from '../keys/expiry.ts';
import { ENVIRONMENTS, TENANT_PATTERN } from '../keys/format.ts';
import { isoDate, publicKeyRecordSchema } from '../keys/record.ts';
import { SECRET_ID_PATTERN, SECRET_ID_RULE } from '../secrets/secret-store.ts';
import { MAX_SECRET_BYTES } from '../secrets/service.ts';
import { SECRET_USAGE_KINDS } from '../secrets/usages.ts';

const tenant = z.string().regex(TENANT_PATTERN, 'must match [a-z0-9][a-z0-9-]{0,62}');
const environment = z.enum(ENVIRONMENTS, { error: 'must be "live" or "sandbox"' });
const expires = z
  .string()
  .regex(/^(\d{1,4}d|never|\d{4}-\d{2}-\d{2}.*)$/, `must be one of ${EXPIRY_PRESETS.join(', ')}, <N>d or an ISO date`)
  .describe('30d, 60d, 90d, 180d, 365d, never, or an ISO 8601 date');

/** Rate limits as text (limits/rate.ts); checked by KeyService (422 naming the entry). */
export const rateLimitsField = z.array(z.string()).max(10, 'at most 10 rate limits').describe('e.g. ["20/s", "50000/1d"]: <count>/<period>, units ms, s, m, h, d');

export const quotaField = z.string().describe('"10000/day", "300000/month", "5000 credits" or "5000 credits/month" (checked by KeyService: 422 naming the field)');
export const topUpBody = z.strictObject({ amount: z.number({ error: 'must be a number' }).int('must be a whole number').min(1, 'must be at least 1') }).meta({ id: 'TopUp' });

export const quotaStatus = z
  .object({
    scope: z.enum(['key', 'tenant']),
    quota: z.string(),
    used: z.number(),
    remaining: z.number(),
    resetsAt: isoDate.nullable().describe('when the budget starts afresh; null for credits without refill'),
  })
  .meta({ id: 'QuotaStatus' });

export const createKeyBody = z
  .strictObject({
    tenant: tenant.optional().describe("the key's tenant; defaults to the caller's own"),
    name: z.string().min(1, 'must not be empty').max(128, 'must be at most 128 characters'),
    role: z.enum(['api-user', 'admin'], { error: 'must be "api-user" or "admin"' }).optional(),
    permissions: z.array(z.string().min(1)).max(100, 'at most 100 permissions').optional(),
    group: z.string().min(1).optional().describe('a permission group from the config (instead of permissions)'),
    user: z.string().regex(USER_PATTERN, 'must be 1-256 printable ASCII characters, without leading or trailing spaces').optional().describe('the user the key acts as'),
    client: z.string().regex(CLIENT_PATTERN, 'must be 1-64 printable ASCII characters, without leading or trailing spaces').optional().describe('e.g. "mcp": limits the routes the key may use'),
    environment: environment.optional().describe("'live' (default) or 'sandbox': a sandbox key (kg_sandbox_<tenant>_…) reaches only routes' sandbox upstreams"),
    rateLimits: rateLimitsField.optional().describe("the key's own rate limits on every route (besides its group's, its tenant's and the route's)"),
    quota: quotaField.optional(),
    expires: expires.optional(),
  })
  .meta({ id: 'CreateKey' });

export const renameKeyBody = z
  .strictObject({
    name: z.string().min(1, 'must not be empty').max(128, 'must be at most 128 characters').optional(),
    rateLimits: rateLimitsField.optional().describe("the key's own rate limits on every route; pushed to every instance. A tenant admin may add limits but not remove them"),
    quota: quotaField.nullable().optional().describe("the key's budget, or null for none; a tenant admin may give one to a key without, not change or remove one"),
  })
  .meta({ id: 'RenameKey' });

export const rotateKeyBody = z
  .strictObject({
    overlapSeconds: z.number({ error: 'must be a number of seconds' }).int('must be a whole number').min(0, 'must be 0 or more').max(30 * 86_400, 'must be at most 30 days'),
    expires: expires.optional().describe("the successor's expiry; defaults to the old key's"),
  })
  .meta({ id: 'RotateKey' });

export const listKeysQuery = z.strictObject({
  tenant: tenant.optional(),
  revoked: z.enum(['true', 'false'], { error: 'must be "true" or "false"' }).optional(),
  prefix: z.string().max(100).optional().describe('only keys whose display prefix starts with this'),
  environment: environment.optional().describe('only keys of this environment'),
  unusedDays: z
    .string()
    .regex(/^[1-9]\d{0,4}$/, 'must be a whole number of days from 1 to 36500')
    .refine((v) => Number(v) <= 36_500, 'must be a whole number of days from 1 to 36500')
    .optional()
    .describe('only keys not used for this many days: last used before then, or never used and created before then'),
});

export const auditQuery = z.strictObject({
  limit: z.string().regex(/^\d{1,3}$/, 'must be a number from 1 to 500').optional(),
  before: z.string().regex(/^\d+$/, 'must be a cursor from a previous page').optional(),
});

/** The key as the API shows it: the record's public shape (keys/record.ts), not a second list of its fields. */
export const keyRecord = publicKeyRecordSchema.meta({ id: 'Key' });

export const createdKey = keyRecord.extend({ key: z.string().describe('the full key: shown in this response only') }).meta({ id: 'CreatedKey' });

export const rotatedKey = createdKey.extend({ previous: keyRecord.describe('the old key as it is now: revoked, expired, or active until its revokesAt') }).meta({ id: 'RotatedKey' });

export const tenantSummary = z
  .object({
    tenant: z.string(),
    active: z.number().int().describe('keys that work now'),
    expired: z.number().int().describe('keys past their expiry (not revoked)'),
    revoked: z.number().int(),
  })
  .meta({ id: 'Tenant', description: 'A tenant that has keys, with their counts' });

const secretId = z.string().regex(SECRET_ID_PATTERN, SECRET_ID_RULE).describe('what routes[].secret.id names');
const secretName = z.string().min(1, 'must not be empty').max(128, 'must be at most 128 characters');

export const createSecretBody = z
  .strictObject({
    id: secretId,
    name: secretName,
    value: z
      .string({ error: 'must be a string' })
      .min(1, 'must not be empty')
      .max(MAX_SECRET_BYTES, `must be at most ${MAX_SECRET_BYTES} bytes`)
      .describe('the secret itself: encrypted before it is stored, and never returned by any API'),
  })
  .meta({ id: 'CreateSecret' });

export const updateSecretBody = z
  .strictObject({
    name: secretName.optional(),
    id: secretId.optional().describe('move the secret to a new id (its value is re-encrypted for it); routes naming the old id stop resolving'),
  })
  .meta({ id: 'UpdateSecret' });

export const secretRecord = z
  .object({
    id: z.string(),
    name: z.string(),
    createdAt: isoDate,
    lastUsedAt: isoDate.nullable(),
    keyVersion: z.string().describe('version of the master key the value is encrypted under'),
  })
  .meta({ id: 'Secret', description: 'An upstream secret: never its value, nor any part of it' });

/** A secret id in a path (/v1/secrets/{id}…). */
export const secretIdParam = secretId;

export const secretUsage = z
  .object({
    kind: z.enum(SECRET_USAGE_KINDS).describe('route_secret: injected into the route\'s upstream requests; webhook_verifier: verifies the route\'s webhook signatures'),
    route: z.string().describe('the name of the route'),
    path: z.string().describe('where in the configuration, e.g. routes[2].secret.id'),
  })
  .meta({ id: 'SecretUsage', description: 'A place where the configuration in force names a secret' });

export const listedSecret = secretRecord.extend({ usages: z.array(secretUsage).describe('where the configuration in force names it; empty: not used') }).meta({ id: 'ListedSecret' });

export const secretUsages = z
  .object({
    id: z.string(),
    name: z.string().nullable().describe('null when the secret is not stored'),
    stored: z.boolean().describe('false: the configuration names a secret that is not stored (its routes answer 502)'),
    usages: z.array(secretUsage),
  })
  .meta({ id: 'SecretUsages' });

export const removeSecretQuery = z.strictObject({
  force: z.enum(['true', 'false'], { error: 'must be "true" or "false"' }).optional().describe('true: remove it even though the configuration in force names it'),
});

export const removedSecret = secretRecord
  .extend({ removed: z.literal(true), usages: z.array(secretUsage).describe('what a forced removal broke; empty otherwise') })
  .meta({ id: 'RemovedSecret' });

export const auditEntry = z
  .object({
    id: z.string(),
    at: isoDate,
    actor: z.string().nullable(),
    action: z.string(),
    tenant: z.string().nullable(),
    target: z.string().nullable(),
    detail: z.record(z.string(), z.union([z.string(), z.number(), z.boolean(), z.null()])),
  })
  .meta({ id: 'AuditEntry' });

export const problem = z
  .object({ type: z.string(), title: z.string(), status: z.number(), code: z.string(), detail: z.string() })
  .meta({ id: 'Problem' });

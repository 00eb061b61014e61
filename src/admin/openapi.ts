/** /openapi.json, generated from the same zod schemas that validate admin requests. */
import { z } from 'zod';
import { auditEntry, createdKey, createKeyBody, createSecretBody, keyRecord, problem, renameKeyBody, rotatedKey, rotateKeyBody, removedSecret, secretRecord, tenantSummary, updateSecretBody } from './schemas.ts';
import { listedSecret, secretUsage, secretUsages } from './schemas.ts';
import { createGroupBody, createUserBody, groupRecord, tenantLimitsBody, updateGroupBody, updateUserBody, userRecord, userWithKeys } from './directory-schemas.ts';
import { quotaStatus, topUpBody } from './schemas.ts';
import { keyUsage, tenantUsage, usageDay } from './usage-routes.ts';

const ref = (id: string) => ({ $ref: `#/components/schemas/${id}` });
const json = (id: string) => ({ content: { 'application/json': { schema: ref(id) } } });
const errors = {
  '400': { description: 'bad request', content: { 'application/problem+json': { schema: ref('Problem') } } },
  '401': { description: 'missing or invalid admin key', content: { 'application/problem+json': { schema: ref('Problem') } } },
  '403': { description: 'forbidden: this key may not manage keys, would grant a permission it does not hold itself (detail names them), or is not a platform admin and the request touches an admin-role key', content: { 'application/problem+json': { schema: ref('Problem') } } },
  '404': { description: 'no such key (or not in your tenant)', content: { 'application/problem+json': { schema: ref('Problem') } } },
  '422': { description: 'a field is invalid; detail names it', content: { 'application/problem+json': { schema: ref('Problem') } } },
};
const idParam = { name: 'id', in: 'path', required: true, schema: { type: 'string' } };
const tenantParam = { name: 'tenant', in: 'path', required: true, schema: { type: 'string' } };
const usageDaysParam = { name: 'days', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 35, default: 30 }, description: 'how many UTC days up to today' };
const nameParam = { name: 'name', in: 'path', required: true, schema: { type: 'string' }, description: 'percent-encoded' };

export function openApiDocument(): unknown {
  // Touch the schemas so their ids are registered before the registry is rendered.
  void [auditEntry, createdKey, createKeyBody, keyRecord, problem, renameKeyBody, rotatedKey, rotateKeyBody, createSecretBody, updateSecretBody, secretRecord, removedSecret, tenantSummary];
  void [listedSecret, secretUsage, secretUsages];
  void [createUserBody, updateUserBody, userRecord, userWithKeys, createGroupBody, updateGroupBody, groupRecord, tenantLimitsBody, topUpBody, quotaStatus];
  void [usageDay, keyUsage, tenantUsage];
  const rendered = z.toJSONSchema(z.globalRegistry, { uri: (id) => `#/components/schemas/${id}` }) as { schemas: Record<string, Record<string, unknown>> };
  const schemas: Record<string, unknown> = {};
  for (const [id, schema] of Object.entries(rendered.schemas)) {
    const { $schema: _s, $id: _i, ...rest } = schema;
    schemas[id] = rest;
  }
  return {
    openapi: '3.1.0',
    info: { title: 'keygate admin API', version: '1', description: 'Authenticate with X-Api-Key (or Authorization: Bearer) of an admin key.' },
    components: { schemas, securitySchemes: { apiKey: { type: 'apiKey', in: 'header', name: 'X-Api-Key' } } },
    security: [{ apiKey: [] }],
    paths: {
      '/v1/keys': {
        post: { summary: 'Create a key (the full key is returned only here)', requestBody: { required: true, ...json('CreateKey') }, responses: { '201': { description: 'created', ...json('CreatedKey') }, ...errors } },
        get: {
          summary: 'List keys, newest first',
          parameters: [
            { name: 'tenant', in: 'query', schema: { type: 'string' } },
            { name: 'revoked', in: 'query', schema: { type: 'string', enum: ['true', 'false'] }, description: 'include revoked keys' },
            { name: 'prefix', in: 'query', schema: { type: 'string' }, description: 'display prefix to match' },
            { name: 'environment', in: 'query', schema: { type: 'string', enum: ['live', 'sandbox'] }, description: 'only keys of this environment' },
            { name: 'unusedDays', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 36500 }, description: 'only keys not used for this many days: last used before then, or never used and created before then (docs/usage.md)' },
          ],
          responses: { '200': { description: 'keys', content: { 'application/json': { schema: { type: 'object', properties: { keys: { type: 'array', items: ref('Key') } } } } } }, ...errors },
        },
      },
      '/v1/keys/{id}': {
        get: { summary: 'One key', parameters: [idParam], responses: { '200': { description: 'the key', ...json('Key') }, ...errors } },
        patch: { summary: 'Rename (the only edit)', parameters: [idParam], requestBody: { required: true, ...json('RenameKey') }, responses: { '200': { description: 'renamed', ...json('Key') }, ...errors } },
      },
      '/v1/keys/{id}/revoke': { post: { summary: 'Revoke, permanently', parameters: [idParam], responses: { '200': { description: 'revoked', ...json('Key') }, ...errors } } },
      '/v1/keys/{id}/rotate': {
        post: {
          summary: 'Create a successor; the old key is revoked after overlapSeconds',
          parameters: [idParam],
          requestBody: { required: true, ...json('RotateKey') },
          responses: { '201': { description: 'the successor (full key shown once) and the old key', ...json('RotatedKey') }, '409': errors['400'], ...errors },
        },
      },
      '/v1/tenants': {
        get: {
          summary: 'Tenants that have keys, by name, with key counts (a tenant-scoped caller sees its own only)',
          responses: { '200': { description: 'tenants', content: { 'application/json': { schema: { type: 'object', properties: { tenants: { type: 'array', items: ref('Tenant') } } } } } }, ...errors },
        },
      },
      '/v1/tenants/{tenant}/keys/revoke': {
        post: {
          summary: "Revoke every key of a tenant",
          parameters: [{ name: 'tenant', in: 'path', required: true, schema: { type: 'string' } }],
          responses: { '200': { description: 'ids revoked', content: { 'application/json': { schema: { type: 'object', properties: { tenant: { type: 'string' }, revoked: { type: 'array', items: { type: 'string' } } } } } } }, ...errors },
        },
      },
      '/v1/secrets': {
        post: {
          summary: 'Store an upstream secret (platform admins). The value is encrypted and can never be read back',
          requestBody: { required: true, ...json('CreateSecret') },
          responses: { '201': { description: 'stored (metadata only)', ...json('Secret') }, '409': { ...errors['400'], description: 'the id exists, or keygate has no master key' }, ...errors },
        },
        get: {
          summary: 'List upstream secrets, newest first (never a value), each with where the configuration in force names it',
          responses: { '200': { description: 'secrets', content: { 'application/json': { schema: { type: 'object', properties: { secrets: { type: 'array', items: ref('ListedSecret') } } } } } }, ...errors },
        },
      },
      '/v1/secrets/{id}': {
        patch: {
          summary: 'Rename, or move to a new id; the value cannot change',
          parameters: [idParam],
          requestBody: { required: true, ...json('UpdateSecret') },
          responses: { '200': { description: 'the secret after', ...json('Secret') }, '409': { ...errors['400'], description: 'the new id exists, or keygate has no master key' }, ...errors },
        },
        delete: {
          summary: 'Remove; refused (409) while the configuration in force names it, unless force=true — then routes that use it answer 502 from then on',
          parameters: [idParam, { name: 'force', in: 'query', schema: { type: 'string', enum: ['true', 'false'] }, description: 'true: remove it even though the configuration in force names it (audited with the usages it broke)' }],
          responses: {
            '200': { description: 'the secret as it was, and the usages a forced removal broke', ...json('RemovedSecret') },
            '409': { ...errors['400'], description: 'the configuration in force names the secret; detail names every usage' },
            ...errors,
          },
        },
      },
      '/v1/secrets/{id}/usages': {
        get: {
          summary: 'Where the configuration in force names the secret (404 if it is neither stored nor named; stored: false for a dangling reference)',
          parameters: [idParam],
          responses: { '200': { description: 'the usages', ...json('SecretUsages') }, ...errors },
        },
      },
      '/v1/users': {
        get: {
          summary: "Users, by tenant and name (a tenant-scoped caller sees its own tenant's only)",
          parameters: [{ name: 'tenant', in: 'query', schema: { type: 'string' } }],
          responses: { '200': { description: 'users', content: { 'application/json': { schema: { type: 'object', properties: { users: { type: 'array', items: ref('User') } } } } } }, ...errors },
        },
        post: {
          summary: "Create a user with a permission group; keys then created with user=<name> act as it and take its group at request time",
          requestBody: { required: true, ...json('CreateUser') },
          responses: { '201': { description: 'created', ...json('User') }, '409': { ...errors['400'], description: 'the tenant already has a user of that name' }, ...errors },
        },
      },
      '/v1/users/{tenant}/{name}': {
        get: { summary: 'One user, with the keys that name it', parameters: [tenantParam, nameParam], responses: { '200': { description: 'the user', ...json('UserWithKeys') }, ...errors } },
        patch: {
          summary: 'Change the display name or group, disable or enable: every key acting as the user follows, on every instance within the revocation lag',
          parameters: [tenantParam, nameParam],
          requestBody: { required: true, ...json('UpdateUser') },
          responses: { '200': { description: 'the user after', ...json('User') }, ...errors },
        },
      },
      '/v1/groups': {
        get: {
          summary: "Permission groups: the configuration's (tenant null, read-only) and the tenant's own",
          parameters: [{ name: 'tenant', in: 'query', schema: { type: 'string' } }],
          responses: { '200': { description: 'groups', content: { 'application/json': { schema: { type: 'object', properties: { groups: { type: 'array', items: ref('Group') } } } } } }, ...errors },
        },
        post: {
          summary: "Create a tenant's permission group (no permission the caller lacks; not a configuration group's name)",
          requestBody: { required: true, ...json('CreateGroup') },
          responses: { '201': { description: 'created', ...json('Group') }, '409': { ...errors['400'], description: 'the name is taken (by the tenant or the configuration)' }, ...errors },
        },
      },
      '/v1/groups/{tenant}/{name}': {
        patch: { summary: "Replace a tenant group's permissions", parameters: [tenantParam, nameParam], requestBody: { required: true, ...json('UpdateGroup') }, responses: { '200': { description: 'the group after', ...json('Group') }, ...errors } },
        delete: {
          summary: 'Delete a tenant group; refused (409, naming them) while users or working keys use it',
          parameters: [tenantParam, nameParam],
          responses: { '200': { description: 'the group as it was', ...json('Group') }, '409': { ...errors['400'], description: 'users or keys use the group' }, ...errors },
        },
      },
      '/v1/keys/{id}/usage': {
        get: {
          summary: "The key's requests by UTC day, route and status class, oldest day first (docs/usage.md); written by each instance every lifecycle.usageFlushMs",
          parameters: [idParam, usageDaysParam],
          responses: { '200': { description: 'usage', ...json('KeyUsage') }, ...errors },
        },
      },
      '/v1/tenants/{tenant}/usage': {
        get: {
          summary: "All of a tenant's keys' requests by UTC day, route and status class (a tenant admin: its own tenant only, 404 otherwise)",
          parameters: [tenantParam, usageDaysParam],
          responses: { '200': { description: 'usage', ...json('TenantUsage') }, ...errors },
        },
      },
      '/v1/keys/{id}/quota': {
        get: {
          summary: "What is used and left of the key's budget and its tenant's, in the period in force (docs/limits.md)",
          parameters: [idParam],
          responses: { '200': { description: 'budgets', content: { 'application/json': { schema: { type: 'object', properties: { id: { type: 'string' }, quotas: { type: 'array', items: ref('QuotaStatus') } } } } } }, ...errors },
        },
      },
      '/v1/keys/{id}/quota/top-up': {
        post: {
          summary: "Add to what the key may still use in this period (or to its credits); platform admins; audited",
          parameters: [idParam],
          requestBody: { required: true, ...json('TopUp') },
          responses: { '200': { description: 'the budget after', ...json('QuotaStatus') }, '409': { ...errors['400'], description: 'the key has no quota' }, ...errors },
        },
      },
      '/v1/tenants/{tenant}/limits': {
        get: { summary: "A tenant's rate limits and budget, with what is left of it", parameters: [tenantParam], responses: { '200': { description: 'the limits' }, ...errors } },
        put: {
          summary: "Set a tenant's rate limits and budget (all its keys together); platform admins; pushed to every instance",
          parameters: [tenantParam],
          requestBody: { required: true, ...json('TenantLimits') },
          responses: { '200': { description: 'the limits after' }, ...errors },
        },
      },
      '/v1/tenants/{tenant}/quota/top-up': {
        post: { summary: "Add to a tenant's budget for this period; platform admins; audited", parameters: [tenantParam], requestBody: { required: true, ...json('TopUp') }, responses: { '200': { description: 'the budget after', ...json('QuotaStatus') }, ...errors } },
      },
      '/v1/audit': {
        get: {
          summary: 'The audit log, newest first',
          parameters: [
            { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 500 } },
            { name: 'before', in: 'query', schema: { type: 'string' }, description: 'cursor: `next` of the previous page' },
          ],
          responses: {
            '200': { description: 'a page', content: { 'application/json': { schema: { type: 'object', properties: { entries: { type: 'array', items: ref('AuditEntry') }, next: { type: ['string', 'null'] } } } } } },
            ...errors,
          },
        },
      },
    },
  };
}

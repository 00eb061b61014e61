/**
 * Per-key usage in the admin API (docs/usage.md): GET /v1/keys/{id}/usage and
 * GET /v1/tenants/{tenant}/usage, the last `days` UTC days (default 30, at most 35).
 * Scoped like every key endpoint: another tenant's key or tenant is 404 to a tenant admin.
 * Its schemas feed /openapi.json (openapi.ts).
 */
import { z } from 'zod';
import { TENANT_PATTERN } from '../keys/format.ts';
import type { KeyService } from '../keys/service.ts';
import { invalidField, KeygateError } from '../http/problem.ts';
import { USAGE_RETENTION_DAYS, type UsageStore } from '../store/usage-store.ts';
import { usageDays, usageReport } from '../events/usage-report.ts';
import { parse, query, type AdminRoute } from './routes.ts';

export const usageQuery = z.strictObject({
  days: z.string().optional().describe(`how many UTC days up to today, 1 to ${USAGE_RETENTION_DAYS}; default 30`),
});

export const usageDay = z
  .object({
    date: z.string().describe('YYYY-MM-DD, UTC'),
    total: z.number().int(),
    byRoute: z
      .record(z.string(), z.record(z.string(), z.number().int()))
      .describe('route → class ("2xx", "1xx" for an opened WebSocket …) or the status of keygate\'s own answer ("401", "429" …) → requests'),
  })
  .meta({ id: 'UsageDay', description: 'One UTC day of requests' });

export const keyUsage = z
  .object({ id: z.string(), tenant: z.string(), days: z.array(usageDay).describe('oldest first; every day present') })
  .meta({ id: 'KeyUsage', description: "A key's requests by day, route and status class" });

export const tenantUsage = z
  .object({ tenant: z.string(), days: z.array(usageDay).describe('oldest first; every day present') })
  .meta({ id: 'TenantUsage', description: "All of a tenant's keys' requests by day, route and status class" });

export function usageRoutes(service: KeyService, store: Pick<UsageStore, 'readUsage'> | undefined): AdminRoute[] {
  if (store === undefined) return [];
  return [
    [
      'GET',
      /^\/v1\/keys\/([^/]+)\/usage$/,
      async (ctx) => {
        const days = usageDays(parse(usageQuery, query(ctx), 'query').days, 'query.days');
        const record = await service.get(ctx.caller, ctx.params[0]!);
        return { status: 200, body: { id: record.id, tenant: record.tenant, days: await usageReport(store, 'k', record.id, days) } };
      },
    ],
    [
      'GET',
      /^\/v1\/tenants\/([^/]+)\/usage$/,
      async (ctx) => {
        const days = usageDays(parse(usageQuery, query(ctx), 'query').days, 'query.days');
        const tenant = ctx.params[0]!;
        if (!TENANT_PATTERN.test(tenant)) throw invalidField('tenant', 'must match [a-z0-9][a-z0-9-]{0,62}');
        // A tenant admin sees nothing of another tenant, not even whether it exists.
        if (ctx.caller.tenant !== null && ctx.caller.tenant !== tenant) throw new KeygateError('not_found', 'no such tenant');
        return { status: 200, body: { tenant, days: await usageReport(store, 't', tenant, days) } };
      },
    ],
  ];
}

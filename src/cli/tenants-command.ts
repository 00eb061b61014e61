/**
 * `keygate tenants limits|quota`: a tenant's rate limits and budget, all its keys together
 * (docs/limits.md). The implementation is limits-command.ts's, beside `keys limits|quota`.
 */
import { runSubcommand } from './args.ts';
import type { Io } from './context.ts';
import { tenantLimits, tenantQuota } from './limits-command.ts';

const USAGE = `usage:
  keygate tenants limits <tenant> [--rate-limits 200/s,1000000/1d|none] [--quota Q | --clear-quota] [--json]
  keygate tenants quota <tenant> [--top-up N] [--json]

  A tenant's rate limits and quota count all its keys together, on every route, besides each
  key's, group's and route's own. Without flags, limits shows them and what is left of the
  quota; --rate-limits replaces the rate limits (none removes them), --quota sets the budget
  (Q: <count>/day, <count>/month, <count> credits or <count> credits/<day|month>),
  --clear-quota removes it. quota --top-up N adds N to what is left now (audited). Every
  instance applies a change within moments. --json prints what the admin API answers
  (GET or PUT /v1/tenants/{tenant}/limits, POST /v1/tenants/{tenant}/quota/top-up).`;

export function tenantsCommand(args: string[], io: Io): Promise<number> {
  return runSubcommand('tenants', USAGE, { limits: tenantLimits, quota: tenantQuota }, args, io);
}

/**
 * A route's rate limits (docs/limits.md): what it counts requests by, at which rates, what one
 * request weighs, and what happens while the store that decides cannot be reached.
 *
 *   limits:
 *     rates:
 *       - { by: key, rate: 20/s }          # each key on this route
 *       - { by: tenant, rate: 50000/1d }   # each tenant on this route, its keys together
 *       - { by: address, rate: 100/m }     # each client address (public routes too)
 *       - { by: key, rate: 5/s, tool: "*" }   # MCP (mcp.policy): each key's calls of each tool
 *     weight: 1                            # a request counts as this many
 *     onStoreError: open                   # open: this instance decides alone; closed: 503
 */
import { z } from 'zod';
import { isRate, parseRate, RATE_RULE } from '../limits/rate.ts';

export const rateText = z.string({ error: RATE_RULE }).superRefine((text, ctx) => {
  const rate = parseRate(text);
  if (!isRate(rate)) ctx.addIssue({ code: 'custom', message: rate });
});

export const routeLimitsSchema = z.strictObject({
  rates: z
    .array(
      z.strictObject({
        by: z.enum(['key', 'tenant', 'address'], { error: 'must be "key", "tenant" or "address"' }).default('key'),
        rate: rateText,
        /** MCP routes with `mcp.policy`: count only `tools/call` of this tool, or of each tool apart (`*`). */
        tool: z.string().min(1, 'must not be empty').max(128, 'must be at most 128 characters').optional(),
      }),
    )
    .max(10, 'at most 10 rates')
    .default([]),
  weight: z.number({ error: 'must be a number' }).int('must be a whole number').min(1, 'must be at least 1').max(1000, 'must be at most 1000').default(1),
  onStoreError: z.enum(['open', 'closed'], { error: 'must be "open" or "closed"' }).default('open'),
});

export type RouteLimitsConfig = z.output<typeof routeLimitsSchema>;

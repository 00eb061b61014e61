/**
 * A route's `webhook:` section: keygate verifies the sender's signature over the whole body
 * before anything reaches the upstream (webhooks/delivery.ts).
 *
 * @example
 *   routes:
 *     - name: stripe
 *       pathPrefix: /hooks/stripe
 *       upstream: http://billing:3000
 *       auth: { required: false }            # the signature is the only authentication
 *       webhook:
 *         scheme: stripe                     # standard | stripe | github
 *         secrets: [stripe-signing]          # stored secret ids; two during a rotation
 *         toleranceSeconds: 300
 *         replay: true
 *         tenant: acme                       # sets headers.tenant upstream (signature-only routes)
 *       maxBodyBytes: 1048576
 *
 * Plugged into the route schema as `webhook: webhookSchema.optional()`; the rules that need
 * the rest of the route (a body limit, `tenant` only without a key) are in `webhookRouteIssues`.
 */
import { z } from 'zod';
import { TENANT_PATTERN } from '../keys/format.ts';
import { SECRET_ID_PATTERN, SECRET_ID_RULE } from '../secrets/secret-store.ts';

export const WEBHOOK_SCHEMES = ['standard', 'stripe', 'github'] as const;
export type WebhookScheme = (typeof WEBHOOK_SCHEMES)[number];

/** A week: beyond that a "tolerance" stops meaning anything, and claims pile up in the store. */
const MAX_TOLERANCE_SECONDS = 7 * 24 * 3600;

export const webhookSchema = z.strictObject({
  scheme: z.enum(WEBHOOK_SCHEMES, { error: `must be one of ${WEBHOOK_SCHEMES.join(', ')}` }),
  secrets: z
    .array(z.string().regex(SECRET_ID_PATTERN, SECRET_ID_RULE), { error: 'must be a list of stored secret ids' })
    .min(1, 'must name the stored signing secret')
    // Each one is a full HMAC pass over the body; two cover a rotation (old and new).
    .max(2, 'must name at most 2 secrets (the current one and, during a rotation, the other)')
    .refine((ids) => new Set(ids).size === ids.length, 'must not name a secret twice'),
  toleranceSeconds: z
    .number({ error: 'must be a number (seconds)' })
    .int('must be a whole number')
    .positive('must be greater than 0')
    .max(MAX_TOLERANCE_SECONDS, `must be at most ${MAX_TOLERANCE_SECONDS} (7 days)`)
    .default(300),
  replay: z.boolean().default(true),
  tenant: z.string().regex(TENANT_PATTERN, 'must match [a-z0-9][a-z0-9-]{0,62}').optional(),
});

export type WebhookConfig = z.output<typeof webhookSchema>;

interface RouteShape {
  auth: { required: boolean };
  maxBodyBytes: number;
  webhook?: WebhookConfig | undefined;
}

/** Problems with a route's webhook section that depend on the rest of the route: [path below the route, message]. */
export function webhookRouteIssues(route: RouteShape): [string[], string][] {
  const webhook = route.webhook;
  if (webhook === undefined) return [];
  const issues: [string[], string][] = [];
  if (route.maxBodyBytes === 0) issues.push([['maxBodyBytes'], 'must be greater than 0 on a webhook route (the body is held in memory until its signature is verified)']);
  if (webhook.tenant !== undefined && route.auth.required) issues.push([['webhook', 'tenant'], "needs auth.required: false (with a key, the key's tenant is sent)"]);
  return issues;
}

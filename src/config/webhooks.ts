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
 *         scheme: stripe                     # standard | stripe | github | slack | shopify | twilio | hmac
 *         secrets: [stripe-signing]          # stored secret ids; two during a rotation
 *         toleranceSeconds: 300
 *         replay: true
 *         tenant: acme                       # sets headers.tenant upstream (signature-only routes)
 *       maxBodyBytes: 1048576
 *     - name: twilio
 *       pathPrefix: /hooks/twilio
 *       webhook: { scheme: twilio, secrets: [twilio-token], publicUrl: https://hooks.example.com/hooks/twilio }
 *     - name: acme
 *       pathPrefix: /hooks/acme
 *       webhook:
 *         scheme: hmac
 *         secrets: [acme-signing]
 *         hmac: { header: x-acme-signature, algorithm: sha256, encoding: hex, prefix: "sha256=", timestampHeader: x-acme-timestamp, payload: "{timestamp}.{body}" }
 *
 * Plugged into the route schema as `webhook: webhookSchema.optional()`; the rules that need
 * the rest of the route (a body limit, `tenant` only without a key) are in `webhookRouteIssues`,
 * those between the section's own fields (publicUrl for twilio only, hmac for hmac only) in
 * the schema's superRefine.
 */
import { z } from 'zod';
import { TENANT_PATTERN } from '../keys/format.ts';
import { SECRET_ID_PATTERN, SECRET_ID_RULE } from '../secrets/secret-store.ts';

export const WEBHOOK_SCHEMES = ['standard', 'stripe', 'github', 'slack', 'shopify', 'twilio', 'hmac'] as const;
export type WebhookScheme = (typeof WEBHOOK_SCHEMES)[number];

export const HMAC_ALGORITHMS = ['sha1', 'sha256', 'sha512'] as const;
export type HmacAlgorithm = (typeof HMAC_ALGORITHMS)[number];
export const HMAC_ENCODINGS = ['hex', 'base64'] as const;

/** A week: beyond that a "tolerance" stops meaning anything, and claims pile up in the store. */
const MAX_TOLERANCE_SECONDS = 7 * 24 * 3600;

const headerName = z
  .string({ error: 'must be an HTTP header name' })
  .regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$/, 'must be an HTTP header name (letters, digits and !#$%&\'*+.^_`|~-)')
  .transform((h) => h.toLowerCase());

/** Placeholders of hmac.payload; `{body}` exactly once. */
const PLACEHOLDER = /\{([^{}]*)\}/g;

/** An absolute http(s) URL with a host and no query, fragment or credentials; kept without a trailing "/". */
function publicUrlProblem(value: string): string | null {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return 'must be an absolute URL (https://host/path)';
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return 'must be an http:// or https:// URL';
  if (url.hostname === '') return 'must name a host';
  if (url.search !== '' || value.includes('?') || url.hash !== '' || value.includes('#')) return 'must not have a query or fragment (the query of each request is appended as received)';
  if (url.username !== '' || url.password !== '') return 'must not contain credentials';
  if (/\s/.test(value)) return 'must not contain white space';
  return null;
}

const hmacSchema = z.strictObject({
  /** The header carrying the signature. */
  header: headerName,
  algorithm: z.enum(HMAC_ALGORITHMS, { error: `must be one of ${HMAC_ALGORITHMS.join(', ')}` }).default('sha256'),
  encoding: z.enum(HMAC_ENCODINGS, { error: `must be one of ${HMAC_ENCODINGS.join(', ')}` }).default('hex'),
  /** Text before the encoded signature in the header, e.g. `sha256=`. */
  prefix: z
    .string({ error: 'must be a string' })
    .regex(/^[\x21-\x7e]{0,32}$/, 'must be at most 32 visible ASCII characters')
    .default(''),
  /** Header with the signed timestamp (whole seconds since the epoch); needs `{timestamp}` in payload. */
  timestampHeader: headerName.optional(),
  /** Header with the sender's delivery id, claimed for replay protection (signed if payload has `{id}`). */
  idHeader: headerName.optional(),
  /** What is signed: `{body}` once, optionally `{timestamp}` and `{id}`, other text literally. */
  payload: z.string({ error: 'must be a string' }).max(256, 'must be at most 256 characters').default('{body}'),
});

export const webhookSchema = z
  .strictObject({
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
    /** twilio: the public URL at which the sender reaches this route's pathPrefix (Twilio signs the URL it called). */
    publicUrl: z
      .string({ error: 'must be a URL' })
      .superRefine((value, ctx) => {
        const problem = publicUrlProblem(value);
        if (problem !== null) ctx.addIssue({ code: 'custom', message: problem });
      })
      .transform((u) => u.replace(/\/+$/, ''))
      .optional(),
    /** hmac: how the sender signs. */
    hmac: hmacSchema.optional(),
  })
  .superRefine((w, ctx) => {
    if (w.scheme === 'twilio' && w.publicUrl === undefined) {
      ctx.addIssue({ code: 'custom', path: ['publicUrl'], message: "is required for scheme twilio: the public URL at which Twilio reaches this route's pathPrefix (Twilio signs the URL it called)" });
    }
    if (w.scheme !== 'twilio' && w.publicUrl !== undefined) ctx.addIssue({ code: 'custom', path: ['publicUrl'], message: 'only applies to scheme twilio' });
    if (w.scheme === 'hmac' && w.hmac === undefined) ctx.addIssue({ code: 'custom', path: ['hmac'], message: 'is required for scheme hmac: at least { header: <signature header name> }' });
    if (w.scheme !== 'hmac' && w.hmac !== undefined) ctx.addIssue({ code: 'custom', path: ['hmac'], message: 'only applies to scheme hmac' });
    if (w.hmac !== undefined) for (const [path, message] of payloadIssues(w.hmac)) ctx.addIssue({ code: 'custom', path: ['hmac', ...path], message });
  });

function payloadIssues(h: z.output<typeof hmacSchema>): [string[], string][] {
  const names = [...h.payload.matchAll(PLACEHOLDER)].map((m) => m[1]!);
  const issues: [string[], string][] = [];
  const unknown = names.filter((n) => n !== 'body' && n !== 'timestamp' && n !== 'id');
  if (unknown.length) issues.push([['payload'], `unknown placeholder {${unknown[0]}} (only {body}, {timestamp} and {id})`]);
  else if (/[{}]/.test(h.payload.replace(PLACEHOLDER, ''))) issues.push([['payload'], 'has an unmatched "{" or "}"']);
  const count = (n: string) => names.filter((x) => x === n).length;
  if (count('body') !== 1) issues.push([['payload'], 'must contain {body} exactly once']);
  if (count('timestamp') > 0 && h.timestampHeader === undefined) issues.push([['timestampHeader'], 'is required when payload contains {timestamp}']);
  if (count('timestamp') === 0 && h.timestampHeader !== undefined) issues.push([['payload'], 'must contain {timestamp} when timestampHeader is set (an unsigned timestamp protects nothing)']);
  if (count('id') > 0 && h.idHeader === undefined) issues.push([['idHeader'], 'is required when payload contains {id}']);
  return issues;
}

export type WebhookConfig = z.output<typeof webhookSchema>;
export type HmacConfig = z.output<typeof hmacSchema>;

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

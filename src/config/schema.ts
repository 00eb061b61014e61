/**
 * The configuration schema: the one place where config is validated. Every other module
 * receives a `Config` that is already known to be well-formed.
 */
import { identitySigningSchema, signedIdentitySchema } from './signed-identity.ts';
import { PERMISSION_PATTERN, PERMISSION_RULE } from '../keys/patterns.ts';
import { z } from 'zod';
import { PREFIX_PATTERN, TENANT_PATTERN } from '../keys/format.ts';
import { notificationsSchema } from './notifications.ts';
import { checkMcpRoutes, corsSchema, ISSUER_NAME, mcpSchema, oauthSchema } from './mcp.ts';
import { consoleSchema } from './console.ts';
import { SECRET_ID_PATTERN, SECRET_ID_RULE } from '../secrets/secret-store.ts';
import { webhookRouteIssues, webhookSchema } from './webhooks.ts';
import { limitsSchema } from './limits.ts';
import { routeLimitsSchema } from './rate-limits.ts';
import { leakReportsSchema } from './leak-reports.ts';
import { forwardAuthSchema } from './forward-auth.ts';

const port = z.number({ error: 'must be a port number' }).int('must be a whole number').min(0, 'must be 0-65535').max(65535, 'must be 0-65535');
const host = z.string().min(1, 'must not be empty');
const positiveInt = (what: string) => z.number({ error: `must be a number (${what})` }).int('must be a whole number').positive('must be greater than 0');
const headerName = z.string().regex(/^[a-z0-9!#$%&'*+.^_`|~-]+$/, 'must be a lower-case HTTP header name');

function isHttpUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.search === '' && url.hash === '';
  } catch {
    return false;
  }
}

/** Two upstream URLs that name the same place (origin and path, ignoring a trailing '/'); false when either is not a URL (refused on its own). */
function sameUpstream(a: string, b: string): boolean {
  if (!isHttpUrl(a) || !isHttpUrl(b)) return false;
  const x = new URL(a);
  const y = new URL(b);
  return x.origin === y.origin && x.pathname.replace(/\/$/, '') === y.pathname.replace(/\/$/, '');
}

/** Headers a route's secret may not be injected as: keygate or the HTTP framing owns them. */
const RESERVED_SECRET_HEADERS = new Set(['host', 'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'content-length', 'expect', 'forwarded', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host']);

const listener = z.strictObject({ host: host.default('0.0.0.0'), port });
/** An `admin.hosts` entry: a host name or IP literal, with a port (then only that port) or without (any). */
const adminHost = z
  .string()
  .regex(/^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?$/, 'must be a host name or IP address, optionally with ":port" (IPv6 in brackets)')
  .transform((h) => h.toLowerCase());

const redis = z.looseObject({
  url: z.string().regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL').optional(),
  /** ioredis Sentinel options: `sentinels: [{host, port}]` and `name`. */
  sentinels: z.array(z.strictObject({ host, port })).min(1, 'must list at least one sentinel').optional(),
  name: z.string().optional(),
  /** ioredis Cluster start-up nodes. */
  cluster: z.array(z.strictObject({ host, port })).min(1, 'must list at least one node').optional(),
  commandTimeoutMs: positiveInt('milliseconds').default(500),
  keyPrefix: z.string().default('kg:'),
});

const store = z
  .strictObject({
    kind: z.enum(['embedded', 'redis'], { error: 'must be "embedded" or "redis"' }).default('embedded'),
    path: z.string().min(1, 'must not be empty').default('./data/keygate.db'),
    pollMs: positiveInt('milliseconds').default(250),
    redis: redis.prefault({}),
  })
  .superRefine((value, ctx) => {
    if (value.kind !== 'redis') return;
    const r = value.redis;
    const ways = [r.url, r.sentinels, r.cluster].filter((v) => v !== undefined).length;
    if (ways === 0) ctx.addIssue({ code: 'custom', path: ['redis'], message: 'needs one of url, sentinels or cluster when kind is redis' });
    if (ways > 1) ctx.addIssue({ code: 'custom', path: ['redis'], message: 'give only one of url, sentinels or cluster' });
    if (r.sentinels && !r.name) ctx.addIssue({ code: 'custom', path: ['redis', 'name'], message: 'is required with sentinels (the master group name)' });
  });

const timeouts = z
  .strictObject({
    connectMs: positiveInt('milliseconds').default(3000),
    headersMs: positiveInt('milliseconds').default(30_000),
    idleMs: positiveInt('milliseconds').default(300_000),
    /** text/event-stream responses: an SSE comment after this much silence between events (pipeline/forward.ts); absent: none. */
    sseKeepAliveMs: z.number({ error: 'must be a number (milliseconds)' }).int('must be a whole number').min(100, 'must be at least 100').optional(),
  })
  .superRefine((t, ctx) => {
    if (t.sseKeepAliveMs !== undefined && t.sseKeepAliveMs >= t.idleMs) {
      ctx.addIssue({ code: 'custom', path: ['sseKeepAliveMs'], message: `must be less than timeouts.idleMs (${t.idleMs}): a keep-alive comes after that much silence, and idleMs still ends a stream silent inside an event` });
    }
  });

const pathPrefix = z
  .string()
  .regex(/^\/[A-Za-z0-9._~!$&'()*+,;=:@\/-]*$/, 'must start with "/" and contain only URL path characters')
  .refine((p) => !p.includes('//') && !/(^|\/)\.\.?(\/|$)/.test(p), 'must not contain "//", "." or ".." segments')
  .transform((p) => (p.length > 1 && p.endsWith('/') ? p.slice(0, -1) : p));

const route = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'must be 1-64 letters, digits, "_", "." or "-"'),
  pathPrefix,
  host: z.string().regex(/^[a-z0-9.-]+$/i, 'must be a host name without port').transform((h) => h.toLowerCase()).optional(),
  upstream: z.string().refine(isHttpUrl, 'must be an http(s) URL without query or fragment'),
  /** Where sandbox keys go (docs/sandbox.md); without it the route refuses them (403 forbidden_environment). */
  sandbox: z.strictObject({ upstream: z.string().refine(isHttpUrl, 'must be an http(s) URL without query or fragment') }).optional(),
  stripPrefix: z.boolean().default(false),
  /** Accept WebSocket upgrades (authenticated like any request, then proxied by http-proxy-3). */
  websocket: z.boolean().default(false),
  auth: z
    .strictObject({
      required: z.boolean().default(true),
      permissions: z.array(z.string().min(1)).default([]),
      clients: z.array(z.string().min(1)).min(1, 'must list at least one client, or be left out').optional(),
      tenantFromPath: z.boolean().default(false),
      /** oauth.issuers[].name whose JWT access tokens this route accepts besides API keys (mcp.ts). */
      issuers: z.array(z.string().regex(ISSUER_NAME, 'must be an oauth.issuers[].name')).min(1, 'must list at least one issuer, or be left out').optional(),
    })
    .prefault({}),
  secret: z
    .strictObject({
      id: z.string().regex(SECRET_ID_PATTERN, SECRET_ID_RULE),
      header: headerName.refine((h) => !RESERVED_SECRET_HEADERS.has(h), 'cannot be a hop-by-hop, Host, Content-Length or X-Forwarded-* header'),
      template: z
        .string()
        .includes('{value}', { error: 'must contain {value}' })
        .regex(/^[\t\x20-\x7e]*$/, 'must be printable ASCII (it becomes an HTTP header value)')
        .max(256, 'must be at most 256 characters')
        .default('{value}'),
    })
    .optional(),
  webhook: webhookSchema.optional(),
  /** A signed assertion of the caller's identity for the upstream to verify (config/signed-identity.ts). */
  signedIdentity: signedIdentitySchema.optional(),
  mcp: mcpSchema.optional(),
  cors: corsSchema.optional(),
  /** Rate limits on this route (config/rate-limits.ts); keys, groups and tenants may have their own besides. */
  limits: routeLimitsSchema.optional(),
  maxBodyBytes: z.number().int().nonnegative('must be 0 or more').default(10 * 1024 * 1024),
  timeouts: timeouts.prefault({}),
});

export const configSchema = z
  .strictObject({
    listen: listener.prefault({ port: 8080 }),
    admin: listener
      .extend({
        host: host.default('127.0.0.1'),
        /** Host names the admin listener answers (DNS rebinding); default: adminAccess() in admin/server.ts. */
        hosts: z.array(adminHost).min(1, 'must list at least one host name, or be left out').optional(),
        /** The environment variable holding the bearer token GET /metrics then requires. */
        metricsTokenEnv: z
          .string()
          .regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/, 'must be the name of the environment variable holding the /metrics token (letters, digits and "_"), not the token itself')
          .optional(),
        console: consoleSchema.prefault({}),
      })
      .prefault({ port: 8081 }),
    store: store.prefault({}),
    keys: z.strictObject({ prefix: z.string().regex(PREFIX_PATTERN, 'must be 1-16 lower-case letters or digits, starting with a letter').default('kg') }).prefault({}),
    tenants: z.strictObject({ system: z.string().regex(TENANT_PATTERN, 'must match [a-z0-9][a-z0-9-]{0,62}').default('system') }).prefault({}),
    cache: z
      .strictObject({
        max: positiveInt('entries').default(100_000),
        maxAgeMs: positiveInt('milliseconds').default(30_000),
        negativeMax: positiveInt('entries').default(10_000),
        negativeMaxAgeMs: positiveInt('milliseconds').default(5000),
      })
      .prefault({}),
    headers: z
      .strictObject({
        tenant: headerName.default('x-tenant-id'),
        keyId: headerName.default('x-api-key-id'),
        role: headerName.default('x-auth-role'),
        permissions: headerName.default('x-auth-permissions'),
        user: headerName.default('x-auth-user'),
        client: headerName.default('x-auth-client'),
        environment: headerName.default('x-auth-environment'),
        webhook: headerName.default('x-webhook-verified'),
      })
      .prefault({}),
    permissionGroups: z
      .record(
        z.string().regex(/^[A-Za-z0-9_.:-]{1,64}$/, 'group names are 1-64 letters, digits, "_", ".", ":" or "-"'),
        // Members are sent upstream comma-separated like a key's permissions: the same shape.
        z.array(z.string().regex(PERMISSION_PATTERN, PERMISSION_RULE)),
      )
      .default({}),
    forwarded: z.strictObject({ trustClient: z.boolean().default(false) }).prefault({}),
    limits: limitsSchema.prefault({}),
    leakReports: leakReportsSchema.optional(),
    /** keygate as the auth service of nginx, Caddy, Traefik or Envoy in front (config/forward-auth.ts); off when absent. */
    forwardAuth: forwardAuthSchema.optional(),
    identitySigning: identitySigningSchema.prefault({}),
    log: z
      .strictObject({
        level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], { error: 'must be one of fatal, error, warn, info, debug, trace, silent' }).default('info'),
        access: z.boolean().default(true),
      })
      .prefault({}),
    notifications: notificationsSchema.prefault({}),
    workers: z.union([z.literal('auto'), z.number().int('must be a whole number').min(1, 'must be at least 1').max(256, 'must be at most 256')], { error: 'must be "auto" or a number of processes' }).default(1),
    shutdown: z.strictObject({ graceMs: positiveInt('milliseconds').default(10_000), drainDelayMs: z.number().int('must be a whole number').nonnegative('must be 0 or more').default(0) }).prefault({}),
    lifecycle: z
      .strictObject({
        sweepMs: positiveInt('milliseconds').default(15_000),
        lastUsedFlushMs: positiveInt('milliseconds').default(60_000),
        // Per-key usage counters (events/usage.ts, docs/usage.md): written every usageFlushMs;
        // at most usageMaxCounters distinct counters are held in memory between two writes.
        usageFlushMs: positiveInt('milliseconds').default(10_000),
        usageMaxCounters: positiveInt('counters').default(100_000),
      })
      .prefault({}),
    echo: z.strictObject({ host: host.default('127.0.0.1'), port }).optional(),
    oauth: oauthSchema.prefault({}),
    routes: z.array(route).default([]),
  })
  .superRefine((config, ctx) => {
    const seen = new Map<string, number>();
    config.routes.forEach((r, i) => {
      const previous = seen.get(r.name);
      if (previous !== undefined) ctx.addIssue({ code: 'custom', path: ['routes', i, 'name'], message: `duplicates routes[${previous}].name "${r.name}"` });
      seen.set(r.name, i);
      const same = config.routes.findIndex((o, j) => j < i && o.pathPrefix === r.pathPrefix && o.host === r.host);
      if (same >= 0) ctx.addIssue({ code: 'custom', path: ['routes', i, 'pathPrefix'], message: `routes[${same}] already serves ${r.host ?? '*'}${r.pathPrefix}` });
      if (r.auth.tenantFromPath && !r.auth.required) ctx.addIssue({ code: 'custom', path: ['routes', i, 'auth', 'tenantFromPath'], message: 'needs auth.required: true' });
      if (r.sandbox && !r.auth.required) ctx.addIssue({ code: 'custom', path: ['routes', i, 'sandbox'], message: 'needs auth.required: true (a public request has no key, so no environment to choose the sandbox by)' });
      if (r.sandbox && sameUpstream(r.sandbox.upstream, r.upstream)) ctx.addIssue({ code: 'custom', path: ['routes', i, 'sandbox', 'upstream'], message: 'must differ from the route\'s upstream (sandbox keys must never reach the live upstream)' });
      if (r.secret && !r.auth.required) ctx.addIssue({ code: 'custom', path: ['routes', i, 'secret'], message: 'needs auth.required: true (a public route would let anyone use the secret)' });
      if (r.websocket && r.webhook) ctx.addIssue({ code: 'custom', path: ['routes', i, 'websocket'], message: 'cannot be combined with webhook (an upgrade carries no signed body, so it would pass unverified)' });
      for (const [path, message] of webhookRouteIssues(r)) ctx.addIssue({ code: 'custom', path: ['routes', i, ...path], message });
      if (r.secret && (Object.values(config.headers) as string[]).includes(r.secret.header)) {
        ctx.addIssue({ code: 'custom', path: ['routes', i, 'secret', 'header'], message: `is one of keygate's identity headers (headers.*)` });
      }
      const signed = r.signedIdentity;
      if (signed !== undefined) {
        if (!r.auth.required) ctx.addIssue({ code: 'custom', path: ['routes', i, 'signedIdentity'], message: 'needs auth.required: true (a public request has no identity to sign)' });
        if (signed.header === signed.requestIdHeader) ctx.addIssue({ code: 'custom', path: ['routes', i, 'signedIdentity', 'requestIdHeader'], message: 'must differ from signedIdentity.header' });
        for (const [field, name] of [['header', signed.header], ['requestIdHeader', signed.requestIdHeader]] as const) {
          if ((Object.values(config.headers) as string[]).includes(name) || name === r.secret?.header || RESERVED_SECRET_HEADERS.has(name) || name === 'authorization' || name === 'x-api-key') {
            ctx.addIssue({ code: 'custom', path: ['routes', i, 'signedIdentity', field], message: 'is a header keygate or the route already sets, or the credential' });
          }
        }
        // The JWKS keeps the previous period's key: an assertion must expire before that key is dropped.
        if (signed.lifetimeSeconds > config.identitySigning.rotateSeconds) {
          ctx.addIssue({ code: 'custom', path: ['routes', i, 'signedIdentity', 'lifetimeSeconds'], message: 'must be at most identitySigning.rotateSeconds' });
        }
      }
    });
    checkMcpRoutes(config, ctx);
    if (config.listen.port !== 0 && config.listen.port === config.admin.port && config.listen.host === config.admin.host) {
      ctx.addIssue({ code: 'custom', path: ['admin', 'port'], message: 'must differ from listen.port' });
    }
    const fa = config.forwardAuth;
    if (fa !== undefined && fa.port !== 0) {
      for (const [name, other] of [['listen', config.listen], ['admin', config.admin]] as const) {
        if (fa.port === other.port && fa.host === other.host) ctx.addIssue({ code: 'custom', path: ['forwardAuth', 'port'], message: `must differ from ${name}.port` });
      }
    }
  });

export type Config = z.output<typeof configSchema>;
export type RouteConfig = Config['routes'][number];
export type RawConfig = z.input<typeof configSchema>;

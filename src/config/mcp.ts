/**
 * The configuration of what MCP clients meet at keygate: `routes[].mcp` (the protected
 * resource, the other audiences its tokens may name, and its RFC 9728 metadata),
 * `routes[].cors`, `routes[].auth.issuers` and the top-level `oauth` section (issuers whose
 * access tokens routes may accept: JWTs checked against a JWKS, opaque tokens introspected,
 * RFC 7662). Used by schema.ts; `checkMcpRoutes` holds the checks that span routes and sections.
 */
import { z } from 'zod';
import { TENANT_PATTERN } from '../keys/format.ts';
import { isResource, servedPaths } from '../mcp/resource-url.ts';
import { mcpPolicySchema } from './mcp-policy.ts';

const positiveInt = (what: string) => z.number({ error: `must be a number (${what})` }).int('must be a whole number').positive('must be greater than 0');

function isUrl(value: string, protocols: readonly string[]): boolean {
  try {
    const url = new URL(value);
    return protocols.includes(url.protocol) && url.hash === '';
  } catch {
    return false;
  }
}

/** RFC 6749 §3.3 scope-token: printable ASCII without space, `"` or `\`. */
const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]+$/;
const scopeToken = z.string().regex(SCOPE_TOKEN, 'must be a scope token: printable ASCII without spaces, quotes or backslashes');

/**
 * An `aud` value a token may carry (RFC 7519 StringOrURI): printable ASCII without spaces,
 * quotes or backslashes; a value with ":" must be a URI (§2).
 */
function isAudience(value: string): boolean {
  if (!/^[\x21\x23-\x5b\x5d-\x7e]{1,512}$/.test(value)) return false;
  if (!value.includes(':')) return true;
  try {
    new URL(value);
    return true;
  } catch {
    return false;
  }
}

export const mcpSchema = z.strictObject({
  resource: z.string().refine(isResource, 'must be an absolute http:// or https:// URL (lower-case scheme) without user info, query or fragment, e.g. https://mcp.example.com/mcp; it is used exactly as written'),
  /** Other `aud` values accepted from access tokens besides `resource` (the server under other names); the metadata keeps `resource`. */
  audiences: z
    .array(z.string().refine(isAudience, 'must be an audience tokens carry: a URI such as https://mcp.internal.example/mcp, or a name without ":", spaces, quotes or backslashes; at most 512 characters'))
    .min(1, 'must list at least one audience, or be left out')
    .max(32, 'must list at most 32 audiences')
    .optional(),
  authorizationServers: z
    .array(z.string().refine((v) => isUrl(v, ['https:', 'http:']) && !v.includes('"') && !v.includes('?'), 'must be an http(s) URL without query or fragment (an authorization server issuer identifier)'))
    .min(1, 'must list at least one authorization server (MCP requires one in the metadata of a route that takes access tokens), or be left out')
    .optional(),
  /** RFC 9728 `resource_documentation`: where people read how to get a credential (on key-only routes: how to get a key). */
  resourceDocumentation: z.string().refine((v) => isUrl(v, ['https:', 'http:']) && !v.includes('"'), 'must be an http(s) URL without fragment (a page for people: how to get a key or sign in)').optional(),
  scopesSupported: z.array(scopeToken).optional(),
  resourceName: z.string().min(1, 'must not be empty').max(200, 'must be at most 200 characters').optional(),
  /** Per-tool authorization (config/mcp-policy.ts); absent: keygate does not read MCP messages. */
  policy: mcpPolicySchema.optional(),
});

/** Browser-serialised origin: what `new URL(x).origin` gives back unchanged. */
function isOrigin(value: string): boolean {
  try {
    const url = new URL(value);
    return (url.protocol === 'https:' || url.protocol === 'http:') && url.origin === value;
  } catch {
    return false;
  }
}

const METHOD = /^[A-Z]+$/;
const headerToken = z
  .string()
  .regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/, 'must be an HTTP header name')
  .transform((h) => h.toLowerCase());

export const corsSchema = z.strictObject({
  origins: z
    .array(z.string().refine(isOrigin, 'must be an exact origin as a browser sends it: scheme://host[:port], lower-case, no default port, no path or trailing slash (e.g. https://app.example.com); "*" is not accepted'))
    .min(1, 'must list at least one origin'),
  credentials: z.boolean().default(false),
  maxAgeSeconds: z.number().int('must be a whole number').min(0, 'must be 0 or more').max(86_400, 'must be at most 86400 (browsers cap it anyway)').default(600),
  methods: z.array(z.string().regex(METHOD, 'must be an upper-case HTTP method')).min(1, 'must list at least one method').default(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE']),
  allowHeaders: z.array(headerToken).default([]),
  exposeHeaders: z.array(headerToken).default([]),
});

/** Asymmetric JWS algorithms only: HS* with a shared secret and `none` are never accepted. */
export const TOKEN_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'] as const;

const claimName = z.string().min(1, 'must not be empty').max(256, 'must be at most 256 characters');
export const ISSUER_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

/** The token and the client secret go to it: https, or http only to this machine. */
function isIntrospectionEndpoint(value: string): boolean {
  if (!isUrl(value, ['https:', 'http:'])) return false;
  const url = new URL(value);
  if (url.username !== '' || url.password !== '') return false;
  return url.protocol === 'https:' || url.hostname === '127.0.0.1' || url.hostname === '[::1]' || url.hostname === 'localhost';
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;

/** RFC 7662 introspection of opaque tokens (auth/introspection.ts). */
const introspectionSchema = z.strictObject({
  endpoint: z.string().refine(isIntrospectionEndpoint, 'must be an https URL without user info or fragment (the token and the client secret are sent to it); http only to 127.0.0.1, [::1] or localhost'),
  clientId: z.string().regex(/^[\x21-\x7e]{1,256}$/, 'must be 1-256 printable ASCII characters without spaces (the client keygate introspects as)'),
  clientSecretEnv: z.string().regex(ENV_NAME, 'must be the name of the environment variable holding the client secret (letters, digits and "_"), not the secret itself'),
  timeoutMs: positiveInt('milliseconds').max(60_000, 'must be at most 60000').default(5000),
  cacheMaxAgeMs: positiveInt('milliseconds').max(3_600_000, 'must be at most 3600000 (an hour)').default(30_000),
  maxConcurrent: positiveInt('introspections').max(1024, 'must be at most 1024').default(16),
  maxPending: z.number({ error: 'must be a number (introspections)' }).int('must be a whole number').min(0, 'must be 0 or more').max(100_000, 'must be at most 100000').default(256),
});

const issuerSchema = z
  .strictObject({
    name: z.string().regex(ISSUER_NAME, 'must be 1-64 letters, digits, "_", "." or "-"'),
    issuer: z.string().min(1, 'must not be empty (the exact "iss" of the tokens)'),
    jwksUri: z.string().refine((v) => isUrl(v, ['https:', 'http:']), 'must be an http(s) URL').optional(),
    /** Opaque tokens (and JWTs of an issuer without jwksUri) are asked about at this RFC 7662 endpoint. */
    introspection: introspectionSchema.optional(),
    algorithms: z
      .array(z.enum(TOKEN_ALGORITHMS, { error: `must be one of ${TOKEN_ALGORITHMS.join(', ')} (HS* and none are never accepted)` }))
      .min(1, 'must list at least one algorithm')
      .default(['RS256', 'ES256']),
    clockToleranceSeconds: z.number().int('must be a whole number').min(0, 'must be 0 or more').max(300, 'must be at most 300').default(30),
    tenant: z.string().regex(TENANT_PATTERN, 'must match [a-z0-9][a-z0-9-]{0,62}').optional(),
    claims: z
      .strictObject({
        tenant: claimName.optional(),
        user: claimName.default('sub'),
        permissions: claimName.default('scope'),
        client: claimName.default('client_id'),
      })
      .prefault({}),
    jwks: z
      .strictObject({
        cacheMaxAgeMs: positiveInt('milliseconds').default(600_000),
        cooldownMs: z.number().int('must be a whole number').min(0, 'must be 0 or more').default(30_000),
        timeoutMs: positiveInt('milliseconds').default(5000),
      })
      .prefault({}),
  })
  .superRefine((issuer, ctx) => {
    if ((issuer.tenant === undefined) === (issuer.claims.tenant === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['tenant'], message: 'give exactly one of tenant (every token gets this tenant) or claims.tenant (the claim that holds it)' });
    }
    if (issuer.jwksUri === undefined && issuer.introspection === undefined) {
      ctx.addIssue({ code: 'custom', path: ['jwksUri'], message: 'give jwksUri (JWT access tokens, verified here), introspection (opaque tokens, asked about at the issuer), or both' });
    }
  });

export const oauthSchema = z.strictObject({
  issuers: z.array(issuerSchema).default([]),
  tokenCache: z
    .strictObject({
      max: positiveInt('entries').default(10_000),
      maxAgeMs: positiveInt('milliseconds').default(60_000),
    })
    .prefault({}),
});

export type OAuthConfig = z.output<typeof oauthSchema>;
export type IssuerConfig = OAuthConfig['issuers'][number];

interface RouteLike {
  name: string;
  host?: string | undefined;
  pathPrefix: string;
  auth: { required: boolean; permissions: string[]; issuers?: string[] | undefined };
  mcp?: z.output<typeof mcpSchema> | undefined;
}

type Ctx = z.core.$RefinementCtx;

/** The checks that span routes and the oauth section. */
export function checkMcpRoutes(config: { oauth: OAuthConfig; routes: RouteLike[] }, ctx: Ctx): void {
  const names = new Map<string, number>();
  const issuers = new Map<string, number>();
  config.oauth.issuers.forEach((issuer, i) => {
    const sameName = names.get(issuer.name);
    if (sameName !== undefined) ctx.addIssue({ code: 'custom', path: ['oauth', 'issuers', i, 'name'], message: `duplicates oauth.issuers[${sameName}].name "${issuer.name}"` });
    names.set(issuer.name, i);
    const sameIss = issuers.get(issuer.issuer);
    if (sameIss !== undefined) ctx.addIssue({ code: 'custom', path: ['oauth', 'issuers', i, 'issuer'], message: `duplicates oauth.issuers[${sameIss}].issuer (tokens are matched to an issuer by their "iss")` });
    issuers.set(issuer.issuer, i);
  });
  const served = new Map<string, { route: number; resource: string }>();
  config.routes.forEach((r, i) => {
    const accepted = r.auth.issuers;
    if (accepted !== undefined) {
      if (r.mcp === undefined) ctx.addIssue({ code: 'custom', path: ['routes', i, 'auth', 'issuers'], message: 'needs mcp.resource on the route: it is the audience ("aud") that tokens must carry' });
      if (!r.auth.required) ctx.addIssue({ code: 'custom', path: ['routes', i, 'auth', 'issuers'], message: 'needs auth.required: true' });
      accepted.forEach((name, j) => {
        if (!names.has(name)) ctx.addIssue({ code: 'custom', path: ['routes', i, 'auth', 'issuers', j], message: `names no issuer in oauth.issuers (${[...names.keys()].join(', ') || 'none configured'})` });
      });
      // An opaque token names no issuer: it can be sent to one introspection endpoint only (never to one that did not issue it).
      const introspecting = accepted.filter((name) => config.oauth.issuers[names.get(name) ?? -1]?.introspection !== undefined);
      if (introspecting.length > 1) {
        ctx.addIssue({ code: 'custom', path: ['routes', i, 'auth', 'issuers'], message: `names ${introspecting.length} issuers with introspection (${introspecting.join(', ')}); an opaque token says nothing of its issuer, so a route may name one` });
      }
    }
    if (r.mcp === undefined) return;
    const audiences = r.mcp.audiences;
    if (audiences !== undefined) {
      if (accepted === undefined) ctx.addIssue({ code: 'custom', path: ['routes', i, 'mcp', 'audiences'], message: 'needs auth.issuers (only access tokens carry an audience; keys are accepted under every name)' });
      const seen = new Map<string, number>();
      audiences.forEach((aud, j) => {
        if (aud === r.mcp!.resource) ctx.addIssue({ code: 'custom', path: ['routes', i, 'mcp', 'audiences', j], message: 'repeats mcp.resource, which is always accepted' });
        const same = seen.get(aud);
        if (same !== undefined) ctx.addIssue({ code: 'custom', path: ['routes', i, 'mcp', 'audiences', j], message: `duplicates mcp.audiences[${same}]` });
        seen.set(aud, j);
      });
    }
    r.auth.permissions.forEach((p, j) => {
      if (!SCOPE_TOKEN.test(p)) ctx.addIssue({ code: 'custom', path: ['routes', i, 'auth', 'permissions', j], message: 'must be a scope token on a route with mcp (it is sent as scope="…"): no spaces, quotes or backslashes' });
    });
    // Two resources answering at one well-known URL would hand a client the wrong audience.
    // (Refinements run even when a field failed its own check: skip what is already refused.)
    if (!isResource(r.mcp.resource)) return;
    for (const path of servedPaths(r.mcp.resource, r.pathPrefix)) {
      const key = `${r.host ?? '*'} ${path}`;
      const other = served.get(key);
      if (other !== undefined && other.resource !== r.mcp.resource) {
        ctx.addIssue({ code: 'custom', path: ['routes', i, 'mcp', 'resource'], message: `its metadata would be served at ${path}, where routes[${other.route}] (resource ${other.resource}) already serves its own` });
      }
      served.set(key, { route: i, resource: r.mcp.resource });
    }
  });
}

/**
 * The per-route state of the MCP-facing features (protected resource metadata, the
 * `WWW-Authenticate` challenges, CORS, accepted access tokens, signed identity), compiled once with the route
 * table, so the request path reads fields and allocates nothing. A route that uses none of
 * them gets the same answers as before: `challenge` is the plain realm and the rest is null.
 */
import type { AccessTokens, RouteTokens } from '../auth/access-token.ts';
import type { RouteConfig } from '../config/schema.ts';
import { compileCors, type CorsPolicy } from '../pipeline/cors.ts';
import { compileMcpResource, type McpResource } from '../mcp/resource-metadata.ts';
import { compileSignedIdentity, type SignedIdentityRoute } from '../pipeline/signed-identity.ts';

export const REALM = 'Bearer realm="keygate"';

export interface RouteFeatures {
  /** `WWW-Authenticate` of a 401: the realm, plus `resource_metadata` and `scope` on MCP routes. */
  readonly challenge: string;
  /** `WWW-Authenticate` of a 403 forbidden_permission. */
  readonly scopeChallenge: string;
  readonly mcp: McpResource | null;
  readonly cors: CorsPolicy | null;
  readonly tokens: RouteTokens | null;
  /** `signedIdentity`: the assertion header this route adds (signed-identity.ts). */
  readonly signedIdentity: SignedIdentityRoute | null;
}

export function compileFeatures(config: RouteConfig, tokens: AccessTokens | null): RouteFeatures {
  const permissions = config.auth.permissions;
  const scope = `scope="${permissions.join(' ')}"`;
  let mcp: McpResource | null = null;
  let challenge = REALM;
  if (config.mcp !== undefined) {
    const issuers = config.auth.issuers ?? [];
    mcp = compileMcpResource({
      resource: config.mcp.resource,
      // By default the issuers whose tokens the route accepts are its authorization servers
      // (at least one on a route that takes tokens, as MCP requires; none on a key-only route).
      authorizationServers: config.mcp.authorizationServers ?? (tokens === null ? [] : tokens.issuerUrls(issuers)),
      scopesSupported: config.mcp.scopesSupported ?? permissions,
      resourceName: config.mcp.resourceName,
      resourceDocumentation: config.mcp.resourceDocumentation,
      apiKeys: config.auth.required,
    });
    challenge = `${REALM}, resource_metadata="${mcp.metadataUrl}"`;
  }
  return {
    // MCP clients request the scopes named in the first challenge (MCP authorization, scope selection).
    challenge: mcp !== null && permissions.length ? `${challenge}, ${scope}` : challenge,
    scopeChallenge: `${challenge}, error="insufficient_scope", ${scope}`,
    mcp,
    cors: compileCors(config),
    tokens: tokens?.forRoute(config) ?? null,
    signedIdentity: compileSignedIdentity(config),
  };
}

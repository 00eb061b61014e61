/**
 * Resource identifiers (RFC 8707 / RFC 9728) and the well-known paths of their metadata:
 * pure functions of the configured `mcp.resource`, shared by config validation
 * (config/mcp.ts) and the metadata answers (resource-metadata.ts). Imports nothing, so
 * config/ can use it without reaching into the data path.
 */
export const WELL_KNOWN = '/.well-known/oauth-protected-resource';

/**
 * A resource identifier keygate accepts: lower-case http(s) scheme, a host (and port), an
 * optional path, no user info, query or fragment, and nothing that would need escaping
 * inside a quoted `WWW-Authenticate` parameter.
 */
const RESOURCE = /^(https?:\/\/[A-Za-z0-9.-]+(?::\d{1,5})?|https?:\/\/\[[0-9A-Fa-f:.]+\](?::\d{1,5})?)(\/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*)?$/;

export function isResource(value: string): boolean {
  if (!RESOURCE.test(value)) return false;
  try {
    return new URL(value).hostname !== '';
  } catch {
    return false;
  }
}

/** The resource's origin part (as written) and its path ('' when it has none). */
function splitResource(resource: string): { origin: string; path: string } {
  const match = RESOURCE.exec(resource);
  if (match === null) throw new Error(`not a resource identifier: ${resource}`);
  return { origin: match[1]!, path: match[2] ?? '' };
}

/** The path of the resource's metadata document (RFC 9728 §3.1). */
export function metadataPath(resource: string): string {
  const { path } = splitResource(resource);
  return path === '/' || path === '' ? WELL_KNOWN : WELL_KNOWN + path;
}

/** The absolute URL put in `resource_metadata="…"`: derived from the configured resource only, never from the request. */
export function metadataUrl(resource: string): string {
  return splitResource(resource).origin + metadataPath(resource);
}

/** `scheme://host[:port]` of the resource, lower-cased as a browser serialises an Origin. */
export function resourceOrigin(resource: string): string {
  return new URL(resource).origin;
}

/** Every well-known path a route's document is served at (see the module comment). */
export function servedPaths(resource: string, pathPrefix: string): string[] {
  const exact = metadataPath(resource);
  const paths = new Set<string>([exact]);
  if (exact.length > WELL_KNOWN.length + 1 && exact.endsWith('/')) paths.add(exact.slice(0, -1));
  if (pathPrefix !== '/') paths.add(WELL_KNOWN + pathPrefix);
  return [...paths];
}


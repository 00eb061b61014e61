/**
 * What a key's user and client may be: values that become the `x-auth-user` and
 * `x-auth-client` headers upstream, so printable ASCII (no CR, LF or other control
 * character, nothing outside ASCII), no leading or trailing space, and the lengths the admin
 * API allows for a key (`user` 1-256, `client` 1-64 characters). Neither header is a list,
 * so a comma is allowed; permissions, which are sent comma-separated, have the stricter
 * PERMISSION_PATTERN (above) and tenants TENANT_PATTERN (format.ts).
 *
 * One set of patterns for every way a value reaches an identity header: key creation (admin
 * API, CLI, console), permission groups in config, and OAuth access-token claims.
 */
/**
 * A permission: it is sent upstream comma-separated, so no comma, space or control character.
 * `/` for MCP method permissions (`mcp:tools/call:search`, src/mcp/permissions.ts).
 */
export const PERMISSION_PATTERN = /^[A-Za-z0-9_.:*/-]{1,128}$/;
export const PERMISSION_RULE = 'must be a permission name: 1-128 letters, digits, "_", ".", ":", "/", "*" or "-"';
export const USER_PATTERN = /^[\x21-\x7e](?:[\x20-\x7e]{0,254}[\x21-\x7e])?$/;
export const CLIENT_PATTERN = /^[\x21-\x7e](?:[\x20-\x7e]{0,62}[\x21-\x7e])?$/;

/**
 * What a key's user and client may be: values that become the `x-auth-user` and
 * `x-auth-client` headers upstream, so printable ASCII (no CR, LF or other control
 * character, nothing outside ASCII), no leading or trailing space, and the lengths the admin
 * API allows for a key (`user` 1-256, `client` 1-64 characters). Neither header is a list,
 * so a comma is allowed; permissions, which are sent comma-separated, have the stricter
 * PERMISSION_PATTERN (service.ts) and tenants TENANT_PATTERN (format.ts).
 *
 * Used for OAuth access-token claims (auth/access-token.ts); key creation should use them too.
 */
export const USER_PATTERN = /^[\x21-\x7e](?:[\x20-\x7e]{0,254}[\x21-\x7e])?$/;
export const CLIENT_PATTERN = /^[\x21-\x7e](?:[\x20-\x7e]{0,62}[\x21-\x7e])?$/;

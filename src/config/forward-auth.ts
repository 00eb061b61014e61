/**
 * The `forwardAuth:` config section: keygate as the authentication service of a proxy that
 * stays in front (nginx `auth_request`, Caddy `forward_auth`, Traefik `forwardAuth`, Envoy's
 * HTTP `ext_authz`), on a listener of its own (transports/forward-auth.ts, docs/forward-auth.md).
 * Off when absent. Plugged into the main schema as `forwardAuth: forwardAuthSchema.optional()`.
 *
 * Why a listener of its own and not a path on the proxy listener: the answer depends on headers
 * (the original method, host and URI) that only the proxy in front may set, so who may ask is
 * decided by the connection's address — which on the public listener, behind a load balancer,
 * is the balancer's, shared with every client. Bound to loopback by default, and answering only
 * `trustedProxies`, it is not reachable by the clients at all.
 *
 * @example
 *   forwardAuth:
 *     host: 127.0.0.1
 *     port: 8082
 *     trustedProxies: [127.0.0.1, "::1", 10.0.0.0/8]
 */
import { isIPv4, isIPv6 } from 'node:net';
import { z } from 'zod';

/** An IP address, or a CIDR range of them (`10.0.0.0/8`, `fd00::/8`). */
export function isAddressOrRange(value: string): boolean {
  const slash = value.indexOf('/');
  const address = slash === -1 ? value : value.slice(0, slash);
  const v4 = isIPv4(address);
  if (!v4 && !isIPv6(address)) return false;
  if (slash === -1) return true;
  const bits = value.slice(slash + 1);
  if (!/^[0-9]{1,3}$/.test(bits)) return false;
  return Number(bits) <= (v4 ? 32 : 128);
}

export const DEFAULT_TRUSTED_PROXIES = ['127.0.0.1', '::1'];

export const forwardAuthSchema = z.strictObject({
  host: z.string().min(1, 'must not be empty').default('127.0.0.1'),
  port: z.number({ error: 'must be a port number' }).int('must be a whole number').min(0, 'must be 0-65535').max(65535, 'must be 0-65535').default(8082),
  /** Connection addresses (or CIDR ranges) allowed to ask; everyone else gets 403. */
  trustedProxies: z
    .array(z.string().refine(isAddressOrRange, 'must be an IP address or a CIDR range such as 10.0.0.0/8'))
    .min(1, 'must list at least one address (the proxies that ask keygate)')
    .default(DEFAULT_TRUSTED_PROXIES),
});

export type ForwardAuthConfig = z.output<typeof forwardAuthSchema>;

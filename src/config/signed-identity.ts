/**
 * Signed identity (auth/identity-signer.ts): the deployment-wide signing settings and the
 * per-route opt-in.
 *
 * @example
 *   identitySigning: { issuer: keygate, rotateSeconds: 86400 }
 *   routes:
 *     - name: orders
 *       upstream: http://orders:3000
 *       signedIdentity: { header: x-keygate-identity, lifetimeSeconds: 60 }
 */
import { z } from 'zod';

const headerName = z
  .string()
  .regex(/^[a-z0-9!#$%&'*+.^_`|~-]+$/i, 'must be a valid HTTP header name')
  .transform((h) => h.toLowerCase());

export const identitySigningSchema = z.strictObject({
  issuer: z.string().min(1, 'must not be empty').max(256, 'must be at most 256 characters').default('keygate'),
  rotateSeconds: z.number({ error: 'must be a number (seconds)' }).int('must be a whole number').min(300, 'must be at least 300').default(86_400),
});

export const signedIdentitySchema = z.strictObject({
  header: headerName.default('x-keygate-identity'),
  /** Where the request-unique id goes when assertions are reused (perRequest: false). */
  requestIdHeader: headerName.default('x-request-id'),
  lifetimeSeconds: z.number({ error: 'must be a number (seconds)' }).int('must be a whole number').min(5, 'must be at least 5').max(3600, 'must be at most 3600').default(60),
  /** `aud`; by default the route's upstream origin. */
  audience: z.string().min(1, 'must not be empty').optional(),
  /** Sign every request (bound to its method, path and a unique jti) instead of reusing an assertion per identity. */
  perRequest: z.boolean().default(false),
});

export type IdentitySigningConfig = z.output<typeof identitySigningSchema>;
export type SignedIdentityConfig = z.output<typeof signedIdentitySchema>;

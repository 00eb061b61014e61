/**
 * The `limits:` config section: what the proxy listener lets a single client do before it
 * is cut off — slow or oversized request heads, slow bodies, too many connections, too many
 * failed authentications. Plugged into the main schema as `limits: limitsSchema.prefault({})`.
 *
 * @example
 *   limits:
 *     headersTimeoutMs: 10000
 *     requestTimeoutMs: 300000
 *     maxHeaderBytes: 16384
 *     connectionsPerAddress: 512
 *     connections: 10000
 *     failedAuth: { max: 60, windowMs: 60000, addresses: 100000, total: 6000 }
 *     quotaTimeZone: UTC
 */
import { z } from 'zod';

const ms = (what: string) => z.number({ error: `must be a number (${what})` }).int('must be a whole number');
const count = (what: string) => z.number({ error: `must be a number (${what})` }).int('must be a whole number').nonnegative('must be 0 or more');

export const limitsSchema = z
  .strictObject({
    headersTimeoutMs: ms('milliseconds').min(100, 'must be at least 100').default(10_000),
    requestTimeoutMs: ms('milliseconds').nonnegative('must be 0 (no limit) or more').default(300_000),
    maxHeaderBytes: z.number({ error: 'must be a number (bytes)' }).int('must be a whole number').min(1024, 'must be at least 1024').max(1024 * 1024, 'must be at most 1048576').default(16 * 1024),
    connectionsPerAddress: count('connections; 0 = no limit').default(512),
    connections: count('connections; 0 = no limit').default(10_000),
    failedAuth: z
      .strictObject({
        max: count('failed authentications; 0 = no limit').default(60),
        windowMs: ms('milliseconds').positive('must be greater than 0').default(60_000),
        addresses: z.number({ error: 'must be a number (addresses)' }).int('must be a whole number').min(1, 'must be at least 1').default(100_000),
        total: count('failed authentications over all addresses per windowMs; 0 = no limit').default(6_000),
      })
      .prefault({}),
    /** The time zone of quotas' days and months (`10000/day` starts afresh at midnight there). */
    quotaTimeZone: z
      .string()
      .refine((tz) => {
        try {
          new Intl.DateTimeFormat('en-US', { timeZone: tz });
          return true;
        } catch {
          return false;
        }
      }, 'must be an IANA time zone such as UTC or Europe/Paris')
      .default('UTC'),
  })
  .superRefine((value, ctx) => {
    if (value.requestTimeoutMs > 0 && value.requestTimeoutMs < value.headersTimeoutMs) {
      ctx.addIssue({ code: 'custom', path: ['requestTimeoutMs'], message: 'must be 0 or at least headersTimeoutMs (the request includes its headers)' });
    }
  });

export type LimitsConfig = z.output<typeof limitsSchema>;

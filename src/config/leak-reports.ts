/**
 * The `leakReports:` config section: where secret scanners report keygate keys they found in
 * public places, and what keygate does with a key that is reported (src/leaks/). Off when
 * absent. Plugged into the main schema as `leakReports: leakReportsSchema.optional()`.
 *
 * @example
 *   leakReports:
 *     github:                                   # GitHub's secret scanning partner program
 *       path: /.well-known/keygate/github-secret-scanning    # on the proxy listener
 *       keysUrl: https://api.github.com/meta/public_keys/secret_scanning
 *       action: revoke                          # revoke | notify
 *       maxBodyBytes: 1048576
 *       refetchCooldownMs: 300000                # GitHub allows 60 unauthenticated API calls an hour
 */
import { z } from 'zod';

export const LEAK_ACTIONS = ['revoke', 'notify'] as const;
export type LeakAction = (typeof LEAK_ACTIONS)[number];

export const GITHUB_SECRET_SCANNING_KEYS_URL = 'https://api.github.com/meta/public_keys/secret_scanning';
export const DEFAULT_GITHUB_LEAK_PATH = '/.well-known/keygate/github-secret-scanning';

/** An origin-form path: `/`-separated segments of URL path characters, no query, no dot segments, no `//`. */
const PATH = /^(?:\/[A-Za-z0-9._~!$&'()*+,;=:@%-]+)+$/;

function isHttpUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.hash === '';
  } catch {
    return false;
  }
}

const githubSchema = z.strictObject({
  path: z
    .string({ error: 'must be a path' })
    .regex(PATH, 'must be a path like /.well-known/keygate/github-secret-scanning (no query, no "//")')
    .refine((p) => !p.split('/').some((s) => s === '.' || s === '..'), 'must not contain "." or ".." segments')
    .default(DEFAULT_GITHUB_LEAK_PATH),
  keysUrl: z.string({ error: 'must be a URL' }).refine(isHttpUrl, 'must be an http:// or https:// URL').default(GITHUB_SECRET_SCANNING_KEYS_URL),
  action: z.enum(LEAK_ACTIONS, { error: `must be one of ${LEAK_ACTIONS.join(', ')}` }).default('revoke'),
  maxBodyBytes: z
    .number({ error: 'must be a number (bytes)' })
    .int('must be a whole number')
    .min(1024, 'must be at least 1024')
    .max(16 * 1024 * 1024, 'must be at most 16777216')
    .default(1024 * 1024),
  refetchCooldownMs: z.number({ error: 'must be a number (milliseconds)' }).int('must be a whole number').nonnegative('must be 0 or more').default(300_000),
});

export const leakReportsSchema = z.strictObject({
  github: githubSchema.optional(),
});

export type LeakReportsConfig = z.output<typeof leakReportsSchema>;
export type GitHubLeakConfig = z.output<typeof githubSchema>;

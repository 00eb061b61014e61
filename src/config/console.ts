/**
 * `admin.console` in the config: whether the web console is served on the admin listener,
 * the origin people open it at (which also says whether its cookie must be `Secure`), and
 * how long a session lasts. Validated here once, like every other section.
 */
import { z } from 'zod';

const milliseconds = z.number({ error: 'must be a number (milliseconds)' }).int('must be a whole number').min(60_000, 'must be at least 60000 (one minute)');

function isOrigin(value: string): boolean {
  try {
    const url = new URL(value);
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.pathname === '/' && !url.search && !url.hash && !url.username && !url.password;
  } catch {
    return false;
  }
}

export const consoleSchema = z
  .strictObject({
    enabled: z.boolean().default(true),
    /**
     * The URL people open the console at, when it is not the admin listener itself (a
     * TLS-terminating proxy in front of it). `https:` makes the session cookie `Secure`;
     * state-changing requests must come from exactly this origin.
     */
    origin: z
      .string()
      .refine(isOrigin, 'must be an origin such as https://keygate-admin.example.com (scheme, host and optional port; no path)')
      .transform((value) => new URL(value).origin)
      .optional(),
    sessionIdleMs: milliseconds.default(900_000),
    sessionMaxMs: milliseconds.default(28_800_000),
  })
  .refine((value) => value.sessionMaxMs >= value.sessionIdleMs, { path: ['sessionMaxMs'], message: 'must be at least sessionIdleMs' });

export type ConsoleConfig = z.output<typeof consoleSchema>;

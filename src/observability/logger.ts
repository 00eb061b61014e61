/**
 * pino, writing asynchronously to stdout. Every header that can carry a credential is
 * redacted wherever it appears, so even a debug line that dumps headers leaks nothing.
 */
import pino, { type Logger } from 'pino';

export type { Logger };

export const REDACT_PATHS = [
  '*.headers.authorization',
  '*.headers["x-api-key"]',
  '*.headers.cookie',
  '*.headers["set-cookie"]',
  '*.headers["proxy-authorization"]',
  'headers.authorization',
  'headers["x-api-key"]',
  'headers.cookie',
  'key',
  'hash',
  'value',
  'pepper',
  'masterKey',
];

export interface LoggerOptions {
  level: string;
  /** Synchronous writes: for the CLI and for tests that read the output right away. */
  sync?: boolean;
  destination?: pino.DestinationStream;
}

export function createLogger(options: LoggerOptions): Logger {
  const destination = options.destination ?? pino.destination({ fd: 1, sync: options.sync ?? false });
  return pino(
    {
      level: options.level,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}

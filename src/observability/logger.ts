/**
 * pino, writing asynchronously to stdout. Every header that can carry a credential is
 * redacted wherever it appears, so even a debug line that dumps headers leaks nothing.
 */
import pino, { type Logger } from 'pino';
import { LineBatch } from './line-batch.ts';

export type { Logger };

const CREDENTIAL_HEADERS = ['authorization', '["x-api-key"]', 'cookie', '["set-cookie"]', '["proxy-authorization"]'];
const at = (header: string) => (header.startsWith('[') ? header : `.${header}`);

/** Credential headers wherever a `headers` object sits, up to three levels deep, and secret-named fields. */
export const REDACT_PATHS = [
  ...CREDENTIAL_HEADERS.flatMap((h) => [`headers${at(h)}`, `*.headers${at(h)}`, `*.*.headers${at(h)}`, `*.*.*.headers${at(h)}`]),
  'key',
  'hash',
  'value',
  'pepper',
  'masterKey',
];

/**
 * pino's isoTime formats a Date for every line; at thousands of access-log lines a second
 * most lines share their millisecond, so the formatted field is kept for the millisecond.
 */
let lastMs = -1;
let lastField = '';
export function isoTimeField(): string {
  const now = Date.now();
  if (now !== lastMs) {
    lastMs = now;
    lastField = `,"time":"${new Date(now).toISOString()}"`;
  }
  return lastField;
}

export interface LoggerOptions {
  level: string;
  /** Synchronous writes: for the CLI and for tests that read the output right away. */
  sync?: boolean;
  destination?: pino.DestinationStream;
}

/** Async writes are batched up to this many bytes, and never held longer than FLUSH_MS. */
const BATCH_BYTES = 16 * 1024;
const FLUSH_MS = 250;

export interface Loggers {
  /** Writes out what is batched (shutdown). */
  flush(): void;
  logger: Logger;
  /**
   * The access log: same destination, but no redaction pass. Its lines have a fixed shape
   * built in transports/http.ts that holds no header or secret, and redaction was a sixth of the
   * request path's CPU time.
   */
  access: Logger;
}

export function createLoggers(options: LoggerOptions): Loggers {
  const sync = options.sync ?? false;
  // Batching turns one write syscall per access-log line into one per ~60 lines; the delay
  // bounds how long a line waits.
  const boom = options.destination ? null : pino.destination({ fd: 1, sync });
  const batch = boom && !sync ? new LineBatch(boom, BATCH_BYTES, FLUSH_MS) : null;
  const destination = options.destination ?? batch ?? boom!;
  // Held lines are written even when the process ends without a shutdown (a crash, exit()).
  if (batch) process.once('exit', () => batch.flushSync());
  const common = {
    level: options.level,
    base: { pid: process.pid },
    timestamp: isoTimeField,
    formatters: { level: (label: string) => ({ level: label }) },
  };
  return {
    logger: pino({ ...common, redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, destination),
    access: pino({ ...common, base: { pid: process.pid, log: 'access' } }, destination),
    flush: () => {
      try {
        (batch ?? boom)?.flushSync();
      } catch {
        // stdout closed: nothing left to write to
      }
    },
  };
}

export function createLogger(options: LoggerOptions): Logger {
  return createLoggers(options).logger;
}

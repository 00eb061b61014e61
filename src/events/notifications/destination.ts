/**
 * One place notifications go (an SMTP server, a webhook URL), as the delivery queue sees it:
 * it tries once and says whether trying again could help.
 */
import type { KeygateEvent, KeygateEventType } from '../types.ts';

export type Outcome =
  | { ok: true }
  | {
      ok: false;
      /** False for answers that will not change (4xx other than 408/429, SMTP 5xx). */
      retry: boolean;
      /** For the log: a status or error code and short message; never a secret or a payload. */
      reason: string;
      /** The receiver asked for this much quiet (HTTP `Retry-After`). */
      retryAfterMs?: number;
    };

export interface Destination {
  readonly kind: 'email' | 'webhook';
  /** Host (and port) only, for logs: a URL's path or query may hold a token. */
  readonly host: string;
  readonly events: ReadonlySet<KeygateEventType>;
  /** One attempt. Resolves (never rejects) with the outcome; gives up early when `signal` aborts. */
  deliver(event: KeygateEvent, signal: AbortSignal): Promise<Outcome>;
  close(): Promise<void>;
}

/** A short, secret-free description of a thrown error (code and first line of the message). */
export function describeError(error: unknown): string {
  const e = error as { name?: unknown; code?: unknown; message?: unknown; cause?: { code?: unknown; message?: unknown } } | null;
  const code = typeof e?.cause?.code === 'string' ? e.cause.code : typeof e?.code === 'string' ? e.code : undefined;
  const message = typeof e?.cause?.message === 'string' ? e.cause.message : typeof e?.message === 'string' ? e.message : String(error);
  const line = message.split(/\r?\n/, 1)[0]!.slice(0, 200);
  return code !== undefined && !line.includes(code) ? `${code}: ${line}` : line;
}

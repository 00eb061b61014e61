/**
 * Email delivery over SMTP with nodemailer: one pooled transport, created once, sending one
 * plain-text message per event to every configured address.
 */
import { createTransport } from 'nodemailer';
import type { KeygateEvent, KeygateEventType } from '../types.ts';
import type { EmailConfig } from '../../config/notifications.ts';
import { describeError, type Destination, type Outcome } from './destination.ts';
import { emailMessage, publicEvent, redactKeys } from './format.ts';

export interface EmailDestinationOptions {
  config: EmailConfig;
  /** The SMTP password, read from `smtp.passwordEnv`; undefined without authentication. */
  password: string | undefined;
  events: ReadonlySet<KeygateEventType>;
}

/** SMTP replies in the 5xx range are permanent: sending the same message again fails the same way. */
function isPermanent(error: unknown): boolean {
  const code = (error as { responseCode?: unknown } | null)?.responseCode;
  return typeof code === 'number' && code >= 500 && code < 600;
}

export function createEmailDestination({ config, password, events }: EmailDestinationOptions): Destination {
  const { smtp } = config;
  const transport = createTransport({
    pool: true,
    host: smtp.host,
    port: smtp.port,
    secure: smtp.secure,
    requireTLS: smtp.requireTLS,
    ...(smtp.user !== undefined && password !== undefined ? { auth: { user: smtp.user, pass: password } } : {}),
    maxConnections: smtp.maxConnections,
    connectionTimeout: smtp.timeoutMs,
    greetingTimeout: smtp.timeoutMs,
    socketTimeout: smtp.timeoutMs * 3,
    // The messages are plain text built here: nothing may pull in files or URLs.
    disableFileAccess: true,
    disableUrlAccess: true,
    logger: false,
  });

  return {
    kind: 'email',
    host: `${smtp.host}:${smtp.port}`,
    events,
    async deliver(event: KeygateEvent, signal: AbortSignal): Promise<Outcome> {
      if (signal.aborted) return { ok: false, retry: false, reason: 'aborted: notifier closed' };
      const safe = publicEvent(event);
      const { subject, text } = emailMessage(safe, config.subjectPrefix);
      try {
        await transport.sendMail({ from: config.from, to: config.to, subject, text, headers: { 'x-keygate-event-id': safe.id, 'x-keygate-event': safe.type } });
        return { ok: true };
      } catch (error) {
        if (signal.aborted) return { ok: false, retry: false, reason: 'aborted: notifier closed' };
        return { ok: false, retry: !isPermanent(error), reason: redactKeys(describeError(error)) };
      }
    },
    async close(): Promise<void> {
      transport.close();
    },
  };
}

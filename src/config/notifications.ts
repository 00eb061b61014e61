/**
 * The `notifications:` config section: which events admins are told about, and where they
 * go (email over SMTP, signed webhooks). Secrets never appear in the file: the SMTP password
 * and each webhook's signing secret are named by environment variable and read once, when
 * the notifier is created.
 *
 * @example
 *   notifications:
 *     events: [key.created, key.revoked, key.expiring]    # default: every key.* event
 *     email:
 *       smtp: { host: smtp.example.com, port: 587, user: keygate, passwordEnv: KEYGATE_SMTP_PASSWORD }
 *       from: keygate@example.com
 *       to: [platform-admins@example.com]
 *     webhooks:
 *       - url: https://hooks.example.com/keygate
 *         secretEnv: KEYGATE_WEBHOOK_SECRET                # "whsec_<base64>"
 *
 * Plugged into the main schema as `notifications: notificationsSchema.prefault({})`, so an
 * absent section means "no destinations" and every default is filled in.
 */
import { z } from 'zod';
import { KEY_EVENT_TYPES, KEYGATE_EVENT_TYPES } from '../events/types.ts';

const positiveInt = (what: string) => z.number({ error: `must be a number (${what})` }).int('must be a whole number').positive('must be greater than 0');
const port = z.number({ error: 'must be a port number' }).int('must be a whole number').min(1, 'must be 1-65535').max(65535, 'must be 1-65535');

const eventType = z.enum(KEYGATE_EVENT_TYPES, { error: `must be one of ${KEYGATE_EVENT_TYPES.join(', ')}` });
const eventList = z
  .array(eventType, { error: 'must be a list of event types' })
  .min(1, 'must list at least one event type (leave the field out for the default)')
  .transform((list) => [...new Set(list)]);

/** The name of an environment variable, and not, by mistake, the secret itself. */
const envName = (what: string) =>
  z
    .string({ error: `must be the name of the environment variable holding the ${what}` })
    .regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/, `must be the name of the environment variable holding the ${what} (letters, digits and "_"), not the ${what} itself`)
    .refine((name) => !name.startsWith('whsec_'), `must be the name of the environment variable holding the ${what}, not the ${what} itself`);

const MAILBOX = /^[^\s@<>",;]+@[^\s@<>",;]+$/;
const mailbox = z
  .string({ error: 'must be an email address' })
  .refine((v) => MAILBOX.test(v), 'must be an email address like admins@example.com');
/** `keygate@example.com` or `Keygate <keygate@example.com>`. */
const sender = z
  .string({ error: 'must be an email address' })
  .refine((v) => {
    const named = /^([^<>\r\n]*)<([^<>]+)>$/.exec(v.trim());
    return named ? MAILBOX.test(named[2]!) : MAILBOX.test(v);
  }, 'must be an email address, optionally with a name: "Keygate <keygate@example.com>"');

function isHttpUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.hash === '' && url.username === '' && url.password === '';
  } catch {
    return false;
  }
}

const smtp = z
  .strictObject({
    host: z.string({ error: 'is required (the SMTP server host name)' }).min(1, 'must not be empty'),
    port: port.default(587),
    /** TLS from the first byte (port 465). Default: true on port 465, else false (STARTTLS when offered). */
    secure: z.boolean({ error: 'must be true or false' }).optional(),
    /** Refuse to send unless the server upgrades with STARTTLS. */
    requireTLS: z.boolean({ error: 'must be true or false' }).default(false),
    user: z.string().min(1, 'must not be empty').optional(),
    passwordEnv: envName('SMTP password').optional(),
    /** Connect and greeting timeout; the socket's idle timeout is three times this. */
    timeoutMs: positiveInt('milliseconds').default(10_000),
    /** Pooled connections kept open to the server. */
    maxConnections: positiveInt('connections').default(2),
  })
  .superRefine((s, ctx) => {
    if (s.user !== undefined && s.passwordEnv === undefined) ctx.addIssue({ code: 'custom', path: ['passwordEnv'], message: 'is required with user (the environment variable holding the SMTP password)' });
    if (s.passwordEnv !== undefined && s.user === undefined) ctx.addIssue({ code: 'custom', path: ['user'], message: 'is required with passwordEnv' });
    if (s.secure === true && s.requireTLS) ctx.addIssue({ code: 'custom', path: ['requireTLS'], message: 'applies to STARTTLS only; leave it out with secure: true' });
  })
  .transform((s) => ({ ...s, secure: s.secure ?? s.port === 465 }));

const email = z.strictObject({
  smtp,
  from: sender,
  to: z.array(mailbox, { error: 'must be a list of email addresses' }).min(1, 'must list at least one address'),
  /** Put before every subject. */
  subjectPrefix: z.string().max(64, 'must be at most 64 characters').default('[keygate]'),
  /** Overrides `notifications.events` for email. */
  events: eventList.optional(),
});

const webhook = z.strictObject({
  url: z.string({ error: 'is required (the http(s) URL to POST to)' }).refine(isHttpUrl, 'must be an http(s) URL without credentials or fragment'),
  secretEnv: envName('webhook signing secret'),
  /** Overrides `notifications.events` for this webhook. */
  events: eventList.optional(),
  /** Per attempt, until the response headers arrive. */
  timeoutMs: positiveInt('milliseconds').default(10_000),
});

export const notificationsSchema = z
  .strictObject({
    events: eventList.default([...KEY_EVENT_TYPES]),
    email: email.optional(),
    webhooks: z.array(webhook, { error: 'must be a list of webhooks' }).default([]),
    retry: z
      .strictObject({
        /** Attempts in all, the first included. */
        attempts: positiveInt('attempts').max(20, 'must be at most 20').default(5),
        /** Before the 2nd attempt; doubled for each one after (with ±25% jitter). */
        baseDelayMs: positiveInt('milliseconds').default(1000),
        maxDelayMs: positiveInt('milliseconds').default(60_000),
      })
      .prefault({}),
    queue: z
      .strictObject({
        /** Deliveries held at once (waiting, in flight or waiting to retry); more are dropped and logged. */
        max: positiveInt('deliveries').default(1000),
        /** Deliveries in flight at once, all destinations together. */
        concurrency: positiveInt('deliveries').max(64, 'must be at most 64').default(4),
      })
      .prefault({}),
  })
  .superRefine((n, ctx) => {
    const seen = new Map<string, number>();
    n.webhooks.forEach((w, i) => {
      const previous = seen.get(w.url);
      if (previous !== undefined) ctx.addIssue({ code: 'custom', path: ['webhooks', i, 'url'], message: `duplicates webhooks[${previous}].url` });
      seen.set(w.url, i);
    });
    if (n.retry.maxDelayMs < n.retry.baseDelayMs) ctx.addIssue({ code: 'custom', path: ['retry', 'maxDelayMs'], message: 'must not be less than retry.baseDelayMs' });
  });

export type NotificationsConfig = z.output<typeof notificationsSchema>;
export type RawNotificationsConfig = z.input<typeof notificationsSchema>;
export type EmailConfig = NonNullable<NotificationsConfig['email']>;
export type WebhookConfig = NotificationsConfig['webhooks'][number];

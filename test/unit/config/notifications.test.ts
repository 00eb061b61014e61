import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { formatIssues } from '../../../src/config/load.ts';
import { notificationsSchema } from '../../../src/config/notifications.ts';

/** The problems the section is refused with, as `keygate config check` would print them. */
function problems(raw: unknown): string[] {
  const result = notificationsSchema.safeParse(raw, { reportInput: true }); // as parseConfig does
  if (result.success) throw new Error('the section was accepted');
  return formatIssues(result.error);
}

const email = { smtp: { host: 'smtp.example.com' }, from: 'keygate@example.com', to: ['admins@example.com'] };
const webhook = { url: 'https://hooks.example.com/keygate', secretEnv: 'KEYGATE_WEBHOOK_SECRET' };

describe('notificationsSchema defaults', () => {
  it('turns an empty section into "no destinations, every key event"', () => {
    expect(notificationsSchema.parse({})).toEqual({
      events: ['key.created', 'key.revoked', 'key.rotated', 'key.expiring', 'key.expired', 'key.leaked', 'key.quota_low'],
      webhooks: [],
      retry: { attempts: 5, baseDelayMs: 1000, maxDelayMs: 60_000 },
      queue: { max: 1000, concurrency: 4 },
    });
  });

  it('accepts the documented example', () => {
    const raw = parseYaml(`
events: [key.created, key.revoked, key.expiring]
email:
  smtp: { host: smtp.example.com, port: 587, secure: false, user: keygate, passwordEnv: KEYGATE_SMTP_PASSWORD }
  from: keygate@example.com
  to: [platform-admins@example.com]
webhooks:
  - url: https://hooks.example.com/keygate
    secretEnv: KEYGATE_WEBHOOK_SECRET
`);
    const config = notificationsSchema.parse(raw);
    expect(config.events).toEqual(['key.created', 'key.revoked', 'key.expiring']);
    expect(config.email).toEqual({
      smtp: { host: 'smtp.example.com', port: 587, secure: false, requireTLS: false, user: 'keygate', passwordEnv: 'KEYGATE_SMTP_PASSWORD', timeoutMs: 10_000, maxConnections: 2 },
      from: 'keygate@example.com',
      to: ['platform-admins@example.com'],
      subjectPrefix: '[keygate]',
    });
    expect(config.webhooks).toEqual([{ url: 'https://hooks.example.com/keygate', secretEnv: 'KEYGATE_WEBHOOK_SECRET', timeoutMs: 10_000 }]);
  });

  it('uses TLS from the start on port 465 unless told otherwise, and port 587 by default', () => {
    expect(notificationsSchema.parse({ email: { ...email, smtp: { host: 'h', port: 465 } } }).email!.smtp.secure).toBe(true);
    expect(notificationsSchema.parse({ email: { ...email, smtp: { host: 'h', port: 465, secure: false } } }).email!.smtp.secure).toBe(false);
    expect(notificationsSchema.parse({ email }).email!.smtp).toMatchObject({ port: 587, secure: false });
  });

  it('accepts a sender with a display name, and drops repeated event types', () => {
    const config = notificationsSchema.parse({ events: ['key.created', 'key.created', 'secret.removed'], email: { ...email, from: 'Keygate <keygate@example.com>' } });
    expect(config.events).toEqual(['key.created', 'secret.removed']);
    expect(config.email!.from).toBe('Keygate <keygate@example.com>');
  });
});

describe('notificationsSchema errors name the field', () => {
  it('unknown event types, and an empty list', () => {
    expect(problems({ events: ['key.created', 'key.deleted'] })).toEqual([
      'events[1]: must be one of key.created, key.revoked, key.rotated, key.expiring, key.expired, key.leaked, key.quota_low, secret.created, secret.renamed, secret.removed',
    ]);
    expect(problems({ events: [] })).toEqual(['events: must list at least one event type (leave the field out for the default)']);
    expect(problems({ webhooks: [{ ...webhook, events: ['nope'] }] })[0]).toMatch(/^webhooks\[0\]\.events\[0\]: must be one of/);
  });

  it('missing and malformed email fields', () => {
    expect(problems({ email: {} })).toEqual(['email.smtp: is required', 'email.from: is required', 'email.to: is required']);
    expect(problems({ email: { ...email, to: [] } })).toEqual(['email.to: must list at least one address']);
    expect(problems({ email: { ...email, to: ['admins'] } })).toEqual(['email.to[0]: must be an email address like admins@example.com']);
    expect(problems({ email: { ...email, from: 'keygate' } })[0]).toMatch(/^email\.from: must be an email address/);
    expect(problems({ email: { ...email, smtp: { host: 'h', port: 70000 } } })).toEqual(['email.smtp.port: must be 1-65535']);
    expect(problems({ email: { ...email, smtp: { host: 'h', tls: true } } })).toEqual(['email.smtp: unknown field "tls"']);
  });

  it('SMTP credentials come as a user and the name of a variable, together', () => {
    expect(problems({ email: { ...email, smtp: { host: 'h', user: 'keygate' } } })).toEqual([
      'email.smtp.passwordEnv: is required with user (the environment variable holding the SMTP password)',
    ]);
    expect(problems({ email: { ...email, smtp: { host: 'h', passwordEnv: 'P' } } })).toEqual(['email.smtp.user: is required with passwordEnv']);
    expect(problems({ email: { ...email, smtp: { host: 'h', user: 'u', password: 'hunter2' } } })).toContain('email.smtp: unknown field "password"');
    expect(problems({ email: { ...email, smtp: { host: 'h', user: 'u', passwordEnv: 'hunter2 is my password' } } })[0]).toMatch(
      /^email\.smtp\.passwordEnv: must be the name of the environment variable holding the SMTP password/,
    );
  });

  it('webhooks: an http(s) URL and the name of the variable holding the secret, not the secret', () => {
    expect(problems({ webhooks: [{ ...webhook, url: 'ftp://hooks.example.com' }] })).toEqual(['webhooks[0].url: must be an http(s) URL without credentials or fragment']);
    expect(problems({ webhooks: [{ ...webhook, url: 'https://user:pw@hooks.example.com' }] })).toEqual(['webhooks[0].url: must be an http(s) URL without credentials or fragment']);
    expect(problems({ webhooks: [{ url: webhook.url }] })).toEqual(['webhooks[0].secretEnv: is required']);
    expect(problems({ webhooks: [{ ...webhook, secretEnv: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw' }] })).toEqual([
      'webhooks[0].secretEnv: must be the name of the environment variable holding the webhook signing secret, not the webhook signing secret itself',
    ]);
    expect(problems({ webhooks: [{ ...webhook, secret: 'whsec_x' }] })).toEqual(['webhooks[0]: unknown field "secret"']);
    expect(problems({ webhooks: [webhook, webhook] })).toEqual(['webhooks[1].url: duplicates webhooks[0].url']);
  });

  it('retry and queue bounds', () => {
    expect(problems({ retry: { attempts: 0 } })).toEqual(['retry.attempts: must be greater than 0']);
    expect(problems({ retry: { baseDelayMs: 5000, maxDelayMs: 1000 } })).toEqual(['retry.maxDelayMs: must not be less than retry.baseDelayMs']);
    expect(problems({ queue: { max: 1.5 } })).toEqual(['queue.max: must be a whole number']);
    expect(problems({ queue: { concurrency: 1000 } })).toEqual(['queue.concurrency: must be at most 64']);
    expect(problems({ smtp: {} })).toEqual(['(top level): unknown field "smtp"']);
  });
});

import { describe, expect, it } from 'vitest';
import { emailMessage, publicEvent, redactKeys, webhookBody } from '../../../../src/events/notifications/format.ts';
import type { KeygateEvent } from '../../../../src/events/types.ts';
import { generateKey } from '../../../../src/keys/format.ts';
import { EVENT_AT, KEY_LINES, keyEvent } from '../../../helpers/events.ts';

const KEY = generateKey('kg', 'acme');
const AT = EVENT_AT;
const DAY = 86_400_000;

const event = (type: KeygateEvent['type'], over: Partial<KeygateEvent> = {}): KeygateEvent => keyEvent(type, over);

describe('emailMessage', () => {
  it('says who did what to which key, for a person', () => {
    const { subject, text } = emailMessage(event('key.created'));
    expect(subject).toBe("[keygate] Key created: 'ci-bot' (kg_acme_3f9a…) for tenant acme by key_aaaaaaaaaaaaaaaaaaaa");
    expect(text).toBe(
      [
        'A new API key was created.',
        '',
        ...KEY_LINES,
        '  Expires:    2030-04-01T09:30:00Z',
        '  Done by:    key_aaaaaaaaaaaaaaaaaaaa',
        '  When:       2030-01-01T09:30:00Z',
        '  Event id:   evt_0123456789abcdef01234567',
        '',
        'The key itself was shown once, to whoever created it; keygate does not keep it and never sends it. If you did not expect this key, revoke it.',
        '',
        '-- ',
        'Sent by keygate to the admins listed in its notifications configuration.',
        '',
      ].join('\n'),
    );
  });

  it('a rotation with an overlap says until when the old key works; without one, that it was revoked at once', () => {
    const overlap = emailMessage(event('key.rotated', { target: { ...event('key.rotated').target, revokesAt: AT + DAY } })).text;
    expect(overlap).toContain('this one keeps working until 2030-01-02T09:30:00Z, then is refused.');
    expect(overlap).toContain('  Stops at:   2030-01-02T09:30:00Z\n');
    expect(overlap).toContain('Move its clients to the new key before then.');
    const atOnce = emailMessage(event('key.rotated')).text;
    expect(atOnce).toContain('this one was revoked at once.');
    expect(atOnce).not.toContain('Stops at');
    // Only a finite number survives into what is sent.
    expect(publicEvent(event('key.rotated', { target: { revokesAt: AT + DAY } })).target).toEqual({ revokesAt: AT + DAY });
    expect(publicEvent(event('key.rotated', { target: { revokesAt: 'soon' as unknown as number } })).target).toEqual({});
  });

  it('has a subject for every event type', () => {
    const subjects = {
      'key.revoked': emailMessage(event('key.revoked', { actor: 'cli' }), '').subject,
      'key.rotated': emailMessage(event('key.rotated')).subject,
      'key.expired': emailMessage(event('key.expired', { actor: 'keygate' })).subject,
      'secret.created': emailMessage(event('secret.created', { tenant: 'system', target: { secretId: 'openai', name: 'OpenAI' } })).subject,
      'secret.renamed': emailMessage(event('secret.renamed', { tenant: 'system', target: { secretId: 'openai', name: 'OpenAI prod' } })).subject,
      'secret.removed': emailMessage(event('secret.removed', { tenant: 'system', target: { secretId: 'openai' } })).subject,
    };
    expect(subjects).toEqual({
      'key.revoked': "Key revoked: 'ci-bot' (kg_acme_3f9a…) in tenant acme by the keygate command line",
      'key.rotated': "[keygate] Key rotated: 'ci-bot' (kg_acme_3f9a…) in tenant acme by key_aaaaaaaaaaaaaaaaaaaa",
      'key.expired': "[keygate] Key expired: 'ci-bot' (kg_acme_3f9a…) in tenant acme",
      'secret.created': "[keygate] Upstream secret created: 'OpenAI' (openai) by key_aaaaaaaaaaaaaaaaaaaa",
      'secret.renamed': "[keygate] Upstream secret renamed: 'OpenAI prod' (openai) by key_aaaaaaaaaaaaaaaaaaaa",
      'secret.removed': '[keygate] Upstream secret removed: openai by key_aaaaaaaaaaaaaaaaaaaa',
    });
  });

  it('words reminders by the time actually left', () => {
    const reminder = (expiresAt: number, reminder: '30d' | '7d' | 'today') =>
      emailMessage(event('key.expiring', { actor: null, target: { name: 'ci-bot', prefix: 'kg_acme_3f9a…', expiresAt, reminder } })).subject;
    expect(reminder(AT + 30 * DAY, '30d')).toBe("[keygate] Key expires in 30 days: 'ci-bot' (kg_acme_3f9a…) in tenant acme");
    expect(reminder(AT + 5 * DAY - 1000, '7d')).toBe("[keygate] Key expires in 5 days: 'ci-bot' (kg_acme_3f9a…) in tenant acme");
    expect(reminder(AT + 3600_000, 'today')).toBe("[keygate] Key expires today: 'ci-bot' (kg_acme_3f9a…) in tenant acme");
    const { text } = emailMessage(event('key.expiring', { actor: null, target: { name: 'ci-bot', expiresAt: AT + DAY, reminder: '7d' } }));
    expect(text).toContain('  By:         keygate (automatic)\n');
    expect(text).toContain('move its clients over');
  });

  it('keeps names on one line, so nothing can be injected into the subject', () => {
    const { subject, text } = emailMessage(event('key.created', { target: { name: 'evil\r\nBcc: everyone@example.com', prefix: 'kg_acme_3f9a…' } }));
    expect(subject).not.toMatch(/[\r\n]/);
    expect(subject).toContain("'evil Bcc: everyone@example.com'");
    expect(text).toContain('Name:       evil Bcc: everyone@example.com\n');
  });
});

describe('publicEvent and webhookBody', () => {
  it('copy only the known fields', () => {
    const smuggled = Object.assign(event('key.created'), { key: KEY, hash: 'ab'.repeat(32), value: 'sk-secret' });
    Object.assign(smuggled.target, { key: KEY, secretValue: 'sk-secret' });
    const copy = publicEvent(smuggled);
    expect(Object.keys(copy).sort()).toEqual(['actor', 'at', 'id', 'target', 'tenant', 'type']);
    expect(Object.keys(copy.target).sort()).toEqual(['expiresAt', 'keyId', 'name', 'prefix', 'role']);
    const body = webhookBody(smuggled);
    expect(body).not.toContain(KEY);
    expect(body).not.toContain('sk-secret');
    expect(body).not.toContain('ab'.repeat(32));
    expect(JSON.parse(body)).toEqual({ type: 'key.created', timestamp: '2030-01-01T09:30:00.000Z', data: copy });
  });

  it('redact a key (or a hex digest) typed into a name', () => {
    expect(publicEvent(event('key.created', { target: { name: `my key is ${KEY}!` } })).target.name).toBe('my key is [redacted key]!');
    expect(redactKeys(`(${KEY})`)).toBe('([redacted key])');
    expect(redactKeys(`foo_${KEY}`)).toBe('foo_[redacted key]');
    expect(redactKeys(`body ${KEY.slice(-64)}`)).toBe('body [redacted]');
    expect(redactKeys('key_0123456789abcdef0123 evt_0123456789abcdef01234567')).toBe('key_0123456789abcdef0123 evt_0123456789abcdef01234567');
    const { subject, text } = emailMessage(event('key.created', { target: { name: KEY, prefix: KEY } }));
    expect(subject + text).not.toContain(KEY.slice(-64));
  });
});

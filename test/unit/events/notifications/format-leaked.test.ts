/**
 * What admins read about a leaked key (`key.leaked`): the email and the webhook payload say
 * which key, where it was found and whether keygate revoked it, and never carry a key.
 */
import { describe, expect, it } from 'vitest';
import { notificationsSchema } from '../../../../src/config/notifications.ts';
import { emailMessage, publicEvent, webhookBody } from '../../../../src/events/notifications/format.ts';
import type { KeygateEvent } from '../../../../src/events/types.ts';
import { generateKey } from '../../../../src/keys/format.ts';
import { KEY_LINES, keyEvent } from '../../../helpers/events.ts';

const URL_FOUND = 'https://github.com/octo-org/octo-repo/blob/2f3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c/.env#L3';

const leaked = (target: Partial<KeygateEvent['target']> = {}): KeygateEvent =>
  keyEvent('key.leaked', { actor: 'github-secret-scanning' }, { expiresAt: null, foundAt: URL_FOUND, foundIn: 'commit', revoked: true, ...target });

describe('key.leaked notifications', () => {
  it('email: a revoked leak says so, where it was found, and what to do', () => {
    const { subject, text } = emailMessage(leaked());
    expect(subject).toBe("[keygate] Key leaked and revoked: 'ci-bot' (kg_acme_3f9a…) in tenant acme, reported by github-secret-scanning");
    expect(text).toBe(
      [
        'A secret scanner found this API key where it should not be and reported it; keygate revoked it. It stops working everywhere within moments, and cannot be reinstated.',
        '',
        ...KEY_LINES,
        '  Expires:    never',
        `  Found at:   ${URL_FOUND}`,
        '  Found in:   commit',
        '  Revoked:    yes',
        '  Done by:    github-secret-scanning',
        '  When:       2030-01-01T09:30:00Z',
        '  Event id:   evt_0123456789abcdef01234567',
        '',
        'Give its clients a new key, remove the old one from where it was found, and find out how it got there.',
        '',
        '-- ',
        'Sent by keygate to the admins listed in its notifications configuration.',
        '',
      ].join('\n'),
    );
  });

  it('email: a leak keygate only reports says loudly that the key still works', () => {
    const { subject, text } = emailMessage(leaked({ revoked: false }));
    expect(subject).toBe("[keygate] Key leaked: 'ci-bot' (kg_acme_3f9a…) in tenant acme, reported by github-secret-scanning — it still works");
    expect(text).toContain('the key was NOT revoked and still works.');
    expect(text).toContain('  Revoked:    no, the key still works\n');
    expect(text).toContain('Rotate or revoke it now');
  });

  it('webhook: the leak fields are copied (single-line, key-free), nothing else rides along', () => {
    const key = generateKey('kg', 'acme');
    const event = leaked({ foundAt: `${URL_FOUND}?k=${key}\r\nX-Injected: 1`, foundIn: 'content' });
    Object.assign(event.target, { token: key, url: URL_FOUND });
    const copy = publicEvent(event);
    expect(Object.keys(copy.target).sort()).toEqual(['expiresAt', 'foundAt', 'foundIn', 'keyId', 'name', 'prefix', 'revoked', 'role']);
    expect(copy.target.foundAt).toBe(`${URL_FOUND}?k=[redacted key] X-Injected: 1`);
    expect(copy.target.revoked).toBe(true);
    const body = webhookBody(event);
    expect(body).not.toContain(key);
    expect(JSON.parse(body)).toMatchObject({ type: 'key.leaked', data: { target: { foundIn: 'content', revoked: true } } });
    // Only booleans count as revoked.
    expect(publicEvent(leaked({ revoked: 'yes' as unknown as boolean })).target.revoked).toBeUndefined();
  });

  it('is sent by default, with the other key events', () => {
    expect(notificationsSchema.parse({}).events).toContain('key.leaked');
  });
});

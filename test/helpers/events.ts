/**
 * A sample key event for the notification-format tests ('ci-bot', key_bbb…, in tenant acme,
 * done by key_aaa… on 2030-01-01 09:30 UTC), and the key lines every key email shows for it.
 */
import type { KeygateEvent } from '../../src/events/types.ts';

export const EVENT_AT = Date.UTC(2030, 0, 1, 9, 30);
const DAY = 86_400_000;

export function keyEvent(type: KeygateEvent['type'], over: Partial<KeygateEvent> = {}, target: Partial<KeygateEvent['target']> = {}): KeygateEvent {
  return {
    id: 'evt_0123456789abcdef01234567',
    type,
    at: EVENT_AT,
    actor: 'key_aaaaaaaaaaaaaaaaaaaa',
    tenant: 'acme',
    target: { keyId: 'key_bbbbbbbbbbbbbbbbbbbb', name: 'ci-bot', prefix: 'kg_acme_3f9a…', role: 'api-user', expiresAt: EVENT_AT + 90 * DAY, ...target },
    ...over,
  };
}

/** The lines of the email that name the sample event's key. */
export const KEY_LINES = ['  Tenant:     acme', '  Name:       ci-bot', '  Prefix:     kg_acme_3f9a…', '  Key id:     key_bbbbbbbbbbbbbbbbbbbb', '  Role:       api-user'];

/**
 * What a notification says: the email an admin reads and the JSON a webhook receives.
 *
 * Both are built from an explicit copy of the event's known fields ({@link publicEvent}),
 * never by spreading the event, so nothing that was not meant to be sent can ride along.
 * As a last guard, anything shaped like a full API key (`<prefix>_<tenant>_<64 hex>`) is
 * replaced before the text leaves keygate: a name or a reason typed by a person could
 * contain one by mistake.
 */
import type { KeygateEvent, KeygateEventTarget } from '../types.ts';

/** A full key anywhere in a string: prefix, tenant and the 64 lower-case hex of random part and checksum. */
const FULL_KEY = /[a-z][a-z0-9]{0,15}_[a-z0-9][a-z0-9-]{0,62}_[0-9a-f]{64}/g;
/** Key bodies without their prefix, and hex digests (a key hash is 64 hex): ids are far shorter. */
const LONG_HEX = /[0-9a-f]{48,}/gi;

export function redactKeys(text: string): string {
  return text.replace(FULL_KEY, '[redacted key]').replace(LONG_HEX, '[redacted]');
}

function clean(value: unknown, max = 200): string | undefined {
  if (typeof value !== 'string') return undefined;
  const single = redactKeys(value.slice(0, max * 4)).replace(/[\u0000-\u001f\u007f\u2028\u2029]+/g, ' ');
  return single.length > max ? `${single.slice(0, max - 1)}…` : single;
}

/** The event as it may be shown to anyone: known fields only, strings single-line and key-free. */
export function publicEvent(event: KeygateEvent): KeygateEvent {
  const t = event.target ?? {};
  const target: KeygateEventTarget = {};
  const keyId = clean(t.keyId);
  const name = clean(t.name);
  const prefix = clean(t.prefix, 100);
  const role = clean(t.role, 50);
  const secretId = clean(t.secretId);
  const foundAt = clean(t.foundAt, 500);
  const foundIn = clean(t.foundIn, 50);
  if (keyId !== undefined) target.keyId = keyId;
  if (name !== undefined) target.name = name;
  if (prefix !== undefined) target.prefix = prefix;
  if (role !== undefined) target.role = role;
  if (typeof t.expiresAt === 'number' && Number.isFinite(t.expiresAt)) target.expiresAt = t.expiresAt;
  else if (t.expiresAt === null) target.expiresAt = null;
  if (typeof t.revokesAt === 'number' && Number.isFinite(t.revokesAt)) target.revokesAt = t.revokesAt;
  if (secretId !== undefined) target.secretId = secretId;
  if (t.reminder === '30d' || t.reminder === '7d' || t.reminder === 'today') target.reminder = t.reminder;
  if (foundAt !== undefined) target.foundAt = foundAt;
  if (foundIn !== undefined) target.foundIn = foundIn;
  if (typeof t.revoked === 'boolean') target.revoked = t.revoked;
  return {
    id: clean(event.id, 100) ?? '',
    type: event.type,
    at: typeof event.at === 'number' && Number.isFinite(event.at) ? event.at : Date.now(),
    actor: event.actor === null ? null : (clean(event.actor, 100) ?? null),
    tenant: clean(event.tenant, 100) ?? '',
    target,
  };
}

/** The Standard Webhooks payload: `{ type, timestamp, data }`, `timestamp` being when the event happened. */
export function webhookBody(event: KeygateEvent): string {
  const data = publicEvent(event);
  return JSON.stringify({ type: data.type, timestamp: new Date(data.at).toISOString(), data });
}

export interface EmailMessage {
  subject: string;
  text: string;
}

const DAY = 86_400_000;

function iso(ms: number): string {
  return new Date(ms).toISOString().replace(/\.000Z$/, 'Z');
}

function who(actor: string | null): string {
  if (actor === null || actor === 'keygate') return 'keygate (automatic)';
  if (actor === 'cli') return 'the keygate command line';
  return actor;
}

function keyLabel(t: KeygateEventTarget): string {
  const name = t.name !== undefined ? `'${t.name}'` : (t.keyId ?? 'a key');
  return t.prefix !== undefined ? `${name} (${t.prefix})` : name;
}

function secretLabel(t: KeygateEventTarget): string {
  if (t.secretId !== undefined && t.name !== undefined) return `'${t.name}' (${t.secretId})`;
  return t.secretId ?? (t.name !== undefined ? `'${t.name}'` : 'a secret');
}

function expiresIn(event: KeygateEvent): string {
  const { expiresAt, reminder } = event.target;
  if (reminder === 'today') return 'today';
  if (typeof expiresAt === 'number') {
    const days = Math.max(1, Math.ceil((expiresAt - event.at) / DAY));
    return days === 1 ? 'in 1 day' : `in ${days} days`;
  }
  return reminder === '7d' ? 'in 7 days' : 'in 30 days';
}

function expiry(expiresAt: number | null | undefined): string | undefined {
  if (expiresAt === undefined) return undefined;
  return expiresAt === null ? 'never' : iso(expiresAt);
}

/** Subject and plain-text body for a human admin. */
export function emailMessage(raw: KeygateEvent, subjectPrefix = '[keygate]'): EmailMessage {
  const event = publicEvent(raw);
  const t = event.target;
  const by = who(event.actor);
  let headline: string;
  let intro: string;
  let advice: string | undefined;
  switch (event.type) {
    case 'key.created':
      headline = `Key created: ${keyLabel(t)} for tenant ${event.tenant} by ${by}`;
      intro = 'A new API key was created.';
      advice = 'The key itself was shown once, to whoever created it; keygate does not keep it and never sends it. If you did not expect this key, revoke it.';
      break;
    case 'key.revoked':
      headline = `Key revoked: ${keyLabel(t)} in tenant ${event.tenant} by ${by}`;
      intro = 'An API key was revoked. It stops working everywhere within moments, and cannot be reinstated.';
      break;
    case 'key.rotated':
      headline = `Key rotated: ${keyLabel(t)} in tenant ${event.tenant} by ${by}`;
      intro =
        t.revokesAt === undefined
          ? 'An API key was rotated: a new key with the same attributes was created, and this one was revoked at once.'
          : `An API key was rotated: a new key with the same attributes was created, and this one keeps working until ${iso(t.revokesAt)}, then is refused.`;
      advice = t.revokesAt === undefined ? undefined : 'Move its clients to the new key before then.';
      break;
    case 'key.expiring':
      headline = `Key expires ${expiresIn(event)}: ${keyLabel(t)} in tenant ${event.tenant}`;
      intro = `An API key expires ${expiresIn(event)}.`;
      advice = 'Create a replacement (or rotate it) and move its clients over before then: an expired key is refused on every route.';
      break;
    case 'key.expired':
      headline = `Key expired: ${keyLabel(t)} in tenant ${event.tenant}`;
      intro = 'An API key has expired and is now refused on every route.';
      break;
    case 'key.leaked':
      if (t.revoked === true) {
        headline = `Key leaked and revoked: ${keyLabel(t)} in tenant ${event.tenant}, reported by ${by}`;
        intro = 'A secret scanner found this API key where it should not be and reported it; keygate revoked it. It stops working everywhere within moments, and cannot be reinstated.';
        advice = 'Give its clients a new key, remove the old one from where it was found, and find out how it got there.';
      } else {
        headline = `Key leaked: ${keyLabel(t)} in tenant ${event.tenant}, reported by ${by} — it still works`;
        intro = 'A secret scanner found this API key where it should not be and reported it. keygate is set to notify only (leakReports action: notify): the key was NOT revoked and still works.';
        advice = 'Rotate or revoke it now, move its clients to the new key, remove the old one from where it was found, and find out how it got there.';
      }
      break;
    case 'key.quota_low':
      headline = t.quotaOf === 'tenant' ? `Quota 80 % used: tenant ${event.tenant} (${t.quota})` : `Quota 80 % used: ${keyLabel(t)} in tenant ${event.tenant} (${t.quota})`;
      intro = `${t.quotaOf === 'tenant' ? 'The tenant' : 'An API key'} has used ${t.used} of its quota ${t.quota}; ${t.remaining} remain${t.remaining === 1 ? 's' : ''}. Once it is spent, requests are refused with 429 quota_exhausted until it resets or is topped up.`;
      advice = 'Top it up (keygate keys quota top-up, or the console) or raise the quota if this use is expected.';
      break;
    case 'secret.created':
      headline = `Upstream secret created: ${secretLabel(t)} by ${by}`;
      intro = 'An upstream secret was stored. Its value is encrypted and can never be read back.';
      break;
    case 'secret.renamed':
      headline = `Upstream secret renamed: ${secretLabel(t)} by ${by}`;
      intro = 'An upstream secret was renamed. Its value is unchanged.';
      break;
    case 'secret.removed':
      headline = `Upstream secret removed: ${secretLabel(t)} by ${by}`;
      intro = 'An upstream secret was removed. Routes that inject it now answer 502 until it is stored again.';
      break;
    default:
      headline = `${String(event.type)} in tenant ${event.tenant}`;
      intro = 'A keygate event happened.';
  }

  const rows: [string, string | undefined][] = [
    ['Tenant', event.tenant],
    ['Name', t.name],
    ['Prefix', t.prefix],
    ['Key id', t.keyId],
    ['Secret id', t.secretId],
    ['Role', t.role],
    ['Expires', expiry(t.expiresAt)],
    ['Stops at', t.revokesAt === undefined ? undefined : iso(t.revokesAt)],
    ['Found at', t.foundAt],
    ['Found in', t.foundIn],
    ['Revoked', t.revoked === undefined ? undefined : t.revoked ? 'yes' : 'no, the key still works'],
    [event.actor === null || event.actor === 'keygate' ? 'By' : 'Done by', by],
    ['When', iso(event.at)],
    ['Event id', event.id],
  ];
  const lines = [intro, ''];
  for (const [label, value] of rows) if (value !== undefined && value !== '') lines.push(`  ${`${label}:`.padEnd(11)} ${value}`);
  if (advice) lines.push('', advice);
  lines.push('', '-- ', 'Sent by keygate to the admins listed in its notifications configuration.');

  const subject = subjectPrefix ? `${clean(subjectPrefix, 64)} ${headline}` : headline;
  return { subject: subject.length > 250 ? `${subject.slice(0, 249)}…` : subject, text: `${lines.join('\n')}\n` };
}

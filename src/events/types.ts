/**
 * Lifecycle events, as the audit log and notifications see them. There is deliberately no
 * field that could carry a key, a key hash or a secret value: only ids, names, display
 * prefixes (`kg_acme_3f9a…`) and times. Notifications go further and copy only the fields
 * listed here, so even a value smuggled in at runtime (`{ ...event, key }`) is not sent.
 */
export const KEYGATE_EVENT_TYPES = [
  'key.created',
  'key.revoked',
  'key.rotated',
  'key.expiring',
  'key.expired',
  'key.leaked',
  'key.quota_low',
  'secret.created',
  'secret.renamed',
  'secret.removed',
] as const;

export type KeygateEventType = (typeof KEYGATE_EVENT_TYPES)[number];

/** The events notifications are sent for when `notifications.events` is not given. */
export const KEY_EVENT_TYPES: readonly KeygateEventType[] = KEYGATE_EVENT_TYPES.filter((t) => t.startsWith('key.'));

export type ReminderLabel = '30d' | '7d' | 'today';

export interface KeygateEventTarget {
  keyId?: string;
  name?: string;
  /** The display prefix, e.g. `kg_acme_3f9a…`: never enough to use or guess the key. */
  prefix?: string;
  role?: string;
  /** Epoch ms; null = never. */
  expiresAt?: number | null;
  /** Epoch ms: when a key rotated with an overlap stops working (key.rotated only). */
  revokesAt?: number;
  secretId?: string;
  reminder?: ReminderLabel;
  /** key.leaked only: where a secret scanner found the key (the URL it reported, never the key). */
  foundAt?: string;
  /** key.leaked only: what kind of place that is, as the scanner names it (`content`, `commit`, …). */
  foundIn?: string;
  /** key.leaked only: whether keygate revoked the key (`leakReports.*.action: revoke`). */
  revoked?: boolean;
  /** key.quota_low only: the budget (`10000/day`, `5000 credits`), whose (key or tenant), what is used and left. */
  quota?: string;
  quotaOf?: 'key' | 'tenant';
  used?: number;
  remaining?: number;
}

export interface KeygateEvent {
  /** Unique (`evt_` + random hex); also the webhook-id, so receivers can drop duplicates. */
  id: string;
  type: KeygateEventType;
  /** Epoch ms. */
  at: number;
  /** Key id of who did it, 'cli', 'keygate' or null for keygate itself (reminders, sweeps). */
  actor: string | null;
  tenant: string;
  target: KeygateEventTarget;
}

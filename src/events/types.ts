/**
 * Lifecycle events, as the audit log and notifications see them. There is deliberately no
 * field that could carry a key, a key hash or a secret value.
 */
export type KeygateEventType =
  | 'key.created'
  | 'key.revoked'
  | 'key.rotated'
  | 'key.expiring'
  | 'key.expired'
  | 'secret.created'
  | 'secret.renamed'
  | 'secret.removed';

export interface KeygateEvent {
  /** Unique; also the webhook-id, so receivers can drop duplicates. */
  id: string;
  type: KeygateEventType;
  /** Epoch ms. */
  at: number;
  /** Key id of who did it, 'cli', or null for keygate itself (reminders). */
  actor: string | null;
  tenant: string;
  target: {
    keyId?: string;
    name?: string;
    prefix?: string;
    role?: string;
    expiresAt?: number | null;
    secretId?: string;
    reminder?: '30d' | '7d' | 'today';
  };
}

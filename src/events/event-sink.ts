/**
 * Where lifecycle events go: the audit log (awaited, part of the operation) and the
 * notifier (fire and forget: never delays or fails the admin request). Builds both from
 * ids, names and display prefixes only.
 */
import { randomBytes } from 'node:crypto';
import type { KeyRecord } from '../keys/record.ts';
import type { Logger } from '../observability/logger.ts';
import type { AuditAction, AuditEntry, LifecycleStore } from '../store/lifecycle-store.ts';
import type { KeygateEvent, KeygateEventType } from './types.ts';

export type Notify = (event: KeygateEvent) => void;

const NOTIFIED: Partial<Record<AuditAction, KeygateEventType>> = {
  'key.create': 'key.created',
  'key.revoke': 'key.revoked',
  'key.rotate': 'key.rotated',
  'key.expire': 'key.expired',
  'secret.create': 'secret.created',
  'secret.rename': 'secret.renamed',
  'secret.remove': 'secret.removed',
};

export const newEventId = (): string => `evt_${randomBytes(12).toString('hex')}`;

/** What a notification says about a key: never the key, never its hash. */
function keyTarget(record: KeyRecord): { keyId: string; name: string; prefix: string; role: KeyRecord['role']; expiresAt: number | null } {
  return { keyId: record.id, name: record.name, prefix: record.prefix, role: record.role, expiresAt: record.expiresAt };
}

export class EventSink {
  readonly #store: LifecycleStore;
  readonly #notify: Notify;
  readonly #logger: Logger | null;
  readonly #now: () => number;

  constructor(store: LifecycleStore, notify: Notify | null, logger: Logger | null, now: () => number = Date.now) {
    this.#store = store;
    this.#notify = notify ?? (() => {});
    this.#logger = logger;
    this.#now = now;
  }

  /** Audits (and notifies, for the actions admins are told about) an action on a key. */
  async key(action: AuditAction, actor: string | null, record: KeyRecord, detail: AuditEntry['detail'] = {}): Promise<void> {
    const at = this.#now();
    const id = newEventId();
    await this.#store.appendAudit({ id, at, actor, action, tenant: record.tenant, target: record.id, detail: { name: record.name, prefix: record.prefix, ...detail } });
    this.#logger?.info({ audit: action, actor, tenant: record.tenant, target: record.id }, 'audit');
    const type = NOTIFIED[action];
    if (type !== undefined) {
      this.#notify({
        id,
        type,
        at,
        actor,
        tenant: record.tenant,
        target: { ...keyTarget(record), ...(record.status === 'active' && record.revokesAt !== null ? { revokesAt: record.revokesAt } : {}) },
      });
    }
  }

  /**
   * Audits (and notifies about) an action on an upstream secret. Built from its id and name
   * only: there is no parameter a value could come through. Secrets are platform-wide, so
   * the audit entry has no tenant (only platform admins see it) and the notification names
   * the system tenant.
   */
  async secret(action: AuditAction, actor: string | null, secret: { id: string; name: string }, systemTenant: string, detail: AuditEntry['detail'] = {}): Promise<void> {
    const at = this.#now();
    const id = newEventId();
    await this.#store.appendAudit({ id, at, actor, action, tenant: null, target: secret.id, detail: { name: secret.name, ...detail } });
    this.#logger?.info({ audit: action, actor, target: secret.id }, 'audit');
    const type = NOTIFIED[action];
    if (type !== undefined) this.#notify({ id, type, at, actor, tenant: systemTenant, target: { secretId: secret.id, name: secret.name } });
  }

  /**
   * A secret scanner reported the key as leaked (src/leaks/): audited as `key.leak` with
   * where it was found (`url`, `source`: what the scanner sent, never the key) and whether it
   * was revoked, and `key.leaked` sent to admins. The revocation itself, if any, is the
   * caller's, audited separately as a `key.revoke` with reason `leaked`.
   */
  async leak(actor: string, record: KeyRecord, found: { url: string | null; source: string | null; revoked: boolean }): Promise<void> {
    const at = this.#now();
    const id = newEventId();
    const detail = { name: record.name, prefix: record.prefix, url: found.url, source: found.source, revoked: found.revoked };
    await this.#store.appendAudit({ id, at, actor, action: 'key.leak', tenant: record.tenant, target: record.id, detail });
    this.#logger?.info({ audit: 'key.leak', actor, tenant: record.tenant, target: record.id, revoked: found.revoked }, 'audit');
    this.#notify({
      id,
      type: 'key.leaked',
      at,
      actor,
      tenant: record.tenant,
      target: {
        ...keyTarget(record),
        ...(found.url !== null ? { foundAt: found.url } : {}),
        ...(found.source !== null ? { foundIn: found.source } : {}),
        revoked: found.revoked,
      },
    });
  }

  /** Anything else worth an audit line (revoke-all, failed admin logins, secrets). */
  async audit(action: AuditAction, actor: string | null, tenant: string | null, target: string | null, detail: AuditEntry['detail'] = {}): Promise<string> {
    const id = newEventId();
    await this.#store.appendAudit({ id, at: this.#now(), actor, action, tenant, target, detail });
    this.#logger?.info({ audit: action, actor, tenant, target }, 'audit');
    return id;
  }

  /** A budget passed 80 % (told once per period: the store's charge says which request crossed). Notification only. */
  quotaLow(record: KeyRecord, quotaOf: 'key' | 'tenant', quota: string, used: number, remaining: number): void {
    this.#notify({
      id: newEventId(),
      type: 'key.quota_low',
      at: this.#now(),
      actor: null,
      tenant: record.tenant,
      target: quotaOf === 'key' ? { ...keyTarget(record), quota, quotaOf, used, remaining } : { quota, quotaOf, used, remaining },
    });
  }

  /** Expiry reminders: notification only (the claim in the store is the record). */
  reminder(record: KeyRecord, reminder: '30d' | '7d' | 'today'): void {
    this.#notify({
      id: newEventId(),
      type: 'key.expiring',
      at: this.#now(),
      actor: null,
      tenant: record.tenant,
      target: { ...keyTarget(record), reminder },
    });
  }
}

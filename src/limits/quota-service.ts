/**
 * Reading and topping up budgets (limits/quota.ts) for the admin API, the CLI and the console:
 * a key's and its tenant's, in the periods in force now. Top-ups are audited and are for
 * platform admins: they give a key or tenant more than it was given.
 */
import type { EventSink } from '../events/event-sink.ts';
import { invalidField, KeygateError } from '../http/problem.ts';
import type { KeyRecord } from '../keys/record.ts';
import type { Caller } from '../keys/service.ts';
import type { QuotaStore } from '../store/quota-store.ts';
import { Calendar, isQuota, parseQuota, type QuotaCounter } from './quota.ts';

export interface QuotaStatus {
  scope: 'key' | 'tenant';
  quota: string;
  used: number;
  remaining: number;
  /** When the budget starts afresh (ISO); null for credits without refill. */
  resetsAt: string | null;
}

export class QuotaService {
  readonly #store: QuotaStore;
  readonly #calendar: Calendar;
  readonly #events: EventSink | null;

  constructor(store: QuotaStore, timeZone: string, events: EventSink | null = null) {
    this.#store = store;
    this.#calendar = new Calendar(timeZone);
    this.#events = events;
  }

  #counter(scope: 'key' | 'tenant', id: string, text: string | null): QuotaCounter | null {
    if (text === null) return null;
    const quota = parseQuota(text);
    if (!isQuota(quota)) return null;
    return { id: scope === 'key' ? `k:${id}` : `t:${id}`, quota, scope, period: quota.unit === null ? null : this.#calendar.period(quota.unit, Date.now()) };
  }

  static #status(counter: QuotaCounter, answer: { used: number; remaining: number }): QuotaStatus {
    return { scope: counter.scope, quota: counter.quota.text, used: answer.used, remaining: answer.remaining, resetsAt: counter.period === null ? null : new Date(counter.period.endsAt).toISOString() };
  }

  /** A key's budget now, or null when it has none. */
  async keyStatus(record: KeyRecord): Promise<QuotaStatus | null> {
    const counter = this.#counter('key', record.id, record.quota);
    return counter === null ? null : QuotaService.#status(counter, await this.#store.quotaStatus(counter));
  }

  async tenantStatus(tenant: string, quota: string | null): Promise<QuotaStatus | null> {
    const counter = this.#counter('tenant', tenant, quota);
    return counter === null ? null : QuotaService.#status(counter, await this.#store.quotaStatus(counter));
  }

  static #amount(amount: number): void {
    if (!Number.isSafeInteger(amount) || amount < 1 || amount > 1_000_000_000_000) throw invalidField('amount', 'must be a whole number from 1 to 1000000000000');
  }

  async topUpKey(caller: Caller, record: KeyRecord, amount: number): Promise<QuotaStatus> {
    if (caller.tenant !== null) throw new KeygateError('forbidden', "only a platform admin may top up a quota");
    QuotaService.#amount(amount);
    const counter = this.#counter('key', record.id, record.quota);
    if (counter === null) throw new KeygateError('conflict', 'the key has no quota to top up');
    const status = QuotaService.#status(counter, await this.#store.topUpQuota(counter, amount));
    await this.#events?.key('key.quota_top_up', caller.actor, record, { amount, quota: counter.quota.text, remaining: status.remaining });
    return status;
  }

  async topUpTenant(caller: Caller, tenant: string, quota: string | null, amount: number): Promise<QuotaStatus> {
    if (caller.tenant !== null) throw new KeygateError('forbidden', "only a platform admin may top up a quota");
    QuotaService.#amount(amount);
    const counter = this.#counter('tenant', tenant, quota);
    if (counter === null) throw new KeygateError('conflict', 'the tenant has no quota to top up');
    const status = QuotaService.#status(counter, await this.#store.topUpQuota(counter, amount));
    await this.#events?.audit('tenant.quota_top_up', caller.actor, tenant, `tenant:${tenant}`, { amount, quota: counter.quota.text, remaining: status.remaining });
    return status;
  }
}

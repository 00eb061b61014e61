/**
 * LifecycleStore on Redis: rename, batched last-used times, the audit log (a sorted set per
 * scope, numbered by audit:seq), rotation's scheduled revocations and once-only reminder
 * claims. Every operation that must happen once across instances is one script or one
 * atomic command.
 */
import type { KeyRecord } from '../../keys/record.ts';
import type { AuditEntry, AuditPage, AuditQuery, ReminderStage } from '../lifecycle-store.ts';
import { KeyEventWriter } from './feed.ts';
import { position } from './messages.ts';
import { fromFields, records } from './record-codec.ts';
import * as scripts from './scripts.ts';

export class RedisLifecycle extends KeyEventWriter {
  async rename(id: string, name: string): Promise<KeyRecord | null> {
    return fromFields(await this.redis.script(scripts.RENAME, [this.redis.keys.id(id)], [this.redis.keys.prefix, name]));
  }

  setRateLimits(id: string, rateLimits: readonly string[]): Promise<KeyRecord | null> {
    return this.#setField(id, 'rateLimits', JSON.stringify(rateLimits));
  }

  setQuota(id: string, quota: string | null): Promise<KeyRecord | null> {
    return this.#setField(id, 'quota', quota);
  }

  async #setField(id: string, field: string, value: string | null): Promise<KeyRecord | null> {
    const k = this.redis.keys;
    const reply = await this.redis.script(scripts.SET_KEY_FIELD, [k.id(id)], [k.prefix, field, value ?? '', k.channel, this.redis.publish, value === null ? 'null' : '']);
    if (!Array.isArray(reply)) return null;
    // This instance reads the record again at once, without waiting for its own message.
    this.feed.deliver({ changed: [String(reply[0])], ...position(reply[2], reply[3]) });
    return fromFields(reply[1]);
  }

  async touch(lastUsed: ReadonlyMap<string, number>): Promise<void> {
    await this.redis.touchBatches(scripts.TOUCH, this.redis.keys.all, lastUsed);
  }

  async appendAudit(entry: AuditEntry): Promise<void> {
    const k = this.redis.keys;
    await this.redis.script(scripts.APPEND_AUDIT, [k.auditSeq, k.audit, entry.tenant !== null ? k.auditTenant(entry.tenant) : k.audit], [JSON.stringify(entry)]);
  }

  async listAudit(query: AuditQuery): Promise<AuditPage> {
    const k = this.redis.keys;
    const set = query.tenant !== undefined ? k.auditTenant(query.tenant) : k.audit;
    const max = query.before !== undefined && /^\d+$/.test(query.before) ? `(${query.before}` : '+inf';
    // RESP2 answers member, score, member, …; RESP3 [member, score] pairs.
    const reply = await this.redis.call('ZREVRANGEBYSCORE', set, max, '-inf', 'WITHSCORES', 'LIMIT', 0, query.limit + 1);
    const flat = Array.isArray(reply) ? reply.flat().map(String) : [];
    const rows: { entry: AuditEntry; seq: string }[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) rows.push({ entry: JSON.parse(flat[i]!) as AuditEntry, seq: String(Number(flat[i + 1])) });
    const page = rows.slice(0, query.limit);
    return { entries: page.map((r) => r.entry), next: rows.length > query.limit ? page[page.length - 1]!.seq : null };
  }

  async scheduleRevocation(id: string, at: number): Promise<KeyRecord | null> {
    const k = this.redis.keys;
    const reply = await this.redis.script(scripts.SCHEDULE_REVOCATION, [k.id(id), k.scheduled], [k.prefix, id, String(at), k.channel, this.redis.publish]);
    if (!Array.isArray(reply)) return null;
    // This instance drops its copy at once, without waiting for its own message.
    const changed = String(reply[0]);
    if (changed !== '') this.feed.deliver({ changed: [changed], ...position(reply[2], reply[3]) });
    return fromFields(reply[1]);
  }

  async revokeDue(now: number): Promise<string[]> {
    const k = this.redis.keys;
    const reply = await this.redis.script(scripts.REVOKE_DUE, [k.scheduled, k.expiring], [k.prefix, String(now), k.channel, this.redis.publish]);
    return this.feed.applyLocally(reply);
  }

  async listExpiring(from: number, until: number): Promise<KeyRecord[]> {
    return records(await this.redis.script(scripts.LIST_EXPIRING, [this.redis.keys.expiring], [this.redis.keys.prefix, String(from), String(until)]));
  }

  async claimReminder(id: string, stage: ReminderStage): Promise<boolean> {
    return Number(await this.redis.call('HSETNX', this.redis.keys.reminders, `${id}:${stage}`, '1')) === 1;
  }
}

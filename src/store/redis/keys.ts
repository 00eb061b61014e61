/**
 * KeyStore on Redis: a lookup by key hash is one HGETALL (the record lives under its hash),
 * auto-pipelined; create, revoke and revoke-all are single Lua scripts, so the unique
 * indexes are checked and the record, its indexes and (for revocations) the log entry and
 * the PUBLISH happen together or not at all.
 */
import type { KeyRecord } from '../../keys/record.ts';
import { DuplicateKeyError, type KeyQuery } from '../key-store.ts';
import { KeyEventWriter } from './feed.ts';
import { fromFields, newestFirst, records, toFields } from './record-codec.ts';
import * as scripts from './scripts.ts';

export class RedisKeys extends KeyEventWriter {
  async findByHash(hash: string): Promise<KeyRecord | null> {
    return fromFields(await this.redis.call('HGETALL', this.redis.keys.hash(hash)));
  }

  async get(id: string): Promise<KeyRecord | null> {
    return fromFields(await this.redis.script(scripts.GET, [this.redis.keys.id(id)], [this.redis.keys.prefix]));
  }

  async create(record: KeyRecord, hash: string): Promise<void> {
    const k = this.redis.keys;
    const expiring = record.status === 'active' && record.expiresAt !== null ? String(record.expiresAt) : '';
    const created = await this.redis.script(
      scripts.CREATE,
      [k.hash(hash), k.id(record.id), k.tenant(record.tenant), k.all, k.expiring],
      [k.prefix, hash, record.id, String(record.createdAt), expiring, ...toFields(record)],
    );
    if (Number(created) !== 1) throw new DuplicateKeyError('a key with this id or hash exists');
  }

  async list(query: KeyQuery): Promise<KeyRecord[]> {
    const k = this.redis.keys;
    const set = query.tenant !== undefined ? k.tenant(query.tenant) : k.all;
    return records(await this.redis.script(scripts.LIST, [set], [k.prefix, query.includeRevoked ? '1' : '0'])).sort(newestFirst);
  }

  async revoke(id: string, at: number): Promise<KeyRecord | null> {
    const k = this.redis.keys;
    const reply = await this.redis.script(scripts.REVOKE, [k.id(id), k.expiring], [k.prefix, id, String(at), k.channel, this.redis.publish]);
    if (!Array.isArray(reply)) return null;
    this.feed.applyLocally(reply);
    return fromFields(reply[5]);
  }

  async revokeTenant(tenant: string, at: number): Promise<string[]> {
    const k = this.redis.keys;
    const reply = await this.redis.script(scripts.REVOKE_TENANT, [k.tenant(tenant), k.expiring], [k.prefix, String(at), k.channel, this.redis.publish]);
    return this.feed.applyLocally(reply);
  }
}

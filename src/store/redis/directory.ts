/**
 * DirectoryStore on Redis: every user and tenant group is one field of one hash
 * (`<prefix>directory`, field `<tenant>/<kind>/<name>`, value JSON), small enough to be read
 * whole when a process subscribes. A write is one script that also logs and publishes the
 * change on the revocation channel (scripts.ts DIRECTORY_WRITE), so it reaches every
 * instance the way a revocation does, replayed from the log after a disconnect; the writing
 * process applies it at once.
 */
import type { DirectorySnapshot, DirectoryStore, DirectoryWrite } from '../directory-store.ts';
import { decodeEntry, DIRECTORY_KINDS, type DirectoryChange, type DirectoryKind, type GroupRecord, type TenantRecord, type UserRecord } from '../../users/records.ts';
import { KeyEventWriter } from './feed.ts';
import { position } from './messages.ts';
import { pairs } from './record-codec.ts';
import * as scripts from './scripts.ts';

export class RedisDirectory extends KeyEventWriter implements DirectoryStore {
  async directory(tenant?: string): Promise<DirectorySnapshot> {
    const snapshot: Required<DirectorySnapshot> = { users: [], groups: [], tenants: [] };
    for (const [field, text] of Object.entries(pairs(await this.redis.call('HGETALL', this.redis.keys.directory)))) {
      const first = field.indexOf('/');
      const second = field.indexOf('/', first + 1);
      if (first < 0 || second < 0) continue;
      const owner = field.slice(0, first);
      const kind = field.slice(first + 1, second);
      if (tenant !== undefined && owner !== tenant) continue;
      if (!DIRECTORY_KINDS.includes(kind as DirectoryKind)) continue;
      // A value that cannot be read is left out: an unreadable user's keys are refused, an
      // unreadable group grants nothing (fail closed).
      const value = decodeEntry(kind as DirectoryKind, text);
      if (value === null) continue;
      if (kind === 'user') snapshot.users.push(value as UserRecord);
      else if (kind === 'group') snapshot.groups.push(value as GroupRecord);
      else snapshot.tenants.push(value as TenantRecord);
    }
    return snapshot;
  }

  async writeDirectory(write: DirectoryWrite): Promise<DirectoryChange | null> {
    const k = this.redis.keys;
    const tenant = write.mode === 'delete' ? write.tenant : write.value.tenant;
    const name = write.mode === 'delete' ? write.name : write.value.name;
    const text = write.mode === 'delete' ? '' : JSON.stringify(write.value);
    const reply = await this.redis.script(scripts.DIRECTORY_WRITE, [k.directory], [k.prefix, k.channel, this.redis.publish, write.mode, tenant, write.kind, name, text]);
    if (!Array.isArray(reply) || Number(reply[0]) !== 1) return null;
    const change = { tenant, kind: write.kind, name, value: write.mode === 'delete' ? null : write.value } as DirectoryChange;
    this.feed.deliver({ directory: change, ...position(reply[1], reply[2]) });
    return change;
  }
}

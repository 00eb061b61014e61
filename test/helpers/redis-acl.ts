/**
 * The Redis ACL that docs/redis.md gives operators for keygate's own user, read from that
 * file (so the tests check the line people copy), and what a node's ACL LOG refused.
 */
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';

/**
 * The words after `user keygate` in docs/redis.md, as ACL SETUSER arguments: the
 * placeholder password replaced by `password`, and the `kg:` patterns by `prefix`'s.
 */
export function documentedAcl(password: string, prefix = 'kg:'): string[] {
  const line = redisDoc().split('\n').find((l) => l.startsWith('user keygate '));
  if (!line) throw new Error('docs/redis.md has no "user keygate …" line');
  const words = line.trim().split(/\s+/).slice(2);
  if (!words.includes('>CHANGE-ME')) throw new Error('docs/redis.md: the ACL line has no >CHANGE-ME password placeholder');
  return words.map((w) => (w === '>CHANGE-ME' ? `>${password}` : w.replace(/^([~&])kg:\*$/, `$1${prefix}*`)));
}

/** docs/redis.md's text, for checking that a variant of the line the tests use is documented. */
export function redisDoc(): string {
  return readFileSync(new URL('../../docs/redis.md', import.meta.url), 'utf8');
}

/** Every refusal in `redis`'s ACL LOG, one line each (reason, what, context, user). */
export async function aclRefusals(redis: Redis): Promise<string[]> {
  const entries = (await redis.call('ACL', 'LOG')) as unknown[][];
  return entries.map((entry) => {
    const fields: Record<string, unknown> = {};
    for (let i = 0; i + 1 < entry.length; i += 2) fields[String(entry[i])] = entry[i + 1];
    return `${String(fields.reason)} ${String(fields.object)} (context ${String(fields.context)}, user ${String(fields.username)})`;
  });
}

/**
 * Usage counters on Redis: one hash per key and UTC day, `<prefix>usage:k:<keyId>:<yyyymmdd>`
 * (per tenant: `usage:t:<tenant>:<yyyymmdd>`), field `<route>|<class>`, value the count.
 * A flush is one script per batch of hashes (HINCRBY each field, then EXPIREAT), so the
 * counts of every instance add up in the same hash; each hash expires by itself
 * USAGE_RETENTION_DAYS after its day began, so Redis holds at most that many days of
 * counters whatever happens to the instances. In Cluster mode every name is under the
 * store's hash-tagged prefix, so one script may touch them all.
 */
import { createHash } from 'node:crypto';
import { usageExpiresAt, type UsageCounts, type UsageScope, type UsageStore } from '../usage-store.ts';
import type { Commands } from './commands.ts';
import type { LuaScript } from './scripts.ts';

/**
 * KEYS: the hashes. ARGV, per hash in KEYS order: its expiry (epoch seconds), its number of
 * fields, then field, increment, … . A hash whose expiry is past is deleted by EXPIREAT.
 */
const lua = `
local a = 1
for i = 1, #KEYS do
  local at = ARGV[a]
  local n = tonumber(ARGV[a + 1])
  a = a + 2
  for j = 1, n do
    redis.call('HINCRBY', KEYS[i], ARGV[a], ARGV[a + 1])
    a = a + 2
  end
  redis.call('EXPIREAT', KEYS[i], at)
end
return #KEYS
`;
export const USAGE_ADD: LuaScript = { name: 'usageAdd', lua, sha: createHash('sha1').update(lua).digest('hex') };

/** Fields per script call: a flush of many keys is several calls, none of them long. */
const FIELDS_PER_CALL = 1000;

export class RedisUsage implements UsageStore {
  readonly #redis: Commands;

  constructor(redis: Commands) {
    this.#redis = redis;
  }

  #key(scope: UsageScope, id: string, day: string): string {
    return `${this.#redis.keys.prefix}usage:${scope}:${id}:${day}`;
  }

  async addUsage(batch: readonly UsageCounts[]): Promise<void> {
    let keys: string[] = [];
    let args: (string | number)[] = [];
    let fields = 0;
    const send = async () => {
      if (keys.length === 0) return;
      const [k, a] = [keys, args];
      keys = [];
      args = [];
      fields = 0;
      await this.#redis.script(USAGE_ADD, k, a);
    };
    for (const counts of batch) {
      if (fields > 0 && fields + counts.fields.size > FIELDS_PER_CALL) await send();
      keys.push(this.#key(counts.scope, counts.id, counts.day));
      args.push(Math.floor(usageExpiresAt(counts.day) / 1000), counts.fields.size);
      for (const [field, n] of counts.fields) args.push(field, n);
      fields += counts.fields.size;
    }
    await send();
  }

  async readUsage(scope: UsageScope, id: string, days: readonly string[]): Promise<Record<string, number>[]> {
    // Auto-pipelined: one round trip for every day.
    const replies = await Promise.all(days.map((day) => this.#redis.call('HGETALL', this.#key(scope, id, day))));
    return replies.map(counters);
  }
}

/** An HGETALL reply (flat [field, value, …] or a RESP3 map) as field → count. */
function counters(reply: unknown): Record<string, number> {
  const out: Record<string, number> = Object.create(null);
  if (Array.isArray(reply)) {
    for (let i = 0; i + 1 < reply.length; i += 2) out[String(reply[i])] = Number(reply[i + 1]);
  } else if (reply !== null && typeof reply === 'object') {
    for (const [field, value] of Object.entries(reply)) out[field] = Number(value);
  }
  return out;
}

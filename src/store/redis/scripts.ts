/**
 * The Lua scripts of the Redis store (layout: docs/redis.md). Each runs atomically: Redis
 * executes a script to the end before serving anything else, and replicates / appends to
 * the AOF its writes as one MULTI/EXEC block, so a crash never leaves half a key. Every
 * script checks what it needs before its first write and then only uses writes that cannot
 * fail, so an error never leaves a partial write behind either.
 *
 * Conventions: ARGV[1] is the key prefix; keys a script derives from stored ids share the
 * prefix (and, in Cluster mode, its hash tag), so they are in the declared keys' slot.
 * Revocations append `{"ids":[…],"hashes":[…],"at":<Redis time, epoch ms>,"us":<µs within it>}` to the revocation
 * log (a capped stream, numbered by `revocations:seq`) and publish it with its number and
 * log id, `{…,"seq":n,"id":"<stream id>"}`, in the same script, and return `at`, `seq` and
 * `id` so the revoking process can apply the same event; a record that changes while it
 * stays active is logged and published the same way as `{"changed":[…hashes]}`. The publish
 * command is an argument: PUBLISH, or SPUBLISH in Cluster mode (a shard channel in the
 * prefix's slot is delivered by the node that ran the script, not relayed over the bus).
 */
import { createHash } from 'node:crypto';

export interface LuaScript {
  readonly name: string;
  readonly lua: string;
  readonly sha: string;
}

function script(name: string, lua: string): LuaScript {
  return { name, lua, sha: createHash('sha1').update(lua).digest('hex') };
}

/** How many events the revocation log keeps (about; trimmed with MAXLEN ~). */
export const REVOCATION_LOG_CAP = 10000;

/**
 * Shared by every script that logs and publishes a key event: numbers it (INCR
 * revocations:seq), appends it to the capped stream revocations:log (fields n, e) and
 * publishes it with `seq` and `id` added. Returns n, id.
 */
const LOG_EVENT = `
local function log_event(prefix, channel, publish, event)
  local n = redis.call('INCR', prefix .. 'revocations:seq')
  local id = redis.call('XADD', prefix .. 'revocations:log', 'MAXLEN', '~', '${REVOCATION_LOG_CAP}', '*', 'n', n, 'e', cjson.encode(event))
  event.seq = n
  event.id = id
  redis.call(publish, channel, cjson.encode(event))
  return n, id
end
`;

/**
 * Shared by every script that revokes: marks the active ones of `ids` revoked, logs and
 * publishes one event for them, and returns {at, revokedIds, theirHashes, seq, logId}
 * (seq '0' and logId '' when nothing was revoked).
 */
const REVOKE_IDS = `${LOG_EVENT}
-- Redis's clock: epoch ms, and the microseconds within that ms (for sub-ms lag figures).
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), tonumber(t[2]) % 1000
end
local function revoke_ids(prefix, ids, revoked_at, channel, publish)
  local done, hashes = {}, {}
  for _, id in ipairs(ids) do
    local h = redis.call('GET', prefix .. 'id:' .. id)
    if h then
      local rk = prefix .. 'hash:' .. h
      if redis.call('HGET', rk, 'status') == 'active' then
        redis.call('HSET', rk, 'status', 'revoked', 'revokedAt', revoked_at)
        redis.call('ZREM', prefix .. 'expiring', id)
        done[#done + 1] = id
        hashes[#hashes + 1] = h
      end
    end
  end
  local at, us = now_ms()
  local n, logid = 0, ''
  if #done > 0 then
    n, logid = log_event(prefix, channel, publish, { ids = done, hashes = hashes, at = at, us = us })
  end
  return { string.format('%d.%03d', at, us), done, hashes, tostring(n), logid }
end
`;

/**
 * KEYS: hash:{h}, id:{id}, tenant:{t}, keys, expiring
 * ARGV: prefix, h, id, createdAt, expiresAt ('' = none), then field/value pairs of the record.
 * Returns 1, or 0 if the id or the hash already exists (nothing written). The same id with
 * the same hash is the same key: a create resent after a lost reply returns 1 again.
 */
export const CREATE = script(
  'create',
  `
if redis.call('GET', KEYS[2]) == ARGV[2] then return 1 end
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 6))
redis.call('SET', KEYS[2], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[3])
redis.call('ZADD', KEYS[4], ARGV[4], ARGV[3])
if ARGV[5] ~= '' then redis.call('ZADD', KEYS[5], ARGV[5], ARGV[3]) end
return 1
`,
);

/** KEYS: id:{id}. ARGV: prefix. Returns the record's flat field list, or nil. */
export const GET = script(
  'get',
  `
local h = redis.call('GET', KEYS[1])
if not h then return false end
return redis.call('HGETALL', ARGV[1] .. 'hash:' .. h)
`,
);

/**
 * KEYS: a sorted set of ids (keys, or tenant:{t}). ARGV: prefix, '1' to include revoked keys.
 * Returns a list of flat field lists, newest first.
 */
export const LIST = script(
  'list',
  `
local out = {}
for _, id in ipairs(redis.call('ZREVRANGE', KEYS[1], 0, -1)) do
  local h = redis.call('GET', ARGV[1] .. 'id:' .. id)
  if h then
    local rk = ARGV[1] .. 'hash:' .. h
    if ARGV[2] == '1' or redis.call('HGET', rk, 'status') == 'active' then
      out[#out + 1] = redis.call('HGETALL', rk)
    end
  end
end
return out
`,
);

/**
 * KEYS: id:{id}, expiring. ARGV: prefix, id, revokedAt, channel, publish command.
 * Returns nil for an unknown id, else {at, revokedIds, hashes, seq, logId, record fields after}.
 */
export const REVOKE = script(
  'revoke',
  `${REVOKE_IDS}
local h = redis.call('GET', KEYS[1])
if not h then return false end
local result = revoke_ids(ARGV[1], { ARGV[2] }, ARGV[3], ARGV[4], ARGV[5])
result[6] = redis.call('HGETALL', ARGV[1] .. 'hash:' .. h)
return result
`,
);

/** KEYS: tenant:{t}, expiring. ARGV: prefix, revokedAt, channel, publish command. Returns {at, revokedIds, hashes, seq, logId}. */
export const REVOKE_TENANT = script(
  'revokeTenant',
  `${REVOKE_IDS}
return revoke_ids(ARGV[1], redis.call('ZRANGE', KEYS[1], 0, -1), ARGV[2], ARGV[3], ARGV[4])
`,
);

/**
 * KEYS: id:{id}, scheduled. ARGV: prefix, id, at, channel, publish command. Rotation's
 * overlap: an active key's `revokesAt` becomes `at` (an earlier time already set stays), the
 * id is scheduled for the sweep, and `{"changed":[h]}` is logged and published so every
 * instance drops its cached copy of the record. Returns {h ('' when the key is not active:
 * nothing changed), the record's fields afterwards, seq, logId}, or nil for an unknown id.
 */
export const SCHEDULE_REVOCATION = script(
  'scheduleRevocation',
  `${LOG_EVENT}
local h = redis.call('GET', KEYS[1])
if not h then return false end
local rk = ARGV[1] .. 'hash:' .. h
local changed, n, logid = '', 0, ''
if redis.call('HGET', rk, 'status') == 'active' then
  changed = h
  local at = ARGV[3]
  local current = redis.call('HGET', rk, 'revokesAt')
  if current and tonumber(current) and tonumber(current) <= tonumber(at) then
    at = current
  else
    redis.call('HSET', rk, 'revokesAt', at)
  end
  redis.call('ZADD', KEYS[2], 'LT', at, ARGV[2])
  n, logid = log_event(ARGV[1], ARGV[4], ARGV[5], { changed = { h } })
end
return { changed, redis.call('HGETALL', rk), tostring(n), logid }
`,
);

/**
 * KEYS: scheduled, expiring. ARGV: prefix, now, channel, publish command. Takes every
 * scheduled revocation that is due off the schedule and revokes it. Returns {at, revokedIds,
 * hashes, seq, logId}.
 */
export const REVOKE_DUE = script(
  'revokeDue',
  `${REVOKE_IDS}
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
if #due > 0 then redis.call('ZREM', KEYS[1], unpack(due)) end
return revoke_ids(ARGV[1], due, ARGV[2], ARGV[3], ARGV[4])
`,
);

/** KEYS: id:{id}. ARGV: prefix, name. Returns the record's fields after, or nil. */
export const RENAME = script(
  'rename',
  `
local h = redis.call('GET', KEYS[1])
if not h then return false end
local rk = ARGV[1] .. 'hash:' .. h
redis.call('HSET', rk, 'name', ARGV[2])
return redis.call('HGETALL', rk)
`,
);

/** KEYS: keys (for routing). ARGV: prefix, then id/time pairs. Sets lastUsedAt where newer. */
export const TOUCH = script(
  'touch',
  `
for i = 2, #ARGV, 2 do
  local h = redis.call('GET', ARGV[1] .. 'id:' .. ARGV[i])
  if h then
    local rk = ARGV[1] .. 'hash:' .. h
    local at = tonumber(ARGV[i + 1])
    local current = tonumber(redis.call('HGET', rk, 'lastUsedAt') or '0')
    if redis.call('EXISTS', rk) == 1 and at > current then redis.call('HSET', rk, 'lastUsedAt', ARGV[i + 1]) end
  end
end
return 1
`,
);

/** KEYS: expiring. ARGV: prefix, from, until. Records of active keys expiring in [from, until]. */
export const LIST_EXPIRING = script(
  'listExpiring',
  `
local out = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[2], ARGV[3])) do
  local h = redis.call('GET', ARGV[1] .. 'id:' .. id)
  if h then
    local rk = ARGV[1] .. 'hash:' .. h
    if redis.call('HGET', rk, 'status') == 'active' then out[#out + 1] = redis.call('HGETALL', rk) end
  end
end
return out
`,
);

/**
 * KEYS: audit:seq, audit, audit:tenant:{t} (or audit again when there is no tenant).
 * ARGV: the entry as JSON. Returns the entry's sequence number.
 */
export const APPEND_AUDIT = script(
  'appendAudit',
  `
local seq = redis.call('INCR', KEYS[1])
redis.call('ZADD', KEYS[2], seq, ARGV[1])
if KEYS[3] ~= KEYS[2] then redis.call('ZADD', KEYS[3], seq, ARGV[1]) end
return seq
`,
);

// ---- upstream secrets -------------------------------------------------------------------
// A secret is the hash secret:{id} (id name createdAt lastUsedAt keyVersion envelope); the
// sorted set `secrets` indexes the ids by createdAt. Every change publishes
// `{"ids":[…]}` on the secrets channel (with the publish command given: PUBLISH, or SPUBLISH
// in Cluster mode) so every instance drops its cached value.

const SECRET_META = `'id', 'name', 'createdAt', 'lastUsedAt', 'keyVersion'`;

/**
 * KEYS: secret:{id}, secrets. ARGV: id, createdAt, channel, envelope, publish command, then the hash's
 * field/value pairs. Returns 1, or 0 if the id exists (nothing written). The same envelope
 * again is the same add (resent after a lost reply) and returns 1.
 */
export const SECRET_ADD = script(
  'secretAdd',
  `
if redis.call('EXISTS', KEYS[1]) == 1 then
  if redis.call('HGET', KEYS[1], 'envelope') == ARGV[4] then return 1 end
  return 0
end
redis.call('HSET', KEYS[1], unpack(ARGV, 6))
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call(ARGV[5], ARGV[3], cjson.encode({ ids = { ARGV[1] } }))
return 1
`,
);

/** KEYS: secrets. ARGV: prefix. Every secret's [id, name, createdAt, lastUsedAt, keyVersion], newest first; never an envelope. */
export const SECRET_LIST = script(
  'secretList',
  `
local out = {}
for _, id in ipairs(redis.call('ZREVRANGE', KEYS[1], 0, -1)) do
  local f = redis.call('HMGET', ARGV[1] .. 'secret:' .. id, ${SECRET_META})
  if f[1] then out[#out + 1] = f end
end
return out
`,
);

/** KEYS: secret:{id}. ARGV: id, name, channel, publish command. The metadata after, or nil for an unknown id. */
export const SECRET_RENAME = script(
  'secretRename',
  `
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
redis.call('HSET', KEYS[1], 'name', ARGV[2])
redis.call(ARGV[4], ARGV[3], cjson.encode({ ids = { ARGV[1] } }))
return redis.call('HMGET', KEYS[1], ${SECRET_META})
`,
);

/**
 * KEYS: secret:{from}, secret:{to}, secrets. ARGV: from, to, name, keyVersion, envelope, channel, publish command.
 * Moves the secret to the new id with the new envelope, keeping createdAt and lastUsedAt.
 * Returns the metadata after, nil if `from` does not exist, 0 if `to` does.
 */
export const SECRET_MOVE = script(
  'secretMove',
  `
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local created = redis.call('HGET', KEYS[1], 'createdAt') or '0'
local used = redis.call('HGET', KEYS[1], 'lastUsedAt')
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[2], 'id', ARGV[2], 'name', ARGV[3], 'createdAt', created, 'keyVersion', ARGV[4], 'envelope', ARGV[5])
if used then redis.call('HSET', KEYS[2], 'lastUsedAt', used) end
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZADD', KEYS[3], created, ARGV[2])
redis.call(ARGV[7], ARGV[6], cjson.encode({ ids = { ARGV[1], ARGV[2] } }))
return redis.call('HMGET', KEYS[2], ${SECRET_META})
`,
);

/** KEYS: secret:{id}. ARGV: expected envelope, new envelope, new keyVersion. 1 if replaced, 0 if the envelope is not (or no longer) the expected one. */
export const SECRET_REPLACE = script(
  'secretReplace',
  `
if redis.call('HGET', KEYS[1], 'envelope') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'envelope', ARGV[2], 'keyVersion', ARGV[3])
return 1
`,
);

/** KEYS: secret:{id}, secrets. ARGV: id, channel, publish command. The metadata as it was, or nil. */
export const SECRET_REMOVE = script(
  'secretRemove',
  `
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local f = redis.call('HMGET', KEYS[1], ${SECRET_META})
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call(ARGV[3], ARGV[2], cjson.encode({ ids = { ARGV[1] } }))
return f
`,
);

/** KEYS: secrets (for routing). ARGV: prefix, then id/time pairs. Sets lastUsedAt where newer. */
export const SECRET_TOUCH = script(
  'secretTouch',
  `
for i = 2, #ARGV, 2 do
  local k = ARGV[1] .. 'secret:' .. ARGV[i]
  if redis.call('EXISTS', k) == 1 then
    local current = tonumber(redis.call('HGET', k, 'lastUsedAt') or '0')
    if tonumber(ARGV[i + 1]) > current then redis.call('HSET', k, 'lastUsedAt', ARGV[i + 1]) end
  end
end
return 1
`,
);

/**
 * KEYS: directory. ARGV: prefix, channel, publish command, mode (create|update|delete),
 * tenant, kind (user|group), name, value (JSON; '' for delete). Writes one user or group if
 * the mode allows (create: absent; update, delete: present), then logs and publishes
 * `{"dir":{"t":tenant,"k":kind,"n":name,"v":value|false}}` like a revocation, so every
 * instance applies it. Returns {1|0, seq, logId}.
 */
export const DIRECTORY_WRITE = script(
  'directoryWrite',
  `${LOG_EVENT}
local field = ARGV[5] .. '/' .. ARGV[6] .. '/' .. ARGV[7]
local present = redis.call('HEXISTS', KEYS[1], field) == 1
local mode = ARGV[4]
if (mode == 'create' and present) or (mode ~= 'create' and not present) then return { 0, '0', '' } end
local value = false
if mode == 'delete' then
  redis.call('HDEL', KEYS[1], field)
else
  redis.call('HSET', KEYS[1], field, ARGV[8])
  value = ARGV[8]
end
local n, logid = log_event(ARGV[1], ARGV[2], ARGV[3], { dir = { t = ARGV[5], k = ARGV[6], n = ARGV[7], v = value } })
return { 1, tostring(n), logid }
`,
);

/**
 * KEYS: one per bucket (`rl:<id>`). ARGV: weight, then count and period (ms) of each bucket.
 * GCRA over every bucket with Redis's clock (limits/gcra.ts): the request is allowed only if
 * every bucket allows it, and only then is each bucket's TAT stored (PX: until it is full
 * again). Returns {retryAfterMs (0 when allowed), then each bucket's TAT − now in ms}.
 */
export const RATE_LIMIT = script(
  'rateLimit',
  `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local w = tonumber(ARGV[1])
local base, nexts, retry = {}, {}, 0
for i = 1, #KEYS do
  local count, period = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0') or 0
  if tat < now then tat = now end
  base[i] = tat
  nexts[i] = tat + w * period / count
  local over = nexts[i] - now - period
  if over > retry then retry = over end
end
local out = { string.format('%.3f', retry) }
for i = 1, #KEYS do
  local tat = base[i]
  if retry <= 0 then
    tat = nexts[i]
    redis.call('SET', KEYS[i], string.format('%.3f', tat), 'PX', math.max(1, math.ceil(tat - now)))
  end
  out[i + 1] = string.format('%.3f', tat - now)
end
return out
`,
);

/**
 * KEYS: id:{id}. ARGV: prefix, field, value, channel, publish command, 'null' to remove the field. Sets one
 * field of a record that changes what the key may do while it stays as it is (its rate
 * limits), and logs and publishes `{"changed":[h]}` so every instance reads the record again.
 * Returns {h, the record's fields afterwards, seq, logId}, or nil for an unknown id.
 */
export const SET_KEY_FIELD = script(
  'setKeyField',
  `${LOG_EVENT}
local h = redis.call('GET', KEYS[1])
if not h then return false end
local rk = ARGV[1] .. 'hash:' .. h
if ARGV[6] == 'null' then redis.call('HDEL', rk, ARGV[2]) else redis.call('HSET', rk, ARGV[2], ARGV[3]) end
local n, logid = log_event(ARGV[1], ARGV[4], ARGV[5], { changed = { h } })
return { h, redis.call('HGETALL', rk), tostring(n), logid }
`,
);

/**
 * KEYS: one per budget (`q:<id>:<period>` a counter of what is used, or `cr:<id>` a hash of
 * remaining credits and the period they were last refilled in). ARGV: weight, then for each
 * budget kind (period|credits), amount, period id, the period's end (epoch ms), '1' to refill
 * credits at each period. Charges every budget or none. Returns {index of the first spent
 * budget (0: none), then each budget's remaining after}.
 */
export const QUOTA_CHARGE = script(
  'quotaCharge',
  `
local w = tonumber(ARGV[1])
local remaining, spent = {}, 0
for i = 1, #KEYS do
  local b = 1 + (i - 1) * 5
  local kind, amount, period = ARGV[b + 1], tonumber(ARGV[b + 2]), ARGV[b + 3]
  if kind == 'period' then
    remaining[i] = amount - tonumber(redis.call('GET', KEYS[i]) or '0')
  else
    local r = redis.call('HMGET', KEYS[i], 'remaining', 'period')
    local left = tonumber(r[1])
    if left == nil or (ARGV[b + 5] == '1' and r[2] ~= period) then left = amount end
    remaining[i] = left
  end
  if remaining[i] - w < 0 and spent == 0 then spent = i end
end
local out = { spent }
for i = 1, #KEYS do
  local b = 1 + (i - 1) * 5
  if spent == 0 then
    remaining[i] = remaining[i] - w
    if ARGV[b + 1] == 'period' then
      redis.call('INCRBY', KEYS[i], w)
      redis.call('PEXPIREAT', KEYS[i], tonumber(ARGV[b + 4]) + 86400000)
    else
      redis.call('HSET', KEYS[i], 'remaining', remaining[i], 'period', ARGV[b + 3])
    end
  end
  out[i + 1] = remaining[i]
end
return out
`,
);

/** KEYS: one budget. ARGV: kind, amount, period id, period end, refill flag, top-up. Adds the top-up (0: only reads). Returns remaining. */
export const QUOTA_TOP_UP = script(
  'quotaTopUp',
  `
local kind, amount, period, top = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[6])
if kind == 'period' then
  local used = tonumber(redis.call('GET', KEYS[1]) or '0')
  if top > 0 then
    used = redis.call('DECRBY', KEYS[1], top)
    redis.call('PEXPIREAT', KEYS[1], tonumber(ARGV[4]) + 86400000)
  end
  return amount - used
end
local r = redis.call('HMGET', KEYS[1], 'remaining', 'period')
local left = tonumber(r[1])
if left == nil or (ARGV[5] == '1' and r[2] ~= period) then left = amount end
if top > 0 then
  left = left + top
  redis.call('HSET', KEYS[1], 'remaining', left, 'period', period)
end
return left
`,
);

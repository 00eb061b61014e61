/**
 * Builds the ioredis connections of the Redis store from `store.redis` (docs/redis.md):
 * standalone (`url`), Sentinel (`sentinels` + `name`) or Cluster (`cluster`). Any other
 * field of `store.redis` is an ioredis option and is passed through unchanged; keygate's
 * defaults make an outage fail fast instead of queueing requests:
 *
 *  - `commandTimeout` from `commandTimeoutMs`: no command waits longer;
 *  - `enableOfflineQueue: false`: while disconnected, commands fail at once;
 *  - `maxRetriesPerRequest: 1`: a command caught by a disconnect is retried at most once;
 *  - `retryStrategy`: reconnect after 50 ms, doubling up to 1 s (plus jitter), forever;
 *  - `enableAutoPipelining: true`: commands issued in the same tick share one write;
 *  - `disableClientInfo: true`: no CLIENT SETINFO, one command fewer for the ACL to allow.
 */
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { Config } from '../../config/schema.ts';

export type RedisConfig = Config['store']['redis'];
export type Mode = 'standalone' | 'sentinel' | 'cluster';

/** The fields of `store.redis` that are keygate's own, not ioredis options. */
const OWN_FIELDS = new Set(['url', 'sentinels', 'cluster', 'commandTimeoutMs', 'keyPrefix']);

const DEFAULT_CONNECT_TIMEOUT_MS = 3000;

/** Reconnect delay: 50, 100, 200, 400, 800, then 1000 ms, plus up to 50 ms of jitter. */
export function reconnectDelay(times: number): number {
  return Math.min(50 * 2 ** Math.min(Math.max(times - 1, 0), 5), 1000) + Math.floor(Math.random() * 50);
}

export function modeOf(config: RedisConfig): Mode {
  if (config.cluster) return 'cluster';
  if (config.sentinels) return 'sentinel';
  return 'standalone';
}

/**
 * The key prefix. In Cluster mode every key keygate touches must be in one hash slot (each
 * script reads and writes several of them), so a prefix without a hash tag is wrapped in
 * one: `kg:` becomes `{kg}:`.
 */
export function keyPrefixFor(config: RedisConfig): string {
  const prefix = config.keyPrefix;
  if (modeOf(config) !== 'cluster' || hasHashTag(prefix)) return prefix;
  return `{${prefix.replace(/:$/, '') || 'kg'}}:`;
}

function hasHashTag(value: string): boolean {
  const open = value.indexOf('{');
  if (open < 0) return false;
  const close = value.indexOf('}', open + 1);
  return close > open + 1;
}

/** Where the store connects, for messages: never a password. */
export function describe(config: RedisConfig): string {
  if (config.cluster) return `Redis Cluster ${config.cluster.map((n) => `${n.host}:${n.port}`).join(',')}`;
  if (config.sentinels) return `Redis Sentinel group "${config.name ?? ''}" via ${config.sentinels.map((n) => `${n.host}:${n.port}`).join(',')}`;
  try {
    const url = new URL(config.url ?? '');
    return `Redis at ${url.protocol}//${url.host}`;
  } catch {
    return 'Redis';
  }
}

function passthrough(config: RedisConfig): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(config)) if (!OWN_FIELDS.has(key) && value !== undefined) out[key] = value;
  return out;
}

function readOnlyError(error: Error): boolean {
  // After a failover the old primary comes back as a replica: reconnect to find the new one.
  return error.message.startsWith('READONLY');
}

function redisDefaults(config: RedisConfig): RedisOptions {
  return {
    commandTimeout: config.commandTimeoutMs,
    connectTimeout: DEFAULT_CONNECT_TIMEOUT_MS,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false,
    enableAutoPipelining: true,
    retryStrategy: reconnectDelay,
    reconnectOnError: readOnlyError,
    autoResubscribe: false,
    connectionName: 'keygate',
    // CLIENT SETINFO (Redis 7.2+) only labels the library; skipping it keeps the ACL that
    // docs/redis.md gives the same on every Redis version.
    disableClientInfo: true,
  };
}

export type Connection = Redis | Cluster;

/** The connection for commands (lookups, writes, scripts, publishing). */
export function createCommandConnection(config: RedisConfig): Connection {
  const own = passthrough(config);
  if (config.cluster) {
    const { redisOptions, ...clusterOptions } = own as { redisOptions?: RedisOptions } & Record<string, unknown>;
    const options: ClusterOptions = {
      enableOfflineQueue: false,
      enableAutoPipelining: true,
      clusterRetryStrategy: reconnectDelay,
      ...(clusterOptions as ClusterOptions),
      redisOptions: {
        commandTimeout: config.commandTimeoutMs,
        connectTimeout: DEFAULT_CONNECT_TIMEOUT_MS,
        maxRetriesPerRequest: 1,
        reconnectOnError: readOnlyError,
        connectionName: 'keygate',
        disableClientInfo: true,
        ...redisOptions,
      },
    };
    return new Cluster(config.cluster, options);
  }
  const options: RedisOptions = { ...redisDefaults(config), ...(own as RedisOptions) };
  if (config.sentinels) return new Redis({ ...options, sentinels: config.sentinels, name: config.name });
  return new Redis(config.url ?? 'redis://127.0.0.1:6379', options);
}

const SUBSCRIBER_OVERRIDES = {
  connectionName: 'keygate:revocations',
  enableAutoPipelining: false,
  enableOfflineQueue: false,
  autoResubscribe: false,
  lazyConnect: false,
} satisfies RedisOptions;

/** CRC16/XMODEM, the checksum Redis Cluster maps keys to slots with. */
function crc16(data: Buffer): number {
  let crc = 0;
  for (const byte of data) {
    crc ^= byte << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

/** The hash slot of a key or shard channel (its `{tag}` only, when it has one). */
export function keySlot(key: string): number {
  const open = key.indexOf('{');
  if (open >= 0) {
    const close = key.indexOf('}', open + 1);
    if (close > open + 1) key = key.slice(open + 1, close);
  }
  return crc16(Buffer.from(key, 'utf8')) % 16384;
}

export interface NodeAddress {
  host: string;
  port: number;
}

/**
 * The node that serves `slot` according to the cluster client's current slot table (its
 * primary), or null while the table is not known.
 */
export function slotOwner(command: Connection, slot: number): NodeAddress | null {
  if (!(command instanceof Cluster)) return null;
  const owner = command.slots[slot]?.[0];
  return owner === undefined ? null : parseNodeAddress(owner);
}

/** "host:port" (as in a slot table or a MOVED reply) as an address. */
export function parseNodeAddress(text: string): NodeAddress | null {
  const colon = text.lastIndexOf(':');
  const port = Number(text.slice(colon + 1));
  if (colon <= 0 || !Number.isInteger(port) || port <= 0) return null;
  return { host: text.slice(0, colon), port };
}

/**
 * A dedicated connection for the revocation channel. Standalone and Sentinel: a duplicate
 * of the command connection (Sentinel finds the primary again after a failover). Cluster:
 * a plain connection to one node, `node` (the store passes the primary of its prefix's
 * slot: the channel is a shard channel, SSUBSCRIBE/SPUBLISH, served by that shard only) or
 * else the start-up node `attempt` picks; it gives up after a few failed reconnects so the
 * store can move on (to the slot's new owner, or the next node).
 */
export function createSubscriberConnection(config: RedisConfig, command: Connection, attempt: number, node?: NodeAddress | null): Redis {
  if (config.cluster && command instanceof Cluster) {
    node ??= config.cluster[attempt % config.cluster.length]!;
    const redisOptions = (passthrough(config).redisOptions ?? {}) as RedisOptions;
    return new Redis({
      commandTimeout: config.commandTimeoutMs,
      connectTimeout: DEFAULT_CONNECT_TIMEOUT_MS,
      disableClientInfo: true,
      ...redisOptions,
      ...SUBSCRIBER_OVERRIDES,
      host: node.host,
      port: node.port,
      retryStrategy: (times) => (times > 3 ? null : reconnectDelay(times)),
    });
  }
  return (command as Redis).duplicate(SUBSCRIBER_OVERRIDES);
}

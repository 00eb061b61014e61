/**
 * The ioredis options keygate's Redis connections get by default (docs/redis.md, "Timeouts,
 * retries and outages"), for each topology, and that an operator's own ioredis option wins.
 * The connections are lazy: nothing here connects.
 */
import type { Cluster, Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../../src/config/load.ts';
import { createCommandConnection, createSubscriberConnection } from '../../../../src/store/redis/connection.ts';

const redisConfig = (redis: Record<string, unknown>) => parseConfig({ store: { kind: 'redis', redis: { lazyConnect: true, ...redis } } }, 'test').store.redis;

describe('redis connection defaults', () => {
  it('standalone: fail fast, pipeline, no CLIENT SETINFO (the documented ACL does not allow it)', () => {
    const command = createCommandConnection(redisConfig({ url: 'redis://127.0.0.1:1', commandTimeoutMs: 250 })) as Redis;
    const subscriber = createSubscriberConnection(redisConfig({ url: 'redis://127.0.0.1:1' }), command, 0);
    try {
      expect(command.options).toMatchObject({ commandTimeout: 250, enableOfflineQueue: false, enableAutoPipelining: true, maxRetriesPerRequest: 1, disableClientInfo: true, connectionName: 'keygate' });
      expect(subscriber.options).toMatchObject({ disableClientInfo: true, enableAutoPipelining: false, connectionName: 'keygate:revocations' });
    } finally {
      command.disconnect();
      subscriber.disconnect();
    }
  });

  it('cluster: the same for every node and for the subscriber', () => {
    const config = redisConfig({ cluster: [{ host: '127.0.0.1', port: 1 }] });
    const command = createCommandConnection(config) as Cluster;
    const subscriber = createSubscriberConnection(config, command, 0);
    try {
      expect(command.options.redisOptions).toMatchObject({ disableClientInfo: true, maxRetriesPerRequest: 1 });
      expect(command.options).toMatchObject({ enableOfflineQueue: false, enableAutoPipelining: true });
      expect(subscriber.options).toMatchObject({ disableClientInfo: true });
    } finally {
      command.disconnect();
      subscriber.disconnect();
    }
  });

  it("an operator's own ioredis option wins", () => {
    const command = createCommandConnection(redisConfig({ url: 'redis://127.0.0.1:1', disableClientInfo: false })) as Redis;
    try {
      expect(command.options.disableClientInfo).toBe(false);
    } finally {
      command.disconnect();
    }
  });
});

/** ReplayStore on Redis: a claim is `SET … NX PX`, atomic across every instance. */
import type { ReplayStore } from '../replay-store.ts';
import type { Commands } from './commands.ts';

export class RedisReplay implements ReplayStore {
  readonly #redis: Commands;

  constructor(redis: Commands) {
    this.#redis = redis;
  }

  async claimOnce(id: string, ttlMs: number): Promise<boolean> {
    return (await this.#redis.call('SET', this.#redis.keys.replay(id), '1', 'NX', 'PX', Math.max(1, Math.ceil(ttlMs)))) !== null;
  }

  async releaseClaim(id: string): Promise<void> {
    await this.#redis.call('DEL', this.#redis.keys.replay(id));
  }
}

/** SessionStore on Redis: a signed-out console session is a key that expires with the session. */
import type { SessionStore } from '../session-store.ts';
import type { Commands } from './commands.ts';

export class RedisSessions implements SessionStore {
  readonly #redis: Commands;

  constructor(redis: Commands) {
    this.#redis = redis;
  }

  async endSession(id: string, until: number): Promise<void> {
    // Redis drops the entry itself once the session would have expired anyway.
    await this.#redis.call('SET', this.#redis.keys.endedSession(id), '1', 'PXAT', String(Math.max(until, Date.now() + 1000)));
  }

  async isSessionEnded(id: string): Promise<boolean> {
    return Number(await this.#redis.call('EXISTS', this.#redis.keys.endedSession(id))) === 1;
  }
}

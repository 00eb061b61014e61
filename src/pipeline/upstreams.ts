/**
 * One undici Pool per upstream origin (and connect timeout), created when the route table
 * is built, never per request.
 */
import { Pool } from 'undici';
import type { RouteConfig } from '../config/schema.ts';

export class Upstreams {
  readonly #pools = new Map<string, Pool>();

  /** Bound so it can be handed to the Router as its DispatcherFor. */
  readonly poolFor = (origin: string, route: RouteConfig): Pool => {
    const connectMs = route.timeouts.connectMs;
    const id = `${origin} ${connectMs}`;
    let pool = this.#pools.get(id);
    if (pool === undefined) {
      pool = new Pool(origin, {
        connect: { timeout: connectMs },
        keepAliveTimeout: 60_000,
        keepAliveMaxTimeout: 600_000,
      });
      this.#pools.set(id, pool);
    }
    return pool;
  };

  async close(): Promise<void> {
    await Promise.all([...this.#pools.values()].map((pool) => pool.close().catch(() => pool.destroy())));
    this.#pools.clear();
  }

  destroy(): void {
    for (const pool of this.#pools.values()) void pool.destroy();
    this.#pools.clear();
  }
}

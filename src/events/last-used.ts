/**
 * "Last used" without a store write per request: the request path only notes the time in a
 * Map; every `intervalMs` the batch is written in one store call, so each key costs at most
 * one write per interval per instance.
 */
import type { LifecycleStore } from '../store/lifecycle-store.ts';

export class LastUsed {
  #pending = new Map<string, number>();

  mark(keyId: string, at: number): void {
    this.#pending.set(keyId, at);
  }

  get pending(): number {
    return this.#pending.size;
  }

  async flush(store: Pick<LifecycleStore, 'touch'>): Promise<void> {
    if (this.#pending.size === 0) return;
    const batch = this.#pending;
    this.#pending = new Map();
    try {
      await store.touch(batch);
    } catch (error) {
      // Keep the times for the next flush rather than lose them; newer marks win.
      for (const [id, at] of batch) if (!this.#pending.has(id)) this.#pending.set(id, at);
      throw error;
    }
  }
}

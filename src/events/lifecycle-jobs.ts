/**
 * Background work every instance runs: rotation's delayed revocations, expiry reminders,
 * and the last-used batch. Nothing here needs a leader: revokeDue and claimReminder are
 * atomic in the store, so each revocation and each reminder happens once however many
 * instances sweep at the same moment.
 */
import type { Logger } from '../observability/logger.ts';
import type { KeyStore } from '../store/key-store.ts';
import type { LifecycleStore } from '../store/lifecycle-store.ts';
import type { EventSink } from './event-sink.ts';
import type { LastUsed } from './last-used.ts';
import { dueStage, reminderWindow } from './reminders.ts';

export interface LifecycleJobsOptions {
  store: KeyStore & LifecycleStore;
  events: EventSink;
  lastUsed: LastUsed;
  logger: Logger;
  sweepMs: number;
  lastUsedFlushMs: number;
  now?: () => number;
}

export class LifecycleJobs {
  readonly #o: LifecycleJobsOptions;
  readonly #now: () => number;
  #timers: NodeJS.Timeout[] = [];
  #sweeping: Promise<void> | null = null;

  constructor(options: LifecycleJobsOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
  }

  start(): void {
    const every = (ms: number, job: () => Promise<void>) => {
      const timer = setInterval(() => void job().catch((error: unknown) => this.#o.logger.warn({ err: { message: (error as Error).message } }, 'background job failed')), ms);
      timer.unref();
      this.#timers.push(timer);
    };
    every(this.#o.sweepMs, () => this.sweep());
    every(this.#o.lastUsedFlushMs, () => this.#o.lastUsed.flush(this.#o.store));
  }

  /** One pass of due revocations and reminders (also called directly by tests). */
  sweep(): Promise<void> {
    this.#sweeping ??= this.#sweep().finally(() => (this.#sweeping = null));
    return this.#sweeping;
  }

  async #sweep(): Promise<void> {
    const { store, events } = this.#o;
    const now = this.#now();
    for (const id of await store.revokeDue(now)) {
      const record = await store.get(id);
      if (record) await events.key('key.revoke', 'keygate', record, { reason: 'rotation overlap ended' });
    }
    const [from, until] = reminderWindow(now);
    for (const record of await store.listExpiring(from, until)) {
      const stage = dueStage(record.expiresAt!, now);
      if (stage === null || !(await store.claimReminder(record.id, stage))) continue;
      if (stage === 'expired') await events.key('key.expire', 'keygate', record);
      else events.reminder(record, stage);
    }
  }

  /** Stops the timers and writes the last batch (shutdown). */
  async stop(): Promise<void> {
    for (const timer of this.#timers) clearInterval(timer);
    this.#timers = [];
    await this.#sweeping;
    await this.#o.lastUsed.flush(this.#o.store).catch((error: unknown) => this.#o.logger.warn({ err: { message: (error as Error).message } }, 'last-used flush failed'));
  }
}

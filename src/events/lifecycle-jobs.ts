/**
 * Background work every instance runs: rotation's delayed revocations, expiry reminders,
 * and the last-used batch. Nothing here needs a leader: revokeDue and claimReminder are
 * atomic in the store, so each revocation and each reminder happens once however many
 * instances sweep at the same moment.
 *
 * When the store cannot be reached (StoreUnavailableError: an outage, a failover) a job
 * logs it and runs again shortly (within a second, or its period if shorter) instead of
 * waiting for its next period; nothing it took on is lost: a key the sweep revoked
 * whose audit event could not be written yet is announced on a later pass.
 */
import type { Logger } from '../observability/logger.ts';
import { StoreUnavailableError, type KeyStore } from '../store/key-store.ts';
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
  /** Ids revoked by the sweep whose 'key.revoke' event is still to be written (in order). */
  readonly #unannounced: string[] = [];
  /** One pending early retry per job, by name. */
  readonly #retries = new Map<string, NodeJS.Timeout>();

  constructor(options: LifecycleJobsOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
  }

  start(): void {
    const run = (name: string, ms: number, job: () => Promise<void>): void => {
      void job().catch((error: unknown) => {
        if (!(error instanceof StoreUnavailableError)) {
          this.#o.logger.warn({ job: name, err: { message: (error as Error).message } }, 'background job failed');
          return;
        }
        const retryMs = Math.min(ms, 1000);
        this.#o.logger.warn({ job: name, retryInMs: retryMs, err: { message: error.message } }, 'background job: key store unavailable; retrying');
        if (this.#retries.has(name)) return; // one retry pending is enough
        const retry = setTimeout(() => {
          this.#retries.delete(name);
          if (this.#timers.length) run(name, ms, job);
        }, retryMs);
        retry.unref();
        this.#retries.set(name, retry);
      });
    };
    const every = (name: string, ms: number, job: () => Promise<void>) => {
      const timer = setInterval(() => run(name, ms, job), ms);
      timer.unref();
      this.#timers.push(timer);
    };
    every('sweep', this.#o.sweepMs, () => this.sweep());
    every('last-used', this.#o.lastUsedFlushMs, () => this.#o.lastUsed.flush(this.#o.store));
  }

  /** One pass of due revocations and reminders (also called directly by tests). */
  sweep(): Promise<void> {
    this.#sweeping ??= this.#sweep().finally(() => (this.#sweeping = null));
    return this.#sweeping;
  }

  async #sweep(): Promise<void> {
    const { store, events } = this.#o;
    const now = this.#now();
    // revokeDue takes the ids off the schedule: announce each even if the store fails
    // between the revocation and its event (kept here and retried on the next pass).
    this.#unannounced.push(...(await store.revokeDue(now)));
    while (this.#unannounced.length > 0) {
      const record = await store.get(this.#unannounced[0]!);
      if (record) await events.key('key.revoke', 'keygate', record, { reason: 'rotation overlap ended' });
      this.#unannounced.shift();
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
    for (const retry of this.#retries.values()) clearTimeout(retry);
    this.#retries.clear();
    await this.#sweeping;
    await this.#o.lastUsed.flush(this.#o.store).catch((error: unknown) => this.#o.logger.warn({ err: { message: (error as Error).message } }, 'last-used flush failed'));
  }
}

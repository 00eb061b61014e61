/**
 * Per-key usage without a store write per request (docs/usage.md). The request path only
 * increments a counter in memory — for the key and for its tenant, by UTC day and
 * `<route>|<class>` — and every `flushMs` the batch goes to the store in one script (Redis)
 * or one transaction (SQLite), as last-used times do (last-used.ts, lifecycle-jobs.ts); the
 * last batch is written at shutdown.
 *
 * The hot path: the field names of a route (`api|2xx` …) are made once per route name and
 * kept, the day is a cached object that changes at UTC midnight, so a count is two Map
 * lookups and two `set`s of a number; a Map is made only the first time a key (or tenant)
 * is seen between two flushes.
 *
 * Memory is bounded by `maxCounters`: the number of distinct counters (key or tenant, day,
 * field) held between two flushes. Reaching it starts a flush at once (off the request
 * path, on a timer); until that flush has taken the batch — or, while the store cannot be
 * reached, until it can — a request that would need a new counter is not counted (counted
 * in `dropped` and logged at the next flush), while existing counters keep counting.
 *
 * What is counted: every request and WebSocket upgrade that presented a key keygate
 * verified (identity.record.id non-empty: not access tokens, not unknown keys), whatever
 * the answer — the upstream's, by class (`1xx` for an opened WebSocket … `5xx`), or keygate's
 * own refusal or failure, by its status (`401` for a revoked or expired key, `403`, `429`,
 * `502` …); 499 is a client that left before the answer.
 */
import type { Logger } from '../observability/logger.ts';
import type { Exchange } from '../pipeline/exchange.ts';
import { StoreUnavailableError } from '../store/key-store.ts';
import { DAY_MS, dayOf, dayStart, type UsageCounts, type UsageStore } from '../store/usage-store.ts';

const CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'] as const;

/** The counter names of one route: its classes, and keygate's own statuses as they come up. */
class RouteFields {
  readonly classes: readonly string[];
  readonly #route: string;
  readonly #own = new Map<number, string>();

  constructor(route: string) {
    this.#route = route;
    this.classes = CLASSES.map((c) => `${route}|${c}`);
  }

  /** keygate's own answer, by its status: a handful of statuses, each made once. */
  own(status: number): string {
    let field = this.#own.get(status);
    if (field === undefined) this.#own.set(status, (field = `${this.#route}|${status}`));
    return field;
  }
}

/** The counters of one UTC day: by key id and by tenant, each field → count. */
class DayCounts {
  readonly day: string;
  readonly start: number;
  readonly end: number;
  readonly keys = new Map<string, Map<string, number>>();
  readonly tenants = new Map<string, Map<string, number>>();

  constructor(day: string) {
    this.day = day;
    this.start = dayStart(day);
    this.end = this.start + DAY_MS;
  }
}

export interface UsageOptions {
  store: Pick<UsageStore, 'addUsage'>;
  logger?: Logger | null;
  /** How often the batch is written (ms). */
  flushMs: number;
  /** Distinct counters held between two flushes at most (see above). */
  maxCounters?: number;
  now?: () => number;
}

export const DEFAULT_MAX_COUNTERS = 100_000;

export class Usage {
  readonly #store: Pick<UsageStore, 'addUsage'>;
  readonly #logger: Logger | null;
  readonly #flushMs: number;
  readonly #max: number;
  readonly #now: () => number;
  readonly #routes = new Map<string, RouteFields>();
  /** Pending counters by day (one day, except around midnight or while the store is down). */
  #days = new Map<string, DayCounts>();
  #today: DayCounts | null = null;
  #counters = 0;
  #dropped = 0;
  /** Flushes run one after the other. */
  #chain: Promise<void> = Promise.resolve();
  #timer: NodeJS.Timeout | null = null;
  #soon: NodeJS.Timeout | null = null;
  #running = false;

  constructor(options: UsageOptions) {
    this.#store = options.store;
    this.#logger = options.logger ?? null;
    this.#flushMs = options.flushMs;
    this.#max = options.maxCounters ?? DEFAULT_MAX_COUNTERS;
    this.#now = options.now ?? Date.now;
  }

  /** Distinct counters waiting for the next flush. */
  get pending(): number {
    return this.#counters;
  }

  /** Requests not counted since the last flush because the counters were at the cap. */
  get dropped(): number {
    return this.#dropped;
  }

  /** Called once per finished request or upgrade (observability/request-metrics.ts), with the status the client got. */
  count(exchange: Exchange, status: number): void {
    const identity = exchange.identity;
    const route = exchange.route;
    if (identity === null || route === null) return;
    const record = identity.record;
    // An access token's record is made from its claims (id ''): nothing of it is in the store.
    if (record.id === '') return;
    const fields = this.#routes.get(route.name) ?? this.#fieldsOf(route.name);
    const field = exchange.error !== null ? fields.own(status) : fields.classes[Math.min(Math.max(Math.floor(status / 100), 1), 5) - 1]!;
    const now = this.#now();
    let day = this.#today;
    if (day === null || now >= day.end || now < day.start) day = this.#dayOf(now);
    this.#add(day.keys, record.id, field);
    this.#add(day.tenants, record.tenant, field);
  }

  #fieldsOf(route: string): RouteFields {
    const fields = new RouteFields(route);
    // Bounded by the route names configured since start (a reload may rename some).
    this.#routes.set(route, fields);
    return fields;
  }

  #dayOf(now: number): DayCounts {
    const name = dayOf(now);
    let day = this.#days.get(name);
    if (day === undefined) this.#days.set(name, (day = new DayCounts(name)));
    this.#today = day;
    return day;
  }

  /** `restoring`: a failed flush's counts put back, which must not start another flush at once. */
  #add(scope: Map<string, Map<string, number>>, id: string, field: string, n = 1, restoring = false): void {
    let counters = scope.get(id);
    const current = counters?.get(field);
    if (current !== undefined) {
      counters!.set(field, current + n);
      return;
    }
    if (this.#counters >= this.#max) {
      this.#dropped += n;
      if (!restoring) this.#full();
      return;
    }
    if (counters === undefined) scope.set(id, (counters = new Map()));
    counters.set(field, n);
    this.#counters++;
  }

  /** At the cap: a flush as soon as possible (never on the request path itself). */
  #full(): void {
    if (!this.#running || this.#soon !== null) return;
    this.#soon = setTimeout(() => {
      this.#soon = null;
      this.#run();
    }, 0);
    this.#soon.unref();
  }

  /** Writes what is pending (tests, shutdown, and the timer). Flushes never overlap. */
  flush(): Promise<void> {
    const run = this.#chain.then(() => this.#flushOnce());
    this.#chain = run.catch(() => {});
    return run;
  }

  async #flushOnce(): Promise<void> {
    const dropped = this.#dropped;
    if (dropped > 0) {
      this.#dropped = 0;
      this.#logger?.warn({ notCounted: dropped, maxCounters: this.#max }, 'usage counters were at their cap: some requests were not counted');
    }
    if (this.#counters === 0) return;
    const days = this.#days;
    this.#days = new Map();
    this.#today = null;
    this.#counters = 0;
    const batch: UsageCounts[] = [];
    for (const d of days.values()) {
      for (const [id, fields] of d.keys) batch.push({ scope: 'k', id, day: d.day, fields });
      for (const [id, fields] of d.tenants) batch.push({ scope: 't', id, day: d.day, fields });
    }
    try {
      await this.#store.addUsage(batch, this.#now());
    } catch (error) {
      // Kept for the next flush rather than lost (up to the cap). A write whose answer was
      // lost (a timeout) may thus be counted twice; an outage loses nothing below the cap.
      for (const d of days.values()) {
        const into = this.#days.get(d.day) ?? new DayCounts(d.day);
        this.#days.set(d.day, into);
        for (const [id, fields] of d.keys) for (const [field, n] of fields) this.#add(into.keys, id, field, n, true);
        for (const [id, fields] of d.tenants) for (const [field, n] of fields) this.#add(into.tenants, id, field, n, true);
      }
      throw error;
    }
  }

  /** Flushes every `flushMs`; a store outage is retried within a second. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#timer = setInterval(() => this.#run(), this.#flushMs);
    this.#timer.unref();
  }

  #run(): void {
    void this.flush().catch((error: unknown) => {
      if (!(error instanceof StoreUnavailableError)) {
        this.#logger?.warn({ job: 'usage', err: { message: (error as Error).message } }, 'background job failed');
        return;
      }
      this.#logger?.warn({ job: 'usage', err: { message: error.message } }, 'background job: key store unavailable; retrying');
      if (this.#running && this.#soon === null) {
        this.#soon = setTimeout(() => {
          this.#soon = null;
          if (this.#running) this.#run();
        }, Math.min(this.#flushMs, 1000));
        this.#soon.unref();
      }
    });
  }

  /** Stops the timer and writes the last batch (shutdown: after the listeners closed, before the store). */
  async stop(): Promise<void> {
    this.#running = false;
    if (this.#timer !== null) clearInterval(this.#timer);
    if (this.#soon !== null) clearTimeout(this.#soon);
    this.#timer = this.#soon = null;
    await this.flush().catch((error: unknown) => this.#logger?.warn({ notWritten: this.#counters, err: { message: (error as Error).message } }, 'usage flush at shutdown failed'));
  }
}

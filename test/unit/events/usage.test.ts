/**
 * Usage (src/events/usage.ts) against a real embedded store: the request path only counts
 * in memory (per key and per tenant, by UTC day, route and class, keygate's own answers by
 * status); a flush writes the batch in one store call; the day rolls over at UTC midnight;
 * the counters are capped (an early flush, then requests needing a new counter are dropped);
 * a failed write keeps the counts and is retried; stop() writes the last batch.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Usage } from '../../../src/events/usage.ts';
import { usageReport } from '../../../src/events/usage-report.ts';
import type { Exchange } from '../../../src/pipeline/exchange.ts';
import { EmbeddedStore } from '../../../src/store/embedded/store.ts';
import { StoreUnavailableError } from '../../../src/store/key-store.ts';
import { DAY_MS, dayOf, type UsageCounts } from '../../../src/store/usage-store.ts';
import { DatabaseSync } from 'node:sqlite';

let dir: string;
let store: EmbeddedStore;
let clock: number;
const now = () => clock;
/** 2025-03-10T23:59:00Z: a minute before a UTC midnight. */
const LATE = Date.UTC(2025, 2, 10, 23, 59);

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'keygate-usage-'));
  store = new EmbeddedStore({ path: join(dir, 'k.db') });
  clock = LATE;
});

afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

/** An exchange as the request path leaves it: the route, the verified key's record, keygate's own error if it answered. */
function exchange(keyId: string, tenant: string, route: string | null, error: string | null = null): Exchange {
  return { identity: { record: { id: keyId, tenant } }, route: route === null ? null : { name: route }, error } as unknown as Exchange;
}

const fields = (days: Record<string, number>[]) => days.map((d) => ({ ...d }));

describe('Usage', () => {
  it('counts per key and per tenant by day, route and class in memory, and writes them in one store call per flush', async () => {
    const add = vi.spyOn(store, 'addUsage');
    const usage = new Usage({ store, flushMs: 60_000, now });
    for (let i = 0; i < 300; i++) usage.count(exchange('key_a', 'acme', 'api'), 200);
    usage.count(exchange('key_a', 'acme', 'api'), 404);
    usage.count(exchange('key_a', 'acme', 'mcp'), 503);
    usage.count(exchange('key_a', 'acme', 'ws'), 101);
    usage.count(exchange('key_a', 'acme', 'api'), 302);
    usage.count(exchange('key_b', 'acme', 'api'), 201);
    // keygate's own answers, by their status: a revoked key's 401, a rate limit's 429, a 502.
    usage.count(exchange('key_b', 'acme', 'api', 'key_revoked'), 401);
    usage.count(exchange('key_b', 'acme', 'api', 'rate_limited'), 429);
    usage.count(exchange('key_b', 'acme', 'api', 'upstream_unavailable'), 502);
    usage.count(exchange('key_c', 'globex', 'api'), 499);
    // key_a: 5 counters, key_b: 4, key_c: 1; acme: 8 (2xx, 404→4xx, 5xx, 1xx, 3xx, 401, 429, 502), globex: 1.
    expect(usage.pending).toBe(5 + 4 + 1 + 8 + 1);
    expect(add).not.toHaveBeenCalled();
    expect(fields(await store.readUsage('k', 'key_a', ['20250310']))).toEqual([{}]);

    await usage.flush();
    expect(add).toHaveBeenCalledTimes(1);
    expect(usage.pending).toBe(0);
    expect(fields(await store.readUsage('k', 'key_a', ['20250310']))).toEqual([{ 'api|2xx': 300, 'api|4xx': 1, 'mcp|5xx': 1, 'ws|1xx': 1, 'api|3xx': 1 }]);
    expect(fields(await store.readUsage('k', 'key_b', ['20250310']))).toEqual([{ 'api|2xx': 1, 'api|401': 1, 'api|429': 1, 'api|502': 1 }]);
    expect(fields(await store.readUsage('t', 'acme', ['20250310']))).toEqual([
      { 'api|2xx': 301, 'api|4xx': 1, 'mcp|5xx': 1, 'ws|1xx': 1, 'api|3xx': 1, 'api|401': 1, 'api|429': 1, 'api|502': 1 },
    ]);
    expect(fields(await store.readUsage('t', 'globex', ['20250310']))).toEqual([{ 'api|4xx': 1 }]);

    // A second flush adds to the same counters; an empty flush calls nothing.
    usage.count(exchange('key_a', 'acme', 'api'), 200);
    await usage.flush();
    await usage.flush();
    expect(add).toHaveBeenCalledTimes(2);
    expect((await store.readUsage('k', 'key_a', ['20250310']))[0]!['api|2xx']).toBe(301);
  });

  it('counts nothing without a verified key: no identity, no route, or an access token (record id "")', async () => {
    const usage = new Usage({ store, flushMs: 60_000, now });
    usage.count({ identity: null, route: { name: 'api' }, error: 'invalid_key' } as unknown as Exchange, 401);
    usage.count(exchange('key_a', 'acme', null, 'no_route'), 404);
    usage.count(exchange('', 'acme', 'api'), 200);
    expect(usage.pending).toBe(0);
  });

  it('rolls over at UTC midnight: the requests of each day go to that day', async () => {
    const usage = new Usage({ store, flushMs: 60_000, now });
    usage.count(exchange('key_a', 'acme', 'api'), 200);
    usage.count(exchange('key_a', 'acme', 'api'), 200);
    clock = LATE + 2 * 60_000; // 00:01 on the 11th
    usage.count(exchange('key_a', 'acme', 'api'), 200);
    await usage.flush();
    clock += 3600_000;
    usage.count(exchange('key_a', 'acme', 'api'), 500);
    await usage.flush();
    const days = await usageReport(store, 'k', 'key_a', 3, clock);
    expect(days).toEqual([
      { date: '2025-03-09', total: 0, byRoute: {} },
      { date: '2025-03-10', total: 2, byRoute: { api: { '2xx': 2 } } },
      { date: '2025-03-11', total: 2, byRoute: { api: { '2xx': 1, '5xx': 1 } } },
    ]);
  });

  it('holds at most maxCounters: at the cap a flush starts at once, existing counters keep counting, new ones wait', async () => {
    const usage = new Usage({ store, flushMs: 3_600_000, maxCounters: 4, now });
    usage.start();
    try {
      usage.count(exchange('key_a', 'acme', 'api'), 200); // key_a|api|2xx, acme|api|2xx
      usage.count(exchange('key_b', 'acme', 'api'), 200); // key_b|api|2xx (acme's exists)
      usage.count(exchange('key_c', 'acme', 'api'), 200); // key_c|api|2xx: the 4th
      expect(usage.pending).toBe(4);
      usage.count(exchange('key_a', 'acme', 'api'), 200); // existing: counted
      usage.count(exchange('key_d', 'globex', 'api'), 200); // new key and tenant: dropped (2 counters)
      expect(usage.pending).toBe(4);
      expect(usage.dropped).toBe(2);
      // The early flush (not the hour-long timer) writes what was held.
      await vi.waitFor(async () => expect((await store.readUsage('k', 'key_a', ['20250310']))[0]).toEqual({ 'api|2xx': 2 }), { timeout: 2000 });
      expect(usage.pending).toBe(0);
      expect(fields(await store.readUsage('k', 'key_d', ['20250310']))).toEqual([{}]);
      expect((await store.readUsage('t', 'acme', ['20250310']))[0]).toEqual({ 'api|2xx': 4 });
      // Room again.
      usage.count(exchange('key_d', 'globex', 'api'), 200);
      expect(usage.pending).toBe(2);
    } finally {
      await usage.stop();
    }
    expect((await store.readUsage('t', 'globex', ['20250310']))[0]).toEqual({ 'api|2xx': 1 });
  });

  it('keeps the counts of a failed write and retries within a second; stop() writes the last batch', async () => {
    let failures = 1;
    const batches: UsageCounts[][] = [];
    const flaky = {
      addUsage: async (batch: readonly UsageCounts[], at: number) => {
        if (failures-- > 0) throw new StoreUnavailableError('Redis did not answer within 500 ms');
        batches.push([...batch]);
        return store.addUsage(batch, at);
      },
    };
    const usage = new Usage({ store: flaky, flushMs: 100, now });
    usage.count(exchange('key_a', 'acme', 'api'), 200);
    usage.start();
    try {
      // The first flush fails; a request meanwhile adds to the same counter; the retry writes both.
      await vi.waitFor(() => expect(failures).toBe(0), { timeout: 2000 });
      usage.count(exchange('key_a', 'acme', 'api'), 200);
      await vi.waitFor(async () => expect((await store.readUsage('k', 'key_a', ['20250310']))[0]).toEqual({ 'api|2xx': 2 }), { timeout: 3000 });
      usage.count(exchange('key_a', 'acme', 'api'), 201);
    } finally {
      await usage.stop();
    }
    expect((await store.readUsage('k', 'key_a', ['20250310']))[0]).toEqual({ 'api|2xx': 3 });
    expect(usage.pending).toBe(0);
  });

  it('keeps nothing past 35 days on the embedded store: late counts of old days are not written, and the day\'s first write purges them', async () => {
    const rows = () => {
      const db = new DatabaseSync(join(dir, 'k.db'));
      try {
        return (db.prepare('SELECT day, n FROM usage_counters WHERE id = ?').all('key_a') as { day: string; n: number }[]).map((r) => `${r.day}=${r.n}`);
      } finally {
        db.close();
      }
    };
    const today = Date.now();
    const old = today - 40 * DAY_MS;
    const usage = new Usage({ store, flushMs: 60_000, now });
    clock = old; // 40 days ago, that day's counts were written...
    usage.count(exchange('key_a', 'acme', 'api'), 200);
    await usage.flush();
    expect(rows()).toEqual([`${dayOf(old)}=1`]);
    // ...but today they are past retention: today's first write skips late counts of that day and deletes the old rows.
    clock = today;
    await store.addUsage([{ scope: 'k', id: 'key_a', day: dayOf(old), fields: new Map([['api|2xx', 5]]) }, { scope: 'k', id: 'key_a', day: dayOf(today), fields: new Map([['api|2xx', 1]]) }], clock);
    expect(rows()).toEqual([`${dayOf(today)}=1`]);
    // The 35th day back is still kept; the 36th is not.
    const kept = today - 34 * DAY_MS;
    await store.addUsage([{ scope: 'k', id: 'key_a', day: dayOf(kept), fields: new Map([['api|2xx', 2]]) }, { scope: 'k', id: 'key_a', day: dayOf(kept - DAY_MS), fields: new Map([['api|2xx', 3]]) }], clock);
    expect(rows().sort()).toEqual([`${dayOf(kept)}=2`, `${dayOf(today)}=1`].sort());
  });
});

/**
 * LastUsed (src/events/last-used.ts) against a real embedded store: the request path only
 * notes times; a flush writes each key once; a failed write loses nothing.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../../src/config/load.ts';
import { LastUsed } from '../../../src/events/last-used.ts';
import { CLI_CALLER, KeyService } from '../../../src/keys/service.ts';
import { EmbeddedStore } from '../../../src/store/embedded/store.ts';
import { testHasher } from '../../helpers/pepper.ts';

let dir: string;
let path: string;
let store: EmbeddedStore;
let ids: [string, string, string];

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'keygate-lastused-'));
  path = join(dir, 'k.db');
  store = new EmbeddedStore({ path });
  const service = new KeyService(store, testHasher, parseConfig({}, 'test'));
  const make = async (name: string) => (await service.create(CLI_CALLER, { tenant: 'acme', name })).record.id;
  ids = [await make('one'), await make('two'), await make('three')];
});

afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

const lastUsedOf = async (id: string, s: EmbeddedStore = store) => (await s.get(id))!.lastUsedAt;

describe('LastUsed', () => {
  it('writes nothing until flushed, then each key once, with its latest time, in one store call', async () => {
    const touch = vi.spyOn(store, 'touch');
    const lastUsed = new LastUsed();
    for (let i = 1; i <= 500; i++) lastUsed.mark(ids[0], 1_000 + i);
    lastUsed.mark(ids[1], 700);
    expect(lastUsed.pending).toBe(2);
    expect(touch).not.toHaveBeenCalled();
    expect(await lastUsedOf(ids[0])).toBeNull();

    await lastUsed.flush(store);
    expect(touch).toHaveBeenCalledTimes(1);
    expect([...touch.mock.calls[0]![0]]).toEqual([
      [ids[0], 1_500],
      [ids[1], 700],
    ]);
    expect(lastUsed.pending).toBe(0);
    expect(await lastUsedOf(ids[0])).toBe(1_500);
    expect(await lastUsedOf(ids[1])).toBe(700);
    expect(await lastUsedOf(ids[2])).toBeNull();
  });

  it('does not call the store when nothing is pending', async () => {
    const touch = vi.spyOn(store, 'touch');
    const lastUsed = new LastUsed();
    await lastUsed.flush(store);
    lastUsed.mark(ids[0], 5);
    await lastUsed.flush(store);
    await lastUsed.flush(store);
    expect(touch).toHaveBeenCalledTimes(1);
  });

  it('never moves lastUsedAt back: an older batch (another instance, a late flush) is ignored', async () => {
    const newer = new LastUsed();
    newer.mark(ids[0], 5_000);
    await newer.flush(store);
    const older = new LastUsed();
    older.mark(ids[0], 4_000);
    older.mark(ids[1], 4_000);
    await older.flush(store);
    expect(await lastUsedOf(ids[0])).toBe(5_000);
    expect(await lastUsedOf(ids[1])).toBe(4_000);
  });

  it('keeps the times of a failed write for the next flush, and a newer mark wins', async () => {
    const lastUsed = new LastUsed();
    lastUsed.mark(ids[0], 100);
    lastUsed.mark(ids[1], 100);
    await store.close();
    // The store is really gone; a request marks key one again while the write is failing.
    const failing = { touch: (batch: ReadonlyMap<string, number>) => (lastUsed.mark(ids[0], 200), store.touch(batch)) };
    await expect(lastUsed.flush(failing)).rejects.toThrow();
    expect(lastUsed.pending).toBe(2);

    const reopened = new EmbeddedStore({ path });
    try {
      await lastUsed.flush(reopened);
      expect(await lastUsedOf(ids[0], reopened)).toBe(200);
      expect(await lastUsedOf(ids[1], reopened)).toBe(100);
      expect(lastUsed.pending).toBe(0);
    } finally {
      await reopened.close();
    }
  });
});

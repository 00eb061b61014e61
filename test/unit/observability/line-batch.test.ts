/** LineBatch: lines reach the destination joined, in order, by size or after the delay, and all of them at flushSync. */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { LineBatch } from '../../../src/observability/line-batch.ts';

function sink() {
  const writes: string[] = [];
  let synced = 0;
  return { writes, get synced() { return synced; }, write: (text: string) => void writes.push(text), flushSync: () => void synced++ };
}

afterEach(() => vi.useRealTimers());

describe('LineBatch', () => {
  it('writes once per maxBytes, in order', () => {
    const s = sink();
    const batch = new LineBatch(s, 30, 1000);
    for (let i = 0; i < 7; i++) batch.write(`line ${i}\n`);
    expect(s.writes).toEqual(['line 0\nline 1\nline 2\nline 3\nline 4\n']);
    batch.flush();
    expect(s.writes.join('')).toBe(Array.from({ length: 7 }, (_, i) => `line ${i}\n`).join(''));
  });

  it('holds a line no longer than maxDelayMs', () => {
    vi.useFakeTimers();
    const s = sink();
    const batch = new LineBatch(s, 16_384, 250);
    batch.write('a\n');
    batch.write('b\n');
    vi.advanceTimersByTime(249);
    expect(s.writes).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(s.writes).toEqual(['a\nb\n']);
    batch.write('c\n');
    vi.advanceTimersByTime(250);
    expect(s.writes).toEqual(['a\nb\n', 'c\n']);
  });

  it('flushSync hands everything over and flushes the destination', () => {
    const s = sink();
    const batch = new LineBatch(s, 16_384, 250);
    batch.write('last words\n');
    batch.flushSync();
    expect(s.writes).toEqual(['last words\n']);
    expect(s.synced).toBe(1);
  });
});

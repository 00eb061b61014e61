/** The cached time field is exactly what pino's isoTime writes, and never stale by a millisecond. */
import { describe, expect, it, vi } from 'vitest';
import pino from 'pino';
import { isoTimeField } from '../../../src/observability/logger.ts';

describe('isoTimeField', () => {
  it('is pino isoTime, formatted again whenever the millisecond changes', () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      vi.setSystemTime(new Date('2026-12-01T10:00:00.001Z'));
      expect(isoTimeField()).toBe(pino.stdTimeFunctions.isoTime());
      expect(isoTimeField()).toBe(',"time":"2026-12-01T10:00:00.001Z"');
      vi.setSystemTime(new Date('2026-12-01T10:00:00.002Z'));
      expect(isoTimeField()).toBe(',"time":"2026-12-01T10:00:00.002Z"');
    } finally {
      vi.useRealTimers();
    }
  });
});

import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../../src/config/load.ts';

const problems = (raw: unknown): string[] => {
  try {
    parseConfig(raw, 'test');
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  return [];
};

const route = (limits: unknown) => ({ routes: [{ name: 'api', pathPrefix: '/api', upstream: 'http://127.0.0.1:9', limits }] });

describe('routes[].limits and limits.quotaTimeZone in the config', () => {
  it('accepts rates by key, tenant and address, a weight and a store-error policy', () => {
    expect(problems(route({ rates: [{ by: 'key', rate: '20/s' }, { by: 'tenant', rate: '50000/1d' }, { by: 'address', rate: '100/15m' }], weight: 3, onStoreError: 'closed' }))).toEqual([]);
    expect(problems({ limits: { quotaTimeZone: 'Europe/Paris' } })).toEqual([]);
  });

  it('refuses a limit that makes no sense, naming the field', () => {
    const cases: [unknown, string][] = [
      [{ rates: [{ by: 'key', rate: '0/s' }] }, 'routes[0].limits.rates[0].rate'],
      [{ rates: [{ by: 'key', rate: '10/0s' }] }, 'routes[0].limits.rates[0].rate'],
      [{ rates: [{ by: 'key', rate: '10/fortnight' }] }, 'routes[0].limits.rates[0].rate'],
      [{ rates: [{ by: 'ip', rate: '10/s' }] }, 'routes[0].limits.rates[0].by'],
      [{ rates: [], weight: 0 }, 'routes[0].limits.weight'],
      [{ onStoreError: 'maybe' }, 'routes[0].limits.onStoreError'],
      [{ rate: '10/s' }, 'routes[0].limits'],
    ];
    for (const [limits, path] of cases) {
      const found = problems(route(limits));
      expect(found.length, JSON.stringify(limits)).toBeGreaterThan(0);
      expect(found.join('\n')).toContain(path);
    }
    expect(problems({ limits: { quotaTimeZone: 'Mars/Olympus' } }).join('\n')).toContain('limits.quotaTimeZone');
  });
});

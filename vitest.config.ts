import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Integration tests start servers and redis-server processes; two cores, so keep files
    // from competing for them too hard.
    maxWorkers: 2,
    pool: 'forks',
    // Scans everything the hostile suite's keygates wrote once every file is done (test/hostile/).
    // Kills keygate children that a killed test worker left behind (test/helpers/child-reaper.ts).
    globalSetup: ['test/hostile/global-setup.ts', 'test/helpers/child-reaper.ts'],
  },
});

/**
 * Preload for allocation profiling: `node --import ./load/harness/alloc-preload.ts …` samples
 * every allocation (including objects a scavenge already freed, which `--heap-prof` leaves
 * out) and, on SIGUSR2, writes the profile to $ALLOC_PROFILE (a .heapprofile for DevTools).
 */
import { Session } from 'node:inspector/promises';
import { writeFileSync } from 'node:fs';

const session = new Session();
session.connect();
await session.post('HeapProfiler.enable');
await session.post('HeapProfiler.startSampling', {
  samplingInterval: 1024,
  includeObjectsCollectedByMajorGC: true,
  includeObjectsCollectedByMinorGC: true,
});
process.on('SIGUSR2', () => {
  void session.post('HeapProfiler.stopSampling').then(({ profile }) => {
    writeFileSync(process.env.ALLOC_PROFILE ?? 'alloc.heapprofile', JSON.stringify(profile));
    process.stderr.write('alloc profile written\n');
  });
});

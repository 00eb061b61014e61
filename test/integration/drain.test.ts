/**
 * Shutdown behind a load balancer: from the moment close() starts, /readyz answers 503, and
 * with shutdown.drainDelayMs the proxy keeps serving for that long before it stops accepting.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startTestKeygate, type TestKeygate } from '../helpers/keygate.ts';
import { startUpstream, type TestUpstream } from '../helpers/upstream.ts';

let up: TestUpstream;
let t: TestKeygate;

beforeAll(async () => {
  up = await startUpstream();
  t = await startTestKeygate({ shutdown: { drainDelayMs: 600 }, routes: [{ name: 'api', pathPrefix: '/api', upstream: up.url, auth: { required: false } }] });
});

afterAll(async () => {
  await t.stop();
  await up.close();
});

it('says 503 on /readyz while draining, serves during drainDelayMs, then stops accepting', async () => {
  const ready = await fetch(`${t.adminUrl}/readyz`);
  expect(ready.status).toBe(200);
  expect(((await ready.json()) as { checks: Record<string, string> }).checks.shutdown).toBe('ok');
  const closed = t.keygate.close(200);
  const draining = await fetch(`${t.adminUrl}/readyz`);
  expect(draining.status).toBe(503);
  expect(((await draining.json()) as { checks: Record<string, string> }).checks.shutdown).toBe('draining');
  // Still serving on a new connection during the delay.
  const during = await fetch(`${t.url}/api/x`, { headers: { connection: 'close' } });
  expect(during.status).toBe(200);
  await closed;
  await expect(fetch(`${t.url}/api/x`, { headers: { connection: 'close' } })).rejects.toThrow();
});

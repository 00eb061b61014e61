/**
 * Faults in what keygate depends on, part 3: Redis. Two instances share a real redis-server
 * (with AOF, fsync always): A connects directly and does the revoking, B — the one under
 * test — connects through a TCP relay that can stall or cut its connections. While each
 * fault happens, a probe sends B a steady stream of requests with three keys: one revoked
 * before the fault, one revoked during it (by A), and one that stays valid. Every answer is
 * recorded with the time it was sent, and the revoked-key acceptances are counted against
 * the README's rules ("Revocation and staleness"):
 *
 *  - a key revoked before the fault: never accepted, whatever happens;
 *  - revoked during the fault while B can reach Redis (pub/sub connection killed, CLIENT
 *    PAUSE WRITE or ALL, DEBUG SLEEP, a restart): never accepted once the revocation is
 *    written — B is either told, or verifies in Redis;
 *  - revoked while B cannot reach Redis (a partition, or only its subscriber stalled):
 *    accepted at most until its cached answer is cache.maxAgeMs old, then 503, never 200.
 */
import { Redis } from 'ioredis';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/http.ts';
import { startRedisServer, type RedisServer } from '../helpers/redis-server.ts';
import { startUpstream, type TestUpstream } from '../helpers/upstream.ts';
import { startHostileKeygate, type HostileKeygate } from './helpers/capture.ts';
import { RawConnection } from '../helpers/raw-socket.ts';
import { startTcpRelay, type TcpRelay } from './helpers/tcp-relay.ts';

const MAX_AGE_MS = 1500;
const COMMAND_TIMEOUT_MS = 250;
/** For a loaded 2-core machine: timers, the heartbeat and the probe's own pace. */
const SLACK_MS = 400;

let redis: RedisServer;
let relay: TcpRelay;
let raw: Redis;
let upstream: TestUpstream;
let a: HostileKeygate, b: HostileKeygate;
const report: string[] = [];
/** Key id → when B applied the pushed revocation (performance.now()). */
const pushedToB = new Map<string, number>();

beforeAll(async () => {
  redis = await startRedisServer({ persist: true, args: ['--enable-debug-command', 'yes'] });
  relay = await startTcpRelay(redis.port);
  raw = new Redis(redis.url, { maxRetriesPerRequest: null });
  raw.on('error', () => {});
  upstream = await startUpstream();
  const config = (url: string) => ({
    store: { kind: 'redis' as const, redis: { url, commandTimeoutMs: COMMAND_TIMEOUT_MS } },
    cache: { maxAgeMs: MAX_AGE_MS },
    limits: { failedAuth: { max: 0 } },
    routes: [{ name: 'api', pathPrefix: '/api', upstream: upstream.url }],
    log: { level: 'info' as const, access: false },
  });
  a = await startHostileKeygate('redis-a', config(redis.url), { notifications: true });
  b = await startHostileKeygate('redis-b', config(relay.url));
  // When B applies each pushed revocation: "never after the push arrives" is counted from then.
  const applied = b.keygate.verifier.onRevocationApplied;
  b.keygate.verifier.onRevocationApplied = (event, at) => {
    for (const id of event.ids) pushedToB.set(id, performance.now());
    applied?.(event, at);
  };
}, 30_000);

afterAll(async () => {
  await Promise.allSettled([a?.stop(), b?.stop()]);
  raw?.disconnect();
  await relay?.close();
  await upstream?.close();
  await redis?.stop();
  console.log(`[hostile redis faults] revoked-key acceptances by B:\n  ${report.join('\n  ')}\n  pushes that reached B after A's revocation returned: ${pushLags.length}, by at most ${Math.max(0, ...pushLags).toFixed(1)} ms`);
});

interface Answer {
  key: 'before' | 'during' | 'valid';
  sentAt: number;
  status: number;
}

/** Sends B the three keys in turn, one request at a time, until stopped. */
function probe(keys: Record<Answer['key'], string>): { stop(): Promise<Answer[]> } {
  const connection = new RawConnection(b.url);
  const answers: Answer[] = [];
  let running = true;
  const loop = (async () => {
    const order: Answer['key'][] = ['before', 'during', 'valid'];
    for (let i = 0; running; i++) {
      const key = order[i % 3]!;
      const sentAt = performance.now();
      const { response } = await connection.request(`GET /api/p HTTP/1.1\r\nHost: gw\r\nX-Api-Key: ${keys[key]}\r\n\r\n`, 'GET', 5000);
      answers.push({ key, sentAt, status: response?.status ?? 0 });
      await sleep(2);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      connection.close();
      return answers;
    },
  };
}

async function status(instance: HostileKeygate, key: string): Promise<number> {
  const res = await fetch(`${instance.url}/api/s`, { headers: { 'x-api-key': key } });
  await res.arrayBuffer();
  return res.status;
}

/** Three fresh keys; "before" revoked and seen revoked by B, the others cached by B. */
async function freshKeys(tag: string): Promise<{ keys: Record<Answer['key'], string>; duringId: string }> {
  await waitFor(() => a.keygate.store.feedHealthy && b.keygate.store.feedHealthy, 10_000, 20);
  // After a restart the command connections may come back later than the subscribers.
  const answers = (store: HostileKeygate) => store.keygate.store.ping().then(() => true, () => false);
  await waitFor(async () => (await answers(a)) && (await answers(b)), 10_000, 20);
  const before = await a.keys.create({ tenant: 'acme', name: `${tag} before` });
  const during = await a.keys.create({ tenant: 'acme', name: `${tag} during` });
  const valid = await a.keys.create({ tenant: 'acme', name: `${tag} valid` });
  for (const k of [before, during, valid]) expect(await status(b, k.key)).toBe(200);
  await a.keys.revoke(before.record.id);
  await waitFor(async () => (await status(b, before.key)) === 401, 2000, 5);
  return { keys: { before: before.key, during: during.key, valid: valid.key }, duringId: during.record.id };
}

/**
 * Revokes through A, retrying while Redis cannot take it. Resolves with the moment from
 * which B must refuse the key while it can reach Redis: when A's revocation was written, or
 * — if B's feed was up and the push reached B after that — when B applied the push (a push
 * is not instantaneous, and the README's rule is "never after the push arrives").
 */
async function revoke(id: string): Promise<number> {
  let written: number;
  for (;;) {
    try {
      await a.keygate.store.revoke(id, Date.now());
      written = performance.now();
      break;
    } catch {
      await sleep(20);
    }
  }
  await sleep(200);
  const pushed = pushedToB.get(id);
  if (pushed !== undefined && pushed > written) {
    pushLags.push(pushed - written);
    return pushed;
  }
  return written;
}

const pushLags: number[] = [];

interface Tally {
  requests: number;
  /** The key revoked before the fault, accepted: never allowed. */
  before: number;
  /** The key revoked during the fault, accepted after its revocation was written. */
  during: number;
  /** …of which after the latest moment the rules allow (`allowedUntil`). */
  beyond: number;
  lastDuringAcceptedMs: number | null;
}

function tally(answers: Answer[], revokedAt: number, allowedUntil: number): Tally {
  const during = answers.filter((x) => x.key === 'during' && x.status === 200 && x.sentAt > revokedAt);
  return {
    requests: answers.length,
    before: answers.filter((x) => x.key === 'before' && x.status === 200).length,
    during: during.length,
    beyond: during.filter((x) => x.sentAt > allowedUntil).length,
    lastDuringAcceptedMs: during.length ? Math.round(during.at(-1)!.sentAt - revokedAt) : null,
  };
}

function record(name: string, t: Tally, rule: string): void {
  report.push(`${name.padEnd(34)} ${String(t.requests).padStart(4)} requests; revoked before: ${t.before}; revoked during: ${t.during}${t.lastDuringAcceptedMs !== null ? ` (last ${t.lastDuringAcceptedMs} ms after the revocation)` : ''}, beyond the rules: ${t.beyond} [${rule}]`);
}

/** After a fault: B recovers by itself; the valid key works, both revoked keys are refused. */
async function recovered(keys: Record<Answer['key'], string>): Promise<void> {
  await waitFor(() => b.keygate.store.feedHealthy, 10_000, 20);
  await waitFor(async () => (await status(b, keys.valid)) === 200, 10_000, 20);
  expect(await status(b, keys.before)).toBe(401);
  expect(await status(b, keys.during)).toBe(401);
  expect(await status(a, keys.during)).toBe(401);
}

describe('Redis faults, B reachable: a revoked key is never accepted once the revocation is written', () => {
  it('the pub/sub connection is killed (CLIENT KILL TYPE pubsub), then the key is revoked', async () => {
    const { keys, duringId } = await freshKeys('pubsub');
    const p = probe(keys);
    await sleep(100);
    await raw.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
    const revokedAt = await revoke(duringId);
    await waitFor(() => b.keygate.store.feedHealthy, 10_000, 10);
    await sleep(200);
    const t = tally(await p.stop(), revokedAt, revokedAt);
    record('pub/sub connection killed', t, 'zero');
    expect(t.before).toBe(0);
    expect(t.during).toBe(0);
    await recovered(keys);
  });

  it.each([
    ['CLIENT PAUSE 1500 WRITE', () => raw.call('CLIENT', 'PAUSE', '1500', 'WRITE')],
    ['CLIENT PAUSE 1500 ALL', () => raw.call('CLIENT', 'PAUSE', '1500', 'ALL')],
    ['DEBUG SLEEP 1.5', () => void raw.call('DEBUG', 'SLEEP', '1.5').catch(() => {})],
  ])('%s, and the key is revoked meanwhile', async (name, fault) => {
    const { keys, duringId } = await freshKeys(name);
    const p = probe(keys);
    await sleep(100);
    await fault();
    await sleep(100);
    // Blocks (and retries) until Redis takes writes again.
    const revokedAt = await revoke(duringId);
    await sleep(500);
    const t = tally(await p.stop(), revokedAt, revokedAt);
    record(name, t, 'zero');
    expect(t.before).toBe(0);
    expect(t.during).toBe(0);
    await recovered(keys);
  });

  it('Redis is killed and stays down past cache.maxAgeMs: cached keys served until then, then 503, never 200; a revoked key never', async () => {
    const { keys } = await freshKeys('killed');
    const p = probe(keys);
    await sleep(100);
    const killedAt = performance.now();
    await redis.kill();
    await sleep(MAX_AGE_MS + SLACK_MS + 300);
    const restartAt = performance.now();
    await redis.restart();
    await waitFor(() => b.keygate.store.feedHealthy, 10_000, 10);
    const answers = await p.stop();
    const down = answers.filter((x) => x.sentAt > killedAt + MAX_AGE_MS + SLACK_MS && x.sentAt < killedAt + MAX_AGE_MS + SLACK_MS + 250);
    const revokedAccepted = answers.filter((x) => x.key === 'before' && x.status === 200).length;
    const served = answers.filter((x) => x.key !== 'before' && x.status === 200 && x.sentAt > killedAt && x.sentAt < restartAt);
    const lastServed = served.length ? Math.round(served.at(-1)!.sentAt - killedAt) : 0;
    report.push(`${'killed, down past maxAgeMs'.padEnd(34)} ${String(answers.length).padStart(4)} requests; revoked before: ${revokedAccepted}; cached valid keys served until ${lastServed} ms after the kill, then 503 [zero; cache ≤ maxAgeMs]`);
    expect(revokedAccepted).toBe(0);
    expect(lastServed).toBeLessThan(MAX_AGE_MS + SLACK_MS);
    expect(down.length).toBeGreaterThan(0);
    expect(down.filter((x) => x.key !== 'before').map((x) => x.status)).toEqual(down.filter((x) => x.key !== 'before').map(() => 503));
    expect(answers.filter((x) => x.key === 'valid' && x.sentAt < killedAt + MAX_AGE_MS - SLACK_MS).every((x) => x.status === 200)).toBe(true);
    await waitFor(async () => (await status(b, keys.valid)) === 200, 10_000, 20);
    expect(await status(b, keys.before)).toBe(401);
  });

  it('Redis is killed and restarted; the key is revoked as soon as it is back, and one right before the kill survives it', async () => {
    const { keys, duringId } = await freshKeys('restart');
    const last = await a.keys.create({ tenant: 'acme', name: 'revoked right before the kill' });
    expect(await status(b, last.key)).toBe(200);
    const p = probe(keys);
    await sleep(100);
    await a.keys.revoke(last.record.id);
    const killedAt = performance.now();
    await redis.kill();
    await sleep(300);
    await redis.restart();
    const revokedAt = await revoke(duringId);
    await waitFor(() => b.keygate.store.feedHealthy, 10_000, 10);
    await sleep(300);
    // B may not have reached Redis again yet when A did: then its cached answer may be used,
    // but never past maxAgeMs from the last moment Redis could have given it (the kill).
    const t = tally(await p.stop(), revokedAt, killedAt + MAX_AGE_MS + SLACK_MS);
    record('killed and restarted', t, 'zero once B reaches Redis; else ≤ maxAgeMs');
    expect(t.before).toBe(0);
    expect(t.beyond).toBe(0);
    await recovered(keys);
    // Written with fsync before the kill: still revoked after the restart.
    expect(await status(b, last.key)).toBe(401);
    expect(await status(a, last.key)).toBe(401);
  });
});

describe('Redis faults, B cut off: a revoked key is accepted at most cache.maxAgeMs, then 503, never 200', () => {
  it('B is partitioned from Redis (every connection stalled) while A revokes', async () => {
    const { keys, duringId } = await freshKeys('partition');
    const p = probe(keys);
    await sleep(100);
    const stalledAt = performance.now();
    relay.stall();
    let answers: Answer[];
    let revokedAt: number;
    try {
      revokedAt = await revoke(duringId);
      // Past maxAgeMs, long enough for a few requests (each waits the command timeout).
      await sleep(MAX_AGE_MS + SLACK_MS + 6 * COMMAND_TIMEOUT_MS);
      answers = await p.stop();
    } finally {
      relay.heal();
    }
    // The cached answers were at most maxAgeMs old when they were given.
    const t = tally(answers, revokedAt, stalledAt + MAX_AGE_MS + SLACK_MS);
    record('B partitioned', t, '≤ maxAgeMs, then 503');
    expect(t.before).toBe(0);
    expect(t.beyond).toBe(0);
    // Once the cached answers are too old, nothing passes: 503 for every key, never 200.
    const late = answers.filter((x) => x.sentAt > stalledAt + MAX_AGE_MS + SLACK_MS);
    expect(late.filter((x) => x.key !== 'before').length).toBeGreaterThan(0);
    expect(late.filter((x) => x.status === 200)).toEqual([]);
    expect(new Set(late.filter((x) => x.key !== 'before').map((x) => x.status))).toEqual(new Set([503]));
    await recovered(keys);
  });

  it('only B\'s subscriber is stalled (commands still work) while A revokes', async () => {
    const { keys, duringId } = await freshKeys('subscriber');
    const p = probe(keys);
    await sleep(100);
    const stalledAt = performance.now();
    relay.stall('keygate:revocations');
    let answers: Answer[];
    let revokedAt: number;
    let detectedAt: number;
    try {
      revokedAt = await revoke(duringId);
      // The heartbeat finds the silent subscriber; from then on B verifies in Redis.
      await waitFor(() => !b.keygate.store.feedHealthy, 10_000, 5);
      detectedAt = performance.now();
      await sleep(300);
      answers = await p.stop();
    } finally {
      relay.heal();
    }
    const t = tally(answers, revokedAt, stalledAt + MAX_AGE_MS + SLACK_MS);
    record('only B\'s subscriber stalled', t, `≤ maxAgeMs; the heartbeat noticed after ${Math.round(detectedAt - stalledAt)} ms`);
    expect(t.before).toBe(0);
    expect(t.beyond).toBe(0);
    // Once the stall is noticed, B asks Redis: no acceptance after that.
    expect(answers.filter((x) => x.key === 'during' && x.status === 200 && x.sentAt > detectedAt)).toEqual([]);
    await recovered(keys);
  });

  it('B\'s connections are reset while A revokes: while B reconnects its cache may answer, never past maxAgeMs', async () => {
    const { keys, duringId } = await freshKeys('cut');
    const p = probe(keys);
    await sleep(100);
    const cutAt = performance.now();
    relay.cut();
    const revokedAt = await revoke(duringId);
    await waitFor(() => b.keygate.store.feedHealthy, 10_000, 10);
    const backAt = performance.now();
    await sleep(300);
    const answers = await p.stop();
    const t = tally(answers, revokedAt, cutAt + MAX_AGE_MS + SLACK_MS);
    record('B\'s connections reset', t, '≤ maxAgeMs while reconnecting, zero once back');
    expect(t.before).toBe(0);
    expect(t.beyond).toBe(0);
    expect(answers.filter((x) => x.key === 'during' && x.status === 200 && x.sentAt > backAt)).toEqual([]);
    await recovered(keys);
  });
});

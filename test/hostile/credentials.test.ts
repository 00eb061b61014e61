/**
 * Attacks on the front door, part 1: 10,000 generated malformed credentials (fast-check),
 * mutated from real keys — wrong prefix, tenant, length, case, checksum; unicode, control
 * characters and whitespace inserted; headers repeated; values up to and past the header
 * size limit; plain garbage — each sent byte-exact on a keep-alive connection. Every one
 * must get 400, 401 or 431 (a handful of harmless variants — a valid key with surrounding
 * whitespace, which HTTP strips — 200), never a 5xx, never the upstream unless it is 200,
 * and never a store lookup unless the value is a well-formed key: the number of store
 * lookups is read from the verifier before and after every single request, and the total
 * from /metrics at the end.
 *
 * The oracle for "well-formed" is written here from the key format (README, Keys), not
 * taken from src/keys/format.ts.
 */
import { crc32 } from 'node:zlib';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startUpstream, type TestUpstream } from '../helpers/upstream.ts';
import { startHostileKeygate, type HostileKeygate } from './helpers/capture.ts';
import { RawConnection } from '../helpers/raw-socket.ts';

const RUNS = 10_000;
const MAX_HEADER_BYTES = 16 * 1024;

/** Independent of src/keys/format.ts: `kg_<tenant>_<56 hex><8 hex CRC32 of the rest>`. */
function wellFormed(value: string): boolean {
  const m = /^(kg)_([a-z0-9][a-z0-9-]{0,62})_([0-9a-f]{56})([0-9a-f]{8})$/.exec(value);
  return m !== null && crc32(`${m[1]}_${m[2]}_${m[3]}`).toString(16).padStart(8, '0') === m[4];
}

function withChecksum(head: string): string {
  return head + crc32(head).toString(16).padStart(8, '0');
}

interface Attempt {
  category: string;
  /** [name, value] header lines, values as JS strings (encoded as UTF-8 on the wire). */
  headers: [string, string][];
}

let upstream: TestUpstream;
let kg: HostileKeygate;
let keys: string[];
const tried = new Map<string, number>();
const statuses = new Map<string, Map<number, number>>();

beforeAll(async () => {
  upstream = await startUpstream();
  kg = await startHostileKeygate('credentials', {
    // This file is about parsing, not the limiter (brute-force.test.ts): from one address.
    limits: { failedAuth: { max: 0 } },
    routes: [{ name: 'api', pathPrefix: '/api', upstream: upstream.url }],
    log: { level: 'info', access: true },
  }, { notifications: true });
  keys = [];
  for (const tenant of ['acme', 'b', 'tenant-with-a-long-name-0123456789']) keys.push((await kg.keys.create({ tenant, name: `real ${tenant}` })).key);
});

afterAll(async () => {
  await kg?.stop();
  await upstream?.close();
  const lines = [...tried].sort().map(([category, n]) => `  ${category.padEnd(14)} ${String(n).padStart(5)}  statuses ${JSON.stringify(Object.fromEntries(statuses.get(category) ?? []))}`);
  console.log(`[hostile credentials] ${[...tried.values()].reduce((a, b) => a + b, 0)} requests:\n${lines.join('\n')}`);
});

const hex = fc.constantFrom(...'0123456789abcdef');
const hexString = (min: number, max: number) => fc.array(hex, { minLength: min, maxLength: max }).map((a) => a.join(''));
const realKey = () => fc.constantFrom(...keys);
const headerName = fc.constantFrom('X-Api-Key', 'x-api-key', 'X-API-KEY', 'x-Api-kEy');
const scheme = fc.constantFrom('Bearer', 'bearer', 'BEARER', 'BeArEr');

/** Where a credential goes: X-Api-Key (any case) or Authorization: <Bearer in any case> <value>. */
const placed = (value: fc.Arbitrary<string>): fc.Arbitrary<[string, string][]> =>
  fc.oneof(
    fc.tuple(headerName, value).map(([name, v]) => [[name, v]] as [string, string][]),
    fc.tuple(scheme, value).map(([s, v]) => [['Authorization', `${s} ${v}`]] as [string, string][]),
  );

const insertAt = (key: fc.Arbitrary<string>, piece: fc.Arbitrary<string>) =>
  fc.tuple(key, piece, fc.nat()).map(([k, p, at]) => {
    const i = at % (k.length + 1);
    return k.slice(0, i) + p + k.slice(i);
  });

function attempts(): fc.Arbitrary<Attempt> {
  const cat = (category: string, headers: fc.Arbitrary<[string, string][]>) => headers.map((h) => ({ category, headers: h }));
  const split = (k: string) => {
    const body = k.slice(-64);
    const head = k.slice(0, -65);
    const [prefix, ...tenant] = head.split('_');
    return { prefix: prefix!, tenant: tenant.join('_'), random: body.slice(0, 56), checksum: body.slice(56) };
  };
  return fc.oneof(
    // Controls: the real key as it is, and with whitespace HTTP strips around it.
    cat('valid', placed(realKey())),
    cat('prefix', placed(fc.tuple(realKey(), fc.stringMatching(/^[a-z][a-z0-9]{0,15}$/).filter((p) => p !== 'kg'), fc.boolean()).map(([k, p, recheck]) => {
      const s = split(k);
      return recheck ? withChecksum(`${p}_${s.tenant}_${s.random}`) : `${p}_${s.tenant}_${s.random}${s.checksum}`;
    }))),
    cat('tenant', placed(fc.tuple(realKey(), fc.oneof(fc.stringMatching(/^[a-z0-9][a-z0-9-]{0,62}$/), fc.string({ maxLength: 70 })), fc.boolean()).map(([k, t, recheck]) => {
      const s = split(k);
      return recheck ? withChecksum(`kg_${t}_${s.random}`) : `kg_${t}_${s.random}${s.checksum}`;
    }))),
    cat('length', placed(fc.oneof(
      fc.tuple(realKey(), fc.integer({ min: 1, max: 70 })).map(([k, n]) => k.slice(0, Math.max(0, k.length - n))),
      fc.tuple(realKey(), hexString(1, 40)).map(([k, extra]) => k + extra),
      fc.tuple(realKey(), hexString(1, 40)).map(([k, extra]) => withChecksum(k.slice(0, -8) + extra)),
    ))),
    cat('case', placed(fc.tuple(realKey(), fc.array(fc.nat(), { minLength: 1, maxLength: 20 })).map(([k, positions]) => {
      const chars = [...k];
      for (const p of positions) chars[p % chars.length] = chars[p % chars.length]!.toUpperCase();
      return chars.join('');
    }).filter((v) => !keys.includes(v)))),
    cat('checksum', placed(fc.tuple(realKey(), fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1, max: 15 })).map(([k, back, delta]) => {
      const i = k.length - back;
      const digit = ((parseInt(k[i]!, 16) + delta) % 16).toString(16);
      return k.slice(0, i) + digit + k.slice(i + 1);
    }))),
    cat('unicode', placed(insertAt(realKey(), fc.oneof(
      fc.string({ unit: 'grapheme', minLength: 1, maxLength: 4 }).filter((s) => /[^\x00-\x7f]/.test(s)),
      fc.constantFrom('\u200b', '\u202e', '\ufeff', 'ａ', '０', 'е', '\u00e9', '\u0301', '𝟘'),
    )))),
    cat('control', placed(insertAt(realKey(), fc.integer({ min: 0, max: 0x7f }).filter((c) => c < 0x20 || c === 0x7f).map((c) => String.fromCharCode(c))))),
    cat('whitespace', fc.oneof(
      placed(fc.tuple(realKey(), fc.constantFrom(' ', '\t', '  ', ' \t '), fc.constantFrom('', ' ', '\t')).map(([k, before, after]) => before + k + after)),
      placed(insertAt(realKey().map((k) => k.slice(0, -1)), fc.constantFrom(' ', '\t', '\u00a0')).map((v) => v + 'x')),
    )),
    cat('repeated', fc.array(fc.oneof(
      fc.tuple(headerName, realKey()).map(([n, k]) => [n, k] as [string, string]),
      fc.tuple(headerName, hexString(1, 70)).map(([n, v]) => [n, `kg_acme_${v}`] as [string, string]),
      fc.tuple(scheme, realKey()).map(([s, k]) => ['Authorization', `${s} ${k}`] as [string, string]),
      fc.constant(['Authorization', 'Basic dXNlcjpwYXNz'] as [string, string]),
    ), { minLength: 2, maxLength: 4 }).filter((h) => !(h.length === 2 && h[0]![1] === h[1]![1] && /^authorization$/i.test(h[0]![0]) === /^authorization$/i.test(h[1]![0])))),
    cat('long', placed(fc.oneof(
      fc.integer({ min: 100, max: 15_000 }).map((n) => `kg_acme_${'a'.repeat(n)}`),
      fc.tuple(realKey(), fc.integer({ min: 1000, max: 15_000 })).map(([k, n]) => k + '0'.repeat(n)),
      fc.integer({ min: MAX_HEADER_BYTES + 1, max: 64 * 1024 }).map((n) => 'x'.repeat(n)),
    ))),
    cat('garbage', placed(fc.oneof(fc.string({ maxLength: 200 }), fc.string({ unit: 'binary', maxLength: 100 }), hexString(0, 100)))),
  );
}

function request(attempt: Attempt): Buffer {
  const lines = attempt.headers.map(([name, value]) => `${name}: ${Buffer.from(value, 'utf8').toString('latin1')}`);
  return Buffer.from(`GET /api/hostile HTTP/1.1\r\nHost: gw.example\r\n${lines.join('\r\n')}\r\n\r\n`, 'latin1');
}

/** What HTTP makes of a field value: optional whitespace (SP, HTAB) around it is not part of it. */
const ows = (v: string) => v.replace(/^[ \t]+|[ \t]+$/g, '');

/** The status the request may get. */
function allowed(attempt: Attempt, bytes: number): number[] {
  if (bytes > MAX_HEADER_BYTES) return [431];
  const values = attempt.headers.map(([, v]) => v);
  // Control characters other than HTAB (and any CR/LF) are not allowed in a field value.
  if (values.some((v) => /[\x00-\x08\x0a-\x1f\x7f]/.test(v))) return [400];
  if (attempt.headers.length === 1) {
    const [name, value] = attempt.headers[0]!;
    const credential = /^authorization$/i.test(name) ? ows(value).replace(/^bearer +/i, '') : ows(value);
    if (keys.includes(ows(credential))) return [200];
    return [401];
  }
  // Repeated headers: refused (400 when the two carry different keys), or accepted when every
  // copy that carries a key is the same real key.
  return [200, 400, 401];
}

describe('10,000 malformed credentials', () => {
  it('each gets 400/401/431 (never 5xx), reaches the upstream only when accepted, and costs a store lookup only when it is a well-formed key', async () => {
    const connection = new RawConnection(kg.url);
    const verifier = kg.keygate.verifier;
    const lookupsBefore = verifier.stats.storeCalls;
    let lookups = 0;
    let wellFormedSent = 0;
    await fc.assert(
      fc.asyncProperty(attempts(), async (attempt) => {
        const payload = request(attempt);
        const headBytes = payload.length;
        const calls = verifier.stats.storeCalls;
        const received = upstream.received.length;
        const { response } = await connection.request(payload);
        const status = response?.status ?? 0;
        tried.set(attempt.category, (tried.get(attempt.category) ?? 0) + 1);
        const seen = statuses.get(attempt.category) ?? new Map<number, number>();
        seen.set(status, (seen.get(status) ?? 0) + 1);
        statuses.set(attempt.category, seen);
        const delta = verifier.stats.storeCalls - calls;
        lookups += delta;
        const candidates = attempt.headers.map(([name, v]) => (/^authorization$/i.test(name) ? ows(ows(v).replace(/^bearer +/i, '')) : ows(v)));
        if (candidates.some(wellFormed)) wellFormedSent++;
        expect(allowed(attempt, headBytes), `status ${status} for ${JSON.stringify(attempt).slice(0, 300)}`).toContain(status);
        // The store is asked only about well-formed keys, at most once per request.
        if (!candidates.some(wellFormed)) expect(delta, JSON.stringify(attempt).slice(0, 300)).toBe(0);
        expect(delta).toBeLessThanOrEqual(1);
        expect(upstream.received.length - received).toBe(status === 200 ? 1 : 0);
        if (status !== 200 && status !== 0) expect(response!.headers['content-type']).toBe('application/problem+json');
      }),
      { numRuns: RUNS },
    );
    connection.close();
    expect(verifier.stats.storeCalls - lookupsBefore).toBe(lookups);
    // The metric agrees, and no request ended in a 5xx.
    const metrics = await (await fetch(`${kg.adminUrl}/metrics`)).text();
    expect(Number(/^keygate_store_lookups_total (\d+)/m.exec(metrics)?.[1])).toBe(verifier.stats.storeCalls);
    expect(metrics).not.toMatch(/keygate_requests_total\{[^}]*status_class="5xx"[^}]*\} [1-9]/);
    console.log(`[hostile credentials] store lookups: ${lookups} for ${wellFormedSent} requests carrying a well-formed key (the rest: 0)`);
    // Nothing keygate sent upstream carried a key.
    for (const r of upstream.received) for (const key of keys) expect(JSON.stringify(r.rawHeaders)).not.toContain(key.slice(-64, -8));
  }, 240_000);
});

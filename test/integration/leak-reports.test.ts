/**
 * Leaked-key reports (GitHub's secret scanning partner protocol) end to end: real keygate
 * instances on the embedded store (and once on Redis), a real upstream, and a local
 * public-keys endpoint holding a P-256 key pair made here. Reports are signed exactly as
 * GitHub signs them: ECDSA P-256 over the raw body with SHA-256, DER, base64.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import type { RawConfig } from '../../src/config/schema.ts';
import { webhookBody } from '../../src/events/notifications/format.ts';
import { generateKey } from '../../src/keys/format.ts';
import { CLI_CALLER } from '../../src/keys/service.ts';
import { type AdminTestKeygate, proxyGet, startAdminKeygate } from '../helpers/admin.ts';
import { rawRequest, type RawResponse } from '../helpers/http.ts';
import { redisServerAvailable, startRedisServer, type RedisServer } from '../helpers/redis-server.ts';
import { startUpstream, type TestUpstream } from '../helpers/upstream.ts';
import { testHasher } from '../helpers/pepper.ts';

const LEAK_PATH = '/.well-known/keygate/github-secret-scanning';
const TYPE = 'keygate_api_key';
const FOUND_URL = 'https://github.com/octo-org/octo-repo/blob/2f3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c/config/dev.env#L3';

// ---------------------------------------------------------------------------------------------
// GitHub's side: its signing keys, its public-keys endpoint, and how it signs a report.

interface SigningKey {
  id: string;
  privateKey: KeyObject;
  pem: string;
}

function signingKey(): SigningKey {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { id: randomBytes(32).toString('hex'), privateKey, pem: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
}

const GITHUB = signingKey();
/** Someone else's key pair, claiming GitHub's identifier. */
const FORGER = signingKey();

/** The keys the endpoint lists, and how often it was asked. */
const published: SigningKey[] = [GITHUB];
let keyFetches = 0;
let keysServer: Server;
let keysUrl: string;

function signature(body: string | Buffer, key: KeyObject = GITHUB.privateKey): string {
  return sign('sha256', Buffer.from(body), { key, dsaEncoding: 'der' }).toString('base64');
}

interface Report {
  token: string;
  type?: string;
  url?: string;
  source?: string;
}

function reportBody(reports: Report[]): string {
  return JSON.stringify(reports.map((r) => ({ token: r.token, type: r.type ?? TYPE, url: r.url ?? FOUND_URL, source: r.source ?? 'content' })));
}

/** POSTs a report as GitHub does; `as` overrides the signing key, identifier or signature. */
async function report(instance: AdminTestKeygate, body: string | Report[], as: { key?: SigningKey; id?: string; signature?: string; headers?: Record<string, string> } = {}): Promise<RawResponse> {
  const text = typeof body === 'string' ? body : reportBody(body);
  const key = as.key ?? GITHUB;
  return rawRequest(instance.url, {
    method: 'POST',
    path: LEAK_PATH,
    headers: as.headers ?? {
      'content-type': 'application/json',
      'github-public-key-identifier': as.id ?? key.id,
      'github-public-key-signature': as.signature ?? signature(text, key.privateKey),
    },
    body: text,
  });
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

// ---------------------------------------------------------------------------------------------

let upstream: TestUpstream;
/** Every token sent in this file: none may appear in a log, an audit entry, an event or a response. */
const tokens: string[] = [];
const responses: string[] = [];

function config(action: 'revoke' | 'notify', extra: Partial<RawConfig> = {}): RawConfig {
  return {
    routes: [{ name: 'api', pathPrefix: '/api', upstream: upstream.url }],
    lifecycle: { sweepMs: 3_600_000, lastUsedFlushMs: 3_600_000 },
    leakReports: { github: { path: LEAK_PATH, keysUrl, action, maxBodyBytes: 65_536, refetchCooldownMs: 2000 } },
    ...extra,
  };
}

async function createKey(instance: AdminTestKeygate, tenant = 'acme', name = 'ci-bot'): Promise<{ key: string; id: string }> {
  const created = await instance.keygate.service.create(CLI_CALLER, { tenant, name });
  tokens.push(created.key);
  return { key: created.key, id: created.record.id };
}

async function auditOf(instance: AdminTestKeygate, keyId: string) {
  const page = await instance.keygate.service.audit(CLI_CALLER, { limit: 500 });
  return page.entries.filter((e) => e.target === keyId);
}

function leakedEvents(instance: AdminTestKeygate, keyId: string) {
  return instance.events.filter((e) => e.type === 'key.leaked' && e.target.keyId === keyId);
}

async function works(instance: AdminTestKeygate, key: string): Promise<number> {
  return (await proxyGet(instance.url, '/api/ping', key)).status;
}

/** Everything keygate wrote or answered: logs, audit, events, responses. */
async function everythingSaid(instance: AdminTestKeygate): Promise<string> {
  const audit = await instance.keygate.service.audit(CLI_CALLER, { limit: 1000 });
  return [instance.logs(), JSON.stringify(audit), JSON.stringify(instance.events), ...responses].join('\n');
}

function expectNoTokens(text: string): void {
  const hasher = testHasher;
  for (const token of tokens) {
    expect(text.includes(token), 'a token was written or answered').toBe(false);
    if (token.length > 64) expect(text.includes(token.slice(-64))).toBe(false);
    expect(text.includes(hasher(token))).toBe(false);
  }
}

function track(res: RawResponse): RawResponse {
  responses.push(res.body);
  return res;
}

beforeAll(async () => {
  keysServer = createServer((req, res) => {
    keyFetches++;
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ public_keys: published.map((k, i) => ({ key_identifier: k.id, key: k.pem, is_current: i === published.length - 1 })) }));
  });
  keysServer.listen(0, '127.0.0.1');
  await once(keysServer, 'listening');
  keysUrl = `http://127.0.0.1:${(keysServer.address() as AddressInfo).port}/meta/public_keys/secret_scanning`;
  upstream = await startUpstream();
});

afterAll(async () => {
  await upstream?.close();
  keysServer?.closeAllConnections();
  await new Promise<void>((resolve) => (keysServer ? keysServer.close(() => resolve()) : resolve()));
});

// ---------------------------------------------------------------------------------------------

describe('action: revoke (embedded store)', () => {
  let kg: AdminTestKeygate;

  beforeAll(async () => {
    kg = await startAdminKeygate(config('revoke'));
  });

  afterAll(async () => {
    await kg?.stop();
  });

  it('revokes a reported live key, audits where it was found, notifies admins, answers true_positive by hash', async () => {
    const { key, id } = await createKey(kg);
    expect(await works(kg, key)).toBe(200);

    const res = track(await report(kg, [{ token: key, source: 'commit' }]));
    expect(res.status, res.body).toBe(200);
    expect(res.headers['content-type']).toBe('application/json');
    expect(res.json).toEqual([{ token_hash: sha256(key), token_type: TYPE, label: 'true_positive' }]);
    expect(res.json[0].token_hash).toMatch(/^[0-9a-f]{64}$/);

    // Refused at once (revocations made by the server itself reach its cache immediately).
    const after = await proxyGet(kg.url, '/api/ping', key);
    expect([after.status, after.code]).toEqual([401, 'key_revoked']);
    expect((await kg.keygate.service.get(CLI_CALLER, id)).status).toBe('revoked');

    const audit = await auditOf(kg, id);
    const leak = audit.filter((e) => e.action === 'key.leak');
    expect(leak).toHaveLength(1);
    expect(leak[0]).toMatchObject({ actor: 'github-secret-scanning', tenant: 'acme', detail: { url: FOUND_URL, source: 'commit', revoked: true, name: 'ci-bot' } });
    const revoke = audit.filter((e) => e.action === 'key.revoke');
    expect(revoke).toHaveLength(1);
    expect(revoke[0]).toMatchObject({ actor: 'github-secret-scanning', tenant: 'acme', detail: { reason: 'leaked' } });

    const events = leakedEvents(kg, id);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ actor: 'github-secret-scanning', tenant: 'acme', target: { keyId: id, name: 'ci-bot', foundAt: FOUND_URL, foundIn: 'commit', revoked: true } });
    // What a webhook receiver gets says where, and never the key.
    const hook = JSON.parse(webhookBody(events[0]!));
    expect(hook.type).toBe('key.leaked');
    expect(hook.data.target).toMatchObject({ foundAt: FOUND_URL, foundIn: 'commit', revoked: true });
    // One notification for the leak, not a second one for the revocation.
    expect(kg.events.filter((e) => e.target.keyId === id && e.type === 'key.revoked')).toEqual([]);
    expectNoTokens(await everythingSaid(kg));
  });

  it('a repeat of the same report is still true_positive and changes nothing, notifies nobody', async () => {
    const { key, id } = await createKey(kg, 'acme', 'repeat');
    const body = reportBody([{ token: key }]);
    const first = track(await report(kg, body));
    const second = track(await report(kg, body));
    const both = await Promise.all([report(kg, body), report(kg, body)]).then((r) => r.map(track));
    for (const res of [first, second, ...both]) expect(res.json).toEqual([{ token_hash: sha256(key), token_type: TYPE, label: 'true_positive' }]);
    expect(leakedEvents(kg, id)).toHaveLength(1);
    const audit = await auditOf(kg, id);
    expect(audit.filter((e) => e.action === 'key.leak')).toHaveLength(1);
    expect(audit.filter((e) => e.action === 'key.revoke')).toHaveLength(1);
    // A key an admin revoked before the report: true_positive, and nothing more.
    const other = await createKey(kg, 'acme', 'revoked-first');
    await kg.keygate.service.revoke(CLI_CALLER, other.id);
    const late = track(await report(kg, [{ token: other.key }]));
    expect(late.json).toEqual([{ token_hash: sha256(other.key), token_type: TYPE, label: 'true_positive' }]);
    expect(leakedEvents(kg, other.id)).toEqual([]);
    expect((await auditOf(kg, other.id)).filter((e) => e.action === 'key.leak')).toEqual([]);
  });

  it('an unknown well-formed key and a string that is no keygate key are false positives; nothing is revoked', async () => {
    const { key, id } = await createKey(kg, 'acme', 'bystander');
    const unknown = generateKey('kg', 'acme');
    const otherPrefix = generateKey('zz', 'acme');
    const badChecksum = `${key.slice(0, -1)}${key.endsWith('0') ? '1' : '0'}`;
    const junk = `ghp_${randomBytes(18).toString('hex')}`;
    tokens.push(unknown, otherPrefix, badChecksum, junk);
    const before = kg.events.length;
    const res = track(await report(kg, [{ token: unknown }, { token: junk, type: 'other_type' }, { token: otherPrefix }, { token: badChecksum }, { token: key }]));
    expect(res.status, res.body).toBe(200);
    expect(res.json).toEqual([
      { token_hash: sha256(unknown), token_type: TYPE, label: 'false_positive' },
      { token_hash: sha256(junk), token_type: 'other_type', label: 'false_positive' },
      { token_hash: sha256(otherPrefix), token_type: TYPE, label: 'false_positive' },
      { token_hash: sha256(badChecksum), token_type: TYPE, label: 'false_positive' },
      { token_hash: sha256(key), token_type: TYPE, label: 'true_positive' },
    ]);
    // Only the real key was acted on.
    expect(kg.events.slice(before).map((e) => [e.type, e.target.keyId])).toEqual([['key.leaked', id]]);
    expectNoTokens(await everythingSaid(kg));
  });

  it('refuses a forged signature, a tampered body and missing headers with 401, and revokes nothing', async () => {
    const { key, id } = await createKey(kg, 'acme', 'target');
    const body = reportBody([{ token: key }]);
    const forged = track(await report(kg, body, { key: FORGER, id: GITHUB.id }));
    const tampered = track(await report(kg, reportBody([{ token: key, url: 'https://example.com/elsewhere' }]), { signature: signature(body) }));
    const garbage = track(await report(kg, body, { signature: 'not base64 at all!' }));
    const noHeaders = track(await report(kg, body, { headers: { 'content-type': 'application/json' } }));
    const noSignature = track(await report(kg, body, { headers: { 'github-public-key-identifier': GITHUB.id } }));
    for (const res of [forged, tampered, garbage]) {
      expect(res.status, res.body).toBe(401);
      expect(res.headers['content-type']).toBe('application/problem+json');
      expect(res.json.code).toBe('invalid_signature');
    }
    for (const res of [noHeaders, noSignature]) {
      expect(res.status, res.body).toBe(401);
      expect(res.headers['content-type']).toBe('application/problem+json');
      expect(res.json.code).toBe('missing_signature');
    }
    expect(await works(kg, key)).toBe(200);
    expect(leakedEvents(kg, id)).toEqual([]);
    expect(await auditOf(kg, id)).toHaveLength(1); // key.create only
  });

  it('a signature by an unknown key id fetches the keys once more, then 401; within the cooldown, no fetch at all', async () => {
    const { key, id } = await createKey(kg, 'acme', 'unknown-id');
    const stranger = signingKey();
    await sleep(2100); // past the cooldown since any earlier fetch
    const fetchesBefore = keyFetches;
    const body = reportBody([{ token: key }]);
    const answers = await Promise.all(Array.from({ length: 5 }, () => report(kg, body, { key: stranger })));
    for (const res of answers.map(track)) {
      expect(res.status, res.body).toBe(401);
      expect(res.json.code).toBe('invalid_signature');
    }
    expect(keyFetches - fetchesBefore).toBe(1);
    // A flood of made-up identifiers within the cooldown fetches nothing.
    for (let i = 0; i < 5; i++) expect((await report(kg, body, { key: signingKey() })).status).toBe(401);
    expect(keyFetches - fetchesBefore).toBe(1);
    expect(await works(kg, key)).toBe(200);
    expect(leakedEvents(kg, id)).toEqual([]);
  });

  it('accepts a key GitHub started signing with since the last fetch (one refetch)', async () => {
    const rotated = signingKey();
    published.push(rotated);
    try {
      const { key, id } = await createKey(kg, 'acme', 'rotated-signer');
      await sleep(2100);
      const fetchesBefore = keyFetches;
      const res = track(await report(kg, [{ token: key }], { key: rotated }));
      expect(res.status, res.body).toBe(200);
      expect(res.json[0].label).toBe('true_positive');
      expect(keyFetches - fetchesBefore).toBe(1);
      expect(leakedEvents(kg, id)).toHaveLength(1);
      // The previous key still verifies, from the cache.
      const other = await createKey(kg, 'acme', 'old-signer');
      expect((await report(kg, [{ token: other.key }])).json[0].label).toBe('true_positive');
      expect(keyFetches - fetchesBefore).toBe(1);
    } finally {
      published.pop();
    }
  });

  it('answers 413 to an oversized report (declared or chunked), 400 to a signed body that is not a report, 405 to GET', async () => {
    const { key, id } = await createKey(kg, 'acme', 'big');
    const big = reportBody([{ token: key, url: `https://github.com/o/r/blob/main/${'x'.repeat(70_000)}` }]);
    const declared = track(await report(kg, big));
    expect(declared.status, declared.body).toBe(413);
    expect(declared.json.code).toBe('payload_too_large');
    const chunked = track(
      await rawRequest(kg.url, {
        method: 'POST',
        path: LEAK_PATH,
        headers: { 'transfer-encoding': 'chunked', 'github-public-key-identifier': GITHUB.id, 'github-public-key-signature': signature(big) },
        body: big,
      }),
    );
    expect(chunked.status, chunked.body).toBe(413);
    expect(chunked.json.code).toBe('payload_too_large');
    expect(await works(kg, key)).toBe(200);
    expect(leakedEvents(kg, id)).toEqual([]);

    for (const body of ['{"token": "x"}', 'not json', '[{"type": "x"}]', '[1]']) {
      const res = track(await report(kg, body));
      expect(res.status, `${body}: ${res.body}`).toBe(400);
      expect(res.headers['content-type']).toBe('application/problem+json');
      expect(res.json.code).toBe('bad_request');
    }
    const get = await rawRequest(kg.url, { method: 'GET', path: LEAK_PATH });
    expect(get.status).toBe(405);
    expect(get.headers.allow).toBe('POST');
  });

  it('honours Expect: 100-continue', async () => {
    const { key } = await createKey(kg, 'acme', 'continue');
    const body = reportBody([{ token: key }]);
    const res = track(
      await rawRequest(kg.url, {
        method: 'POST',
        path: LEAK_PATH,
        headers: { 'github-public-key-identifier': GITHUB.id, 'github-public-key-signature': signature(body) },
        body,
        expectContinue: true,
      }),
    );
    expect(res.status, res.body).toBe(200);
    expect(res.continued).toBe(true);
    expect(res.json[0].label).toBe('true_positive');
  });

  it('only the exact path is the endpoint: anything else is the gateway as before', async () => {
    const res = await rawRequest(kg.url, { method: 'POST', path: `${LEAK_PATH}/x`, body: '[]' });
    expect(res.status).toBe(404);
    expect(res.json.code).toBe('no_route');
  });

  it('never writes a token to the logs, while saying what it did', async () => {
    const text = kg.logs();
    expect(text).toContain('secret scanning report');
    expect(text).toContain('secret scanning report refused');
    expectNoTokens(await everythingSaid(kg));
  });
});

describe('action: notify (embedded store)', () => {
  let kg: AdminTestKeygate;

  beforeAll(async () => {
    kg = await startAdminKeygate(config('notify'));
  });

  afterAll(async () => {
    await kg?.stop();
  });

  it('keeps the key working, audits and notifies once per place it was found', async () => {
    const { key, id } = await createKey(kg, 'globex', 'deploy');
    const res = track(await report(kg, [{ token: key }]));
    expect(res.status, res.body).toBe(200);
    expect(res.json).toEqual([{ token_hash: sha256(key), token_type: TYPE, label: 'true_positive' }]);
    expect(await works(kg, key)).toBe(200);
    expect((await kg.keygate.service.get(CLI_CALLER, id)).status).toBe('active');

    const audit = await auditOf(kg, id);
    expect(audit.filter((e) => e.action === 'key.revoke')).toEqual([]);
    const leak = audit.filter((e) => e.action === 'key.leak');
    expect(leak).toHaveLength(1);
    expect(leak[0]).toMatchObject({ tenant: 'globex', detail: { url: FOUND_URL, source: 'content', revoked: false } });
    const events = leakedEvents(kg, id);
    expect(events).toHaveLength(1);
    expect(events[0]!.target).toMatchObject({ foundAt: FOUND_URL, revoked: false });

    // The same report again: nothing new.
    expect(track(await report(kg, [{ token: key }])).json[0].label).toBe('true_positive');
    expect(leakedEvents(kg, id)).toHaveLength(1);
    // Found somewhere else: admins hear about that too.
    const elsewhere = 'https://gist.github.com/someone/0123abcd';
    expect(track(await report(kg, [{ token: key, url: elsewhere, source: 'gist' }])).json[0].label).toBe('true_positive');
    expect(leakedEvents(kg, id).map((e) => e.target.foundAt)).toEqual([FOUND_URL, elsewhere]);
    expect(await works(kg, key)).toBe(200);
    expectNoTokens(await everythingSaid(kg));
  });
});

describe.skipIf(!redisServerAvailable())('on the Redis store', () => {
  let redis: RedisServer;
  let kg: AdminTestKeygate;
  let other: AdminTestKeygate;

  beforeAll(async () => {
    redis = await startRedisServer();
    const raw = config('revoke', { store: { kind: 'redis', redis: { url: redis.url, commandTimeoutMs: 500 } }, cache: { maxAgeMs: 60_000 } });
    kg = await startAdminKeygate(raw);
    other = await startAdminKeygate(raw);
  });

  afterAll(async () => {
    await Promise.allSettled([kg?.stop(), other?.stop()]);
    await redis?.stop();
  });

  beforeEach(() => {
    responses.length = 0;
  });

  it('revokes on every instance, once, however many instances get the report', async () => {
    const { key, id } = await createKey(kg, 'initech', 'shared');
    expect(await works(other, key)).toBe(200); // cached there now
    const body = reportBody([{ token: key }]);
    const answers = (await Promise.all([report(kg, body), report(other, body)])).map(track);
    for (const res of answers) expect(res.json).toEqual([{ token_hash: sha256(key), token_type: TYPE, label: 'true_positive' }]);
    const refused = await proxyGet(other.url, '/api/ping', key);
    expect([refused.status, refused.code]).toEqual([401, 'key_revoked']);
    expect((await auditOf(kg, id)).filter((e) => e.action === 'key.leak')).toHaveLength(1);
    expect([...leakedEvents(kg, id), ...leakedEvents(other, id)]).toHaveLength(1);
    expectNoTokens(await everythingSaid(kg));
  });
});

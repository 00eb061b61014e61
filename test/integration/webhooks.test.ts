/**
 * Webhook routes end to end (issue 7): real deliveries signed by each provider's own code
 * (standardwebhooks, the Stripe SDK, @octokit/webhooks-methods) through keygate to a real
 * upstream that hashes the body it receives. A verified delivery arrives byte-identical
 * (text, binary, large, chunked); every refusal has its own code and the upstream sees
 * nothing; a replay is refused by the same instance, by a second instance on the same
 * SQLite file and by a second instance on the same redis-server; signing secrets come from
 * the vault (added through the SecretService under a test master key) and never appear in
 * a response or a log line. Also the body limit itself: 20 MB with a Content-Length is
 * refused at once, unread; 20 MB chunked is cut off at the limit, and the upstream never
 * takes a cut-off body for a whole one.
 */
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { sign as githubSign } from '@octokit/webhooks-methods';
import { Webhook } from 'standardwebhooks';
import Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RawConfig } from '../../src/config/schema.ts';
import { CLI_CALLER } from '../../src/keys/service.ts';
import { accessLines, expectProblem, rawRequest, type RawResponse, waitFor } from '../helpers/http.ts';
import { startTestKeygate, type TestKeygate } from '../helpers/keygate.ts';
import { startRedisPair, type RedisPair } from '../helpers/redis-fixture.ts';
import { startUpstream, type TestUpstream } from '../helpers/upstream.ts';

const MB = 1024 * 1024;
const MASTER_KEY = randomBytes(32).toString('base64');
const SECRETS = {
  'std-a': `whsec_${randomBytes(24).toString('base64')}`,
  'std-b': `whsec_${randomBytes(32).toString('base64')}`,
  'stripe-1': `whsec_${randomBytes(24).toString('hex')}`,
  'gh-1': `gh-${randomBytes(20).toString('hex')}`,
  'bad-std': 'not-base64!!',
};
type SecretId = keyof typeof SECRETS;

/** What the upstream got, per request, in arrival order. */
interface Got {
  url: string;
  headers: IncomingMessage['headers'];
  sha256: string;
  bytes: number;
  /** The request body arrived complete. */
  ended: boolean;
}
const got: Got[] = [];

function hashingUpstream(req: IncomingMessage, res: ServerResponse): void {
  const hash = createHash('sha256');
  const entry: Got = { url: req.url ?? '', headers: req.headers, sha256: '', bytes: 0, ended: false };
  got.push(entry);
  req.on('data', (chunk: Buffer) => {
    hash.update(chunk);
    entry.bytes += chunk.length;
  });
  req.on('end', () => {
    entry.ended = true;
    entry.sha256 = hash.digest('hex');
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ sha256: entry.sha256, bytes: entry.bytes }));
  });
}

const sha = (body: string | Buffer) => createHash('sha256').update(body).digest('hex');
const now = () => Math.floor(Date.now() / 1000);

function standardHeaders(body: string, secret: SecretId = 'std-a', options: { id?: string; at?: number } = {}): Record<string, string> {
  const id = options.id ?? `msg_${randomBytes(10).toString('hex')}`;
  const at = options.at ?? now();
  return { 'webhook-id': id, 'webhook-timestamp': String(at), 'webhook-signature': new Webhook(SECRETS[secret]).sign(id, new Date(at * 1000), body), 'content-type': 'application/json' };
}

function stripeHeaders(body: string, at = now()): Record<string, string> {
  return { 'stripe-signature': Stripe.webhooks.generateTestHeaderString({ payload: body, secret: SECRETS['stripe-1'], timestamp: at }), 'content-type': 'application/json' };
}

async function githubHeaders(body: string): Promise<Record<string, string>> {
  return { 'x-hub-signature-256': await githubSign(SECRETS['gh-1'], body), 'x-github-delivery': crypto.randomUUID(), 'x-github-event': 'push', 'content-type': 'application/json' };
}

const event = (extra: Record<string, unknown> = {}) => JSON.stringify({ id: `evt_${randomBytes(6).toString('hex')}`, type: 'invoice.paid', data: { amount: 4200, note: 'ü ✓ "q"\r\n' }, ...extra });

const routes = (upstream: string, extra: RawConfig['routes'] = []): RawConfig['routes'] => [
  { name: 'standard', pathPrefix: '/hooks/standard', upstream, auth: { required: false }, webhook: { scheme: 'standard', secrets: ['std-a', 'std-b'], tenant: 'acme' } },
  { name: 'stripe', pathPrefix: '/hooks/stripe', upstream, auth: { required: false }, webhook: { scheme: 'stripe', secrets: ['stripe-1'] } },
  { name: 'github', pathPrefix: '/hooks/github', upstream, auth: { required: false }, webhook: { scheme: 'github', secrets: ['gh-1'], toleranceSeconds: 3600 } },
  { name: 'keyed', pathPrefix: '/hooks/keyed', upstream, auth: { permissions: ['hooks:deliver'] }, webhook: { scheme: 'github', secrets: ['gh-1'], replay: false } },
  { name: 'again', pathPrefix: '/hooks/again', upstream, auth: { required: false }, webhook: { scheme: 'standard', secrets: ['std-a'], replay: false } },
  { name: 'absent', pathPrefix: '/hooks/absent', upstream, auth: { required: false }, webhook: { scheme: 'stripe', secrets: ['not-stored'] } },
  { name: 'unusable', pathPrefix: '/hooks/unusable', upstream, auth: { required: false }, webhook: { scheme: 'standard', secrets: ['bad-std'] } },
  { name: 'trickle', pathPrefix: '/hooks/trickle', upstream, auth: { required: false }, webhook: { scheme: 'stripe', secrets: ['stripe-1'] }, timeouts: { idleMs: 1000 } },
  { name: 'plain', pathPrefix: '/plain', upstream },
  ...extra,
];

let up: TestUpstream;
let t: TestKeygate;
/** A second instance on t's SQLite file. */
let twin: TestKeygate;
/** No KEYGATE_MASTER_KEY. */
let bare: TestKeygate;
let key: string;
let weakKey: string;
/** Every response to a webhook request in this file: none may carry a secret. */
const responses: RawResponse[] = [];

async function deliver(base: string, path: string, body: string | Buffer, headers: Record<string, string> | string[], expectContinue = false): Promise<{ res: RawResponse; upstream: Got | undefined }> {
  const before = got.length;
  const res = await rawRequest(base, { method: 'POST', path, headers, body, expectContinue });
  responses.push(res);
  return { res, upstream: got.length > before ? got[got.length - 1] : undefined };
}


async function addSecrets(instance: TestKeygate): Promise<void> {
  for (const [id, value] of Object.entries(SECRETS)) await instance.keygate.secrets.add(CLI_CALLER, { id, name: `${id} signing secret`, value });
}

beforeAll(async () => {
  up = await startUpstream(hashingUpstream);
  t = await startTestKeygate({ routes: routes(up.url) }, { KEYGATE_MASTER_KEY: MASTER_KEY });
  await addSecrets(t);
  [twin, bare] = await Promise.all([
    startTestKeygate({ routes: routes(up.url), store: { path: t.config.store.path } }, { KEYGATE_MASTER_KEY: MASTER_KEY }),
    startTestKeygate({ routes: routes(up.url) }),
  ]);
  key = (await t.keys.create({ tenant: 'hooks', name: 'sender', permissions: ['hooks:deliver'] })).key;
  weakKey = (await t.keys.create({ tenant: 'hooks', name: 'reader', permissions: ['read'] })).key;
});

afterAll(async () => {
  await Promise.all([t?.stop(), twin?.stop(), bare?.stop()]);
  await up?.close();
});

describe('a verified delivery reaches the upstream byte-identical', () => {
  it('Standard Webhooks: same bytes and Content-Length, signature headers passed on, verified-by and tenant set, client copies dropped', async () => {
    const body = event();
    const headers = { ...standardHeaders(body), 'x-webhook-verified': 'forged', 'x-tenant-id': 'evil', 'x-api-key-id': 'key_evil' };
    const { res, upstream } = await deliver(t.url, '/hooks/standard/in?x=1', body, headers);
    expect(res.status, res.body).toBe(200);
    expect(res.json).toEqual({ sha256: sha(body), bytes: Buffer.byteLength(body) });
    expect(upstream!.url).toBe('/hooks/standard/in?x=1');
    expect(upstream!.headers['content-length']).toBe(String(Buffer.byteLength(body)));
    for (const name of ['webhook-id', 'webhook-timestamp', 'webhook-signature']) expect(upstream!.headers[name]).toBe(headers[name as keyof typeof headers]);
    expect(upstream!.headers['x-webhook-verified']).toBe('standard;secret="std-a"');
    expect(upstream!.headers['x-tenant-id']).toBe('acme');
    expect(upstream!.headers['x-api-key-id']).toBeUndefined();
  });

  it('Stripe and GitHub deliveries, each signed by its own SDK', async () => {
    const body = event();
    const a = await deliver(t.url, '/hooks/stripe', body, stripeHeaders(body));
    expect(a.res.status, a.res.body).toBe(200);
    expect(a.upstream).toMatchObject({ sha256: sha(body), ended: true });
    expect(a.upstream!.headers['x-webhook-verified']).toBe('stripe;secret="stripe-1"');
    expect(a.upstream!.headers['x-tenant-id']).toBeUndefined();
    const b = await deliver(t.url, '/hooks/github', body, await githubHeaders(body));
    expect(b.res.status, b.res.body).toBe(200);
    expect(b.upstream).toMatchObject({ sha256: sha(body), ended: true });
    expect(b.upstream!.headers['x-webhook-verified']).toBe('github;secret="gh-1"');
  });

  it('a large body (8 MB, signed by the Stripe SDK) and a binary one (1 MB of random bytes, signed per the scheme)', async () => {
    const large = JSON.stringify({ id: 'evt_large', blob: randomBytes(3 * MB).toString('base64').slice(0, 8 * MB - 100) });
    const a = await deliver(t.url, '/hooks/stripe', large, stripeHeaders(large));
    expect(a.res.status, a.res.body.slice(0, 200)).toBe(200);
    expect(a.upstream).toMatchObject({ sha256: sha(large), bytes: Buffer.byteLength(large), ended: true });
    // The providers' libraries only sign text; GitHub's scheme over raw bytes, computed here.
    const binary = randomBytes(MB);
    const signature = `sha256=${createHmac('sha256', SECRETS['gh-1']).update(binary).digest('hex')}`;
    const b = await deliver(t.url, '/hooks/github', binary, { 'x-hub-signature-256': signature, 'content-type': 'application/octet-stream' });
    expect(b.res.status, b.res.body).toBe(200);
    expect(b.upstream).toMatchObject({ sha256: sha(binary), bytes: MB, ended: true });
  });

  it('a chunked delivery is forwarded whole, with a Content-Length', async () => {
    const body = event({ padding: 'p'.repeat(200_000) });
    const { res, upstream } = await deliver(t.url, '/hooks/standard', body, { ...standardHeaders(body), 'transfer-encoding': 'chunked' });
    expect(res.status, res.body).toBe(200);
    expect(upstream).toMatchObject({ sha256: sha(body), bytes: Buffer.byteLength(body), ended: true });
    expect(upstream!.headers['content-length']).toBe(String(Buffer.byteLength(body)));
    expect(upstream!.headers['transfer-encoding']).toBeUndefined();
  });

  it('rotation: a delivery signed with the second secret, and one carrying two signatures', async () => {
    const body = event();
    const a = await deliver(t.url, '/hooks/standard', body, standardHeaders(body, 'std-b'));
    expect(a.res.status, a.res.body).toBe(200);
    expect(a.upstream!.headers['x-webhook-verified']).toBe('standard;secret="std-b"');
    const id = 'msg_two_signatures';
    const at = now();
    const two = `${new Webhook(SECRETS['std-b']).sign(id, new Date(at * 1000), body)} ${new Webhook(SECRETS['std-a']).sign(id, new Date(at * 1000), body)}`;
    const b = await deliver(t.url, '/hooks/standard', body, { 'webhook-id': id, 'webhook-timestamp': String(at), 'webhook-signature': two });
    expect(b.res.status, b.res.body).toBe(200);
    expect(b.upstream!.headers['webhook-signature']).toBe(two);
  });

  it('Expect: 100-continue is answered only once the signature headers and the secret are in order', async () => {
    const body = event();
    const ok = await deliver(t.url, '/hooks/stripe', body, stripeHeaders(body), true);
    expect(ok.res.status, ok.res.body).toBe(200);
    expect(ok.res.continued).toBe(true);
    const stale = await deliver(t.url, '/hooks/stripe', body, stripeHeaders(body, now() - 3600), true);
    expectProblem(stale.res, 401, 'signature_expired');
    expect(stale.res.continued).toBe(false);
    expect(stale.upstream).toBeUndefined();
  });
});

describe('refusals: each has its code, and the upstream sees nothing', () => {
  const cases: [string, () => Promise<[string, string, Record<string, string>]>, number, string][] = [
    ['no signature headers', async () => ['/hooks/standard', event(), { 'content-type': 'application/json' }], 401, 'missing_signature'],
    ['no Stripe-Signature', async () => ['/hooks/stripe', event(), {}], 401, 'missing_signature'],
    ['a wrong signature', async () => { const b = event(); return ['/hooks/stripe', b, { 'stripe-signature': `t=${now()},v1=${randomBytes(32).toString('hex')}` }]; }, 401, 'invalid_signature'],
    ['a wrong secret', async () => { const b = event(); return ['/hooks/github', b, { 'x-hub-signature-256': await githubSign('not-the-secret', b) }]; }, 401, 'invalid_signature'],
    ['a tampered body', async () => { const b = event(); return ['/hooks/standard', b.replace('4200', '9999'), standardHeaders(b)]; }, 401, 'invalid_signature'],
    ['a malformed timestamp', async () => { const b = event(); return ['/hooks/standard', b, { ...standardHeaders(b), 'webhook-timestamp': '17e8' }]; }, 401, 'invalid_signature'],
    ['an old timestamp', async () => { const b = event(); return ['/hooks/standard', b, standardHeaders(b, 'std-a', { at: now() - 301 })]; }, 401, 'signature_expired'],
    ['a future timestamp', async () => { const b = event(); return ['/hooks/stripe', b, stripeHeaders(b, now() + 400)]; }, 401, 'signature_expired'],
    ['a signing secret that is not stored', async () => { const b = event(); return ['/hooks/absent', b, stripeHeaders(b)]; }, 502, 'upstream_unavailable'],
    ['a stored secret that is no whsec_<base64>', async () => { const b = event(); return ['/hooks/unusable', b, standardHeaders(b)]; }, 502, 'upstream_unavailable'],
  ];
  for (const [what, make, status, code] of cases) {
    it(`${what}: ${status} ${code}`, async () => {
      const [path, body, headers] = await make();
      const { res, upstream } = await deliver(t.url, path, body, headers);
      expectProblem(res, status, code);
      expect(upstream).toBeUndefined();
      if (status === 401) expect(res.headers['www-authenticate']).toMatch(/^Webhook-Signature realm="keygate", scheme="(standard|stripe|github)"$/);
      // Nothing of the secret ids (signature-only routes are open to anyone) or of a signature.
      expect(res.json.detail).not.toMatch(/not-stored|bad-std|std-a|stripe-1|gh-1/);
      for (const value of Object.values(headers)) if (value.length > 20) expect(res.body).not.toContain(value);
    });
  }

  it('no master key: 502, nothing forwarded', async () => {
    const body = event();
    const { res, upstream } = await deliver(bare.url, '/hooks/stripe', body, stripeHeaders(body));
    expectProblem(res, 502, 'upstream_unavailable');
    expect(upstream).toBeUndefined();
  });

  it('a body that stops arriving: the connection is dropped after timeouts.idleMs, the upstream sees nothing', async () => {
    const before = got.length;
    const body = event({ padding: 'x'.repeat(10_000) });
    const req = httpRequest({ host: '127.0.0.1', port: t.keygate.proxyPort, method: 'POST', path: '/hooks/trickle', headers: { ...stripeHeaders(body), 'content-length': Buffer.byteLength(body) }, agent: false });
    req.on('error', () => {});
    req.on('response', (res) => res.resume());
    req.write(body.slice(0, 5000));
    const started = performance.now();
    await new Promise((resolve) => req.on('close', resolve));
    const ms = performance.now() - started;
    console.log(`webhook body idle timeout: connection closed after ${ms.toFixed(0)} ms (idleMs 1000)`);
    expect(ms).toBeGreaterThan(900);
    expect(ms).toBeLessThan(10_000);
    expect(got.length).toBe(before);
  });
});

describe('replay protection', () => {
  it('the same signed delivery twice: the second is 409 replayed_delivery and never reaches the upstream', async () => {
    const body = event();
    const headers = standardHeaders(body);
    const first = await deliver(t.url, '/hooks/standard', body, headers);
    expect(first.res.status).toBe(200);
    const second = await deliver(t.url, '/hooks/standard', body, headers);
    expectProblem(second.res, 409, 'replayed_delivery');
    expect(second.upstream).toBeUndefined();
    // Adding a bogus extra signature does not make it new.
    const padded = await deliver(t.url, '/hooks/standard', body, { ...headers, 'webhook-signature': `${headers['webhook-signature']} v1,${randomBytes(32).toString('base64')}` });
    expectProblem(padded.res, 409, 'replayed_delivery');
  });

  it("the sender's own retry (same webhook-id, new timestamp and signature) is a new delivery", async () => {
    const body = event();
    const id = `msg_retry_${randomBytes(4).toString('hex')}`;
    expect((await deliver(t.url, '/hooks/standard', body, standardHeaders(body, 'std-a', { id, at: now() - 5 }))).res.status).toBe(200);
    expect((await deliver(t.url, '/hooks/standard', body, standardHeaders(body, 'std-a', { id, at: now() }))).res.status).toBe(200);
  });

  it('GitHub (no signed timestamp or id): the same body is refused again even under another X-GitHub-Delivery', async () => {
    const body = event();
    const headers = await githubHeaders(body);
    expect((await deliver(t.url, '/hooks/github', body, headers)).res.status).toBe(200);
    const again = await deliver(t.url, '/hooks/github', body, { ...headers, 'x-github-delivery': crypto.randomUUID() });
    expectProblem(again.res, 409, 'replayed_delivery');
    expect(again.upstream).toBeUndefined();
  });

  it('is refused by a second instance on the same SQLite file', async () => {
    const body = event();
    const headers = stripeHeaders(body);
    expect((await deliver(t.url, '/hooks/stripe', body, headers)).res.status).toBe(200);
    const replay = await deliver(twin.url, '/hooks/stripe', body, headers);
    expectProblem(replay.res, 409, 'replayed_delivery');
    expect(replay.upstream).toBeUndefined();
  });

  it('a wrong signature claims nothing: the genuine delivery with the same id and timestamp still passes', async () => {
    const body = event();
    const headers = standardHeaders(body);
    const forged = await deliver(t.url, '/hooks/standard', event(), headers);
    expectProblem(forged.res, 401, 'invalid_signature');
    expect((await deliver(t.url, '/hooks/standard', body, headers)).res.status).toBe(200);
  });

  it('a delivery the upstream failed (unreachable, or 5xx) keeps no claim: the sender\'s identical retry goes through; one it took stays claimed', async () => {
    let calls = 0;
    const flaky = await startUpstream((req, res) => {
      req.resume();
      req.on('end', () => {
        calls++;
        res.writeHead(calls === 1 ? 503 : 200, { 'content-type': 'text/plain' });
        res.end(calls === 1 ? 'busy' : 'ok');
      });
    });
    const own = await startTestKeygate(
      {
        routes: [
          { name: 'down', pathPrefix: '/hooks/down', upstream: 'http://127.0.0.1:1', auth: { required: false }, webhook: { scheme: 'github', secrets: ['gh-1'] } },
          { name: 'flaky', pathPrefix: '/hooks/flaky', upstream: flaky.url, auth: { required: false }, webhook: { scheme: 'github', secrets: ['gh-1'] } },
        ],
      },
      { KEYGATE_MASTER_KEY: MASTER_KEY },
    );
    try {
      await addSecrets(own);
      const body = event();
      const headers = await githubHeaders(body);
      // Unreachable upstream: 502, and the redelivery is another 502, not a 409.
      expect((await rawRequest(own.url, { method: 'POST', path: '/hooks/down', headers, body })).status).toBe(502);
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect((await rawRequest(own.url, { method: 'POST', path: '/hooks/down', headers, body })).status).toBe(502);
      // 503 from the upstream: the same delivery again reaches it; once it answered 200, a third is a replay.
      expect((await rawRequest(own.url, { method: 'POST', path: '/hooks/flaky', headers, body })).status).toBe(503);
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect((await rawRequest(own.url, { method: 'POST', path: '/hooks/flaky', headers, body })).status).toBe(200);
      expectProblem(await rawRequest(own.url, { method: 'POST', path: '/hooks/flaky', headers, body }), 409, 'replayed_delivery');
      expect(calls).toBe(2);
    } finally {
      await own.stop();
      await flaky.close();
    }
  });

  it('replay: false lets the same delivery through twice', async () => {
    const body = event();
    const headers = standardHeaders(body);
    expect((await deliver(t.url, '/hooks/again', body, headers)).res.status).toBe(200);
    expect((await deliver(t.url, '/hooks/again', body, headers)).res.status).toBe(200);
  });
});

describe('a route that needs a key and a signature', () => {
  it('no key: 401 missing_credentials, without reading the body', async () => {
    const body = event();
    const { res, upstream } = await deliver(t.url, '/hooks/keyed', body, await githubHeaders(body));
    expectProblem(res, 401, 'missing_credentials');
    expect(upstream).toBeUndefined();
  });

  it('a key without the permission: 403; a key with a bad signature: 401 invalid_signature', async () => {
    const body = event();
    expectProblem((await deliver(t.url, '/hooks/keyed', body, { ...(await githubHeaders(body)), 'x-api-key': weakKey })).res, 403, 'forbidden_permission');
    const bad = await deliver(t.url, '/hooks/keyed', body, { 'x-hub-signature-256': await githubSign('wrong', body), 'x-api-key': key });
    expectProblem(bad.res, 401, 'invalid_signature');
    expect(bad.upstream).toBeUndefined();
  });

  it("both: forwarded with the key's identity headers and the verified-by header, the key removed", async () => {
    const body = event();
    const { res, upstream } = await deliver(t.url, '/hooks/keyed', body, { ...(await githubHeaders(body)), authorization: `Bearer ${key}` });
    expect(res.status, res.body).toBe(200);
    expect(upstream).toMatchObject({ sha256: sha(body), ended: true });
    expect(upstream!.headers).toMatchObject({ 'x-tenant-id': 'hooks', 'x-auth-permissions': 'hooks:deliver', 'x-webhook-verified': 'github;secret="gh-1"' });
    expect(upstream!.headers.authorization).toBeUndefined();
  });
});

describe('body limit (maxBodyBytes, 10 MiB by default): a 20 MB body', () => {
  const TWENTY_MB = 20 * MB;

  /** Sends only the headers of a 20 MB request and waits for the answer. */
  async function declaredOnly(path: string, headers: Record<string, string>): Promise<{ status: number; body: string; ms: number; connection: string | undefined }> {
    const started = performance.now();
    const req = httpRequest({ host: '127.0.0.1', port: t.keygate.proxyPort, method: 'POST', path, headers: { ...headers, 'content-length': TWENTY_MB }, agent: false });
    req.on('error', () => {});
    req.flushHeaders();
    const [res] = (await once(req, 'response')) as [IncomingMessage];
    let text = '';
    for await (const chunk of res) text += chunk;
    req.destroy();
    return { status: res.statusCode ?? 0, body: text, ms: performance.now() - started, connection: res.headers.connection };
  }

  /**
   * Streams 20 MB (chunked, or with its Content-Length) on a raw socket, reading while it
   * writes as curl does (node's own client drops an answer that comes while it is still
   * writing once the socket resets), and reports how much went out before the answer came.
   */
  async function stream(path: string, headers: Record<string, string>, framing: 'chunked' | 'length' = 'chunked'): Promise<{ status: number; body: string; sent: number }> {
    const socket = connect(t.keygate.proxyPort, '127.0.0.1');
    await once(socket, 'connect');
    let text = '';
    let sentAtAnswer = -1;
    let sent = 0;
    socket.on('data', (data: Buffer) => {
      if (sentAtAnswer === -1) sentAtAnswer = sent;
      text += data.toString('latin1');
    });
    socket.on('error', () => {});
    const framingHeader = framing === 'chunked' ? { 'transfer-encoding': 'chunked' } : { 'content-length': String(TWENTY_MB) };
    const head = Object.entries({ ...headers, host: 'keygate.test', ...framingHeader }).map(([k, v]) => `${k}: ${v}\r\n`).join('');
    socket.write(`POST ${path} HTTP/1.1\r\n${head}\r\n`);
    const chunk = Buffer.alloc(64 * 1024, 'z');
    const frame = framing === 'chunked' ? Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')]) : chunk;
    while (sent < TWENTY_MB && sentAtAnswer === -1 && !socket.destroyed) {
      sent += chunk.length;
      if (!socket.write(frame)) await Promise.race([once(socket, 'drain'), once(socket, 'close'), sleep(5000)]).catch(() => {});
    }
    if (!socket.destroyed && sentAtAnswer === -1 && framing === 'chunked') socket.write('0\r\n\r\n');
    await waitFor(() => /\r\n\r\n\{.*\}$/s.test(text) || socket.destroyed, 10_000).catch(() => {});
    await sleep(50);
    socket.destroy();
    const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
    return { status, body: text.slice(text.indexOf('\r\n\r\n') + 4), sent: sentAtAnswer === -1 ? sent : sentAtAnswer };
  }

  it('with Content-Length on a webhook route: 413 at once, the body never read, the upstream never asked', async () => {
    const before = got.length;
    const out = await declaredOnly('/hooks/stripe', stripeHeaders('{}'));
    console.log(`20 MB Content-Length, webhook route: 413 after ${out.ms.toFixed(1)} ms with no body sent`);
    expect(out.status).toBe(413);
    expect(JSON.parse(out.body)).toMatchObject({ code: 'payload_too_large' });
    expect(out.connection).toBe('close');
    expect(got.length).toBe(before);
  });

  it('with Content-Length, sent at once without waiting: the 413 reaches the client while it is still sending', async () => {
    const before = got.length;
    for (const path of ['/hooks/stripe', '/plain']) {
      const out = await stream(path, { ...stripeHeaders('{}'), 'x-api-key': key }, 'length');
      console.log(`20 MB Content-Length streamed at once, ${path}: 413 after ${(out.sent / MB).toFixed(1)} MB sent by the client`);
      expect(out.status, path).toBe(413);
      expect(out.sent).toBeLessThan(TWENTY_MB);
    }
    expect(got.length).toBe(before);
  });

  it('a refusal before the body is read (no signature) reaches a client that is still sending, too', async () => {
    const out = await stream('/hooks/standard', {}, 'chunked');
    expect(out.status).toBe(401);
    expect(JSON.parse(out.body)).toMatchObject({ code: 'missing_signature' });
    expect(out.sent).toBeLessThan(TWENTY_MB);
  });

  it('with Content-Length on a plain route: the same', async () => {
    const before = got.length;
    const out = await declaredOnly('/plain', { 'x-api-key': key });
    expect(out.status).toBe(413);
    expect(JSON.parse(out.body)).toMatchObject({ code: 'payload_too_large' });
    expect(got.length).toBe(before);
  });

  it('chunked on a webhook route: 413 once the limit is passed, nothing forwarded', async () => {
    const before = got.length;
    const out = await stream('/hooks/stripe', stripeHeaders('{}'));
    console.log(`20 MB chunked, webhook route: 413 after ${(out.sent / MB).toFixed(1)} MB sent by the client`);
    expect(out.status).toBe(413);
    expect(JSON.parse(out.body)).toMatchObject({ code: 'payload_too_large' });
    expect(out.sent).toBeLessThan(TWENTY_MB);
    expect(got.length).toBe(before);
  });

  it('chunked on a plain route: 413 at the limit; the upstream got at most the limit and never the end of the body', async () => {
    const before = got.length;
    const out = await stream('/plain', { 'x-api-key': key });
    console.log(`20 MB chunked, plain route: 413 after ${(out.sent / MB).toFixed(1)} MB sent by the client`);
    expect(out.status).toBe(413);
    expect(JSON.parse(out.body)).toMatchObject({ code: 'payload_too_large' });
    expect(out.sent).toBeLessThan(TWENTY_MB);
    // The part that streamed before the limit reached the upstream, but as an unfinished request.
    await sleep(200);
    for (const entry of got.slice(before)) {
      expect(entry.ended).toBe(false);
      expect(entry.bytes).toBeLessThanOrEqual(10 * MB);
    }
  });
});

describe('operations', () => {
  it('counts verifications by route and result on /metrics', async () => {
    const text = await (await fetch(`${t.adminUrl}/metrics`)).text();
    const count = (route: string, result: string) => Number(new RegExp(`^keygate_webhook_verifications_total\\{route="${route}",result="${result}"\\} (\\d+)$`, 'm').exec(text)?.[1] ?? NaN);
    expect(count('standard', 'ok')).toBeGreaterThanOrEqual(5);
    expect(count('standard', 'missing')).toBeGreaterThanOrEqual(1);
    expect(count('standard', 'invalid')).toBeGreaterThanOrEqual(2);
    expect(count('standard', 'expired')).toBeGreaterThanOrEqual(1);
    expect(count('standard', 'replayed')).toBeGreaterThanOrEqual(2);
    expect(count('stripe', 'too_large')).toBeGreaterThanOrEqual(1);
    expect(count('absent', 'unavailable')).toBeGreaterThanOrEqual(1);
    expect(count('trickle', 'aborted')).toBeGreaterThanOrEqual(1);
    // Every series exists from the start, even those nothing happened to.
    expect(count('again', 'expired')).toBe(0);
    expect(text).not.toMatch(/keygate_webhook_verifications_total\{route="plain"/);
  });

  it('logs each delivery with its code, and no secret value or signature anywhere', async () => {
    await sleep(300);
    const logs = t.logs();
    const lines = accessLines(logs).filter((l) => String(l.path).startsWith('/hooks/'));
    expect(lines.some((l) => l.code === 'replayed_delivery' && l.outcome === 'invalid')).toBe(true);
    expect(lines.some((l) => l.code === 'signature_expired' && l.outcome === 'expired')).toBe(true);
    expect(lines.some((l) => l.route === 'stripe' && l.status === 200 && l.outcome === 'ok')).toBe(true);
    for (const value of Object.values(SECRETS)) {
      expect(logs).not.toContain(value);
      for (const r of responses) expect(r.body).not.toContain(value);
    }
    expect(logs).not.toMatch(/v1,[A-Za-z0-9+/]{43}=|v1=[0-9a-f]{64}|sha256=[0-9a-f]{64}/);
    // The misconfigured secrets are named in a warning, for the operator.
    expect(logs).toMatch(/"secretId":"not-stored"/);
    expect(logs).toMatch(/"secretId":"bad-std".*not \\"whsec_<base64>\\"/);
  });
});

describe('two instances on one Redis', () => {
  let pair: RedisPair<TestKeygate>;
  let a: TestKeygate;
  let b: TestKeygate;

  beforeAll(async () => {
    pair = await startRedisPair({ config: (store) => ({ store, routes: routes(up.url), log: { level: 'info', access: false } }), env: { KEYGATE_MASTER_KEY: MASTER_KEY } });
    ({ a, b } = pair);
    await addSecrets(a);
  });

  afterAll(() => pair?.stop());

  it('a delivery accepted by one is refused as a replay by the other, for every scheme', async () => {
    const body = event();
    const deliveries: [string, Record<string, string>][] = [
      ['/hooks/standard', standardHeaders(body)],
      ['/hooks/stripe', stripeHeaders(body)],
      ['/hooks/github', await githubHeaders(body)],
    ];
    for (const [path, headers] of deliveries) {
      const first = await deliver(a.url, path, body, headers);
      expect(first.res.status, `${path}: ${first.res.body}`).toBe(200);
      expect(first.upstream).toMatchObject({ sha256: sha(body), ended: true });
      const replay = await deliver(b.url, path, body, headers);
      expectProblem(replay.res, 409, 'replayed_delivery');
      expect(replay.upstream).toBeUndefined();
    }
  });

  it('concurrent copies of one delivery to both instances: exactly one reaches the upstream', async () => {
    const body = event();
    const headers = stripeHeaders(body);
    const before = got.length;
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => deliver(i % 2 ? a.url : b.url, '/hooks/stripe', body, headers)));
    expect(results.map((r) => r.res.status).sort()).toEqual([200, ...Array(9).fill(409)]);
    await waitFor(() => got.length > before);
    expect(got.length - before).toBe(1);
  });

  it('Redis unreachable: 503 auth_unavailable with Retry-After, never accepted', async () => {
    const body = event();
    // The secret is cached; the replay claim is what cannot be made.
    expect((await deliver(a.url, '/hooks/stripe', body, stripeHeaders(body))).res.status).toBe(200);
    await pair.redis.kill();
    const next = event();
    const { res, upstream } = await deliver(a.url, '/hooks/stripe', next, stripeHeaders(next));
    expectProblem(res, 503, 'auth_unavailable');
    expect(res.headers['retry-after']).toBe('1');
    expect(upstream).toBeUndefined();
  });
});

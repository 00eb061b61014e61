/**
 * The three signature schemes against each provider's own signing code: `standardwebhooks`
 * (Webhook#sign), Stripe's SDK (webhooks.generateTestHeaderString) and GitHub's
 * `@octokit/webhooks-methods` (sign). Each delivery goes through the same steps as on the
 * request path (webhooks/delivery.ts): header parse → timestamp window → incremental HMAC
 * over the body in chunks → constant-time match.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { sign as githubSign } from '@octokit/webhooks-methods';
import { Webhook } from 'standardwebhooks';
import Stripe from 'stripe';
import { describe, expect, it } from 'vitest';
import { github } from '../../../src/webhooks/github.ts';
import type { Scheme } from '../../../src/webhooks/scheme.ts';
import { CLOCK_SKEW_MS, matchesAny, replayTtlMs, SignatureCheck, timestampProblem } from '../../../src/webhooks/signature.ts';
import { standard } from '../../../src/webhooks/standard.ts';
import { stripe } from '../../../src/webhooks/stripe.ts';

const STANDARD_SECRET = `whsec_${randomBytes(24).toString('base64')}`;
const STANDARD_NEXT = `whsec_${randomBytes(32).toString('base64')}`;
const STRIPE_SECRET = `whsec_${randomBytes(24).toString('hex')}`;
const STRIPE_NEXT = `whsec_${randomBytes(24).toString('hex')}`;
const GITHUB_SECRET = `gh-${randomBytes(16).toString('hex')}`;
const GITHUB_NEXT = `gh-${randomBytes(16).toString('hex')}`;
const PAYLOAD = JSON.stringify({ id: 'evt_1', type: 'invoice.paid', data: { amount: 4200, note: 'ünïcödé ✓ "quoted"\r\n' } });
const TOLERANCE = 300;

type Outcome = { ok: true; matched: number; replayId: string } | { ok: false; problem: string; detail: string };

/** What the request path does with one delivery, here with the body in 7-byte chunks. */
function check(scheme: Scheme, headers: IncomingHttpHeaders, body: string | Buffer, secrets: string[], nowMs = Date.now()): Outcome {
  const parts = scheme.parse(headers);
  if ('problem' in parts) return { ok: false, problem: parts.problem, detail: parts.detail };
  if (parts.timestamp !== null) {
    const stale = timestampProblem(parts.timestamp, nowMs, TOLERANCE);
    if (stale !== null) return { ok: false, problem: 'signature_expired', detail: stale };
  }
  const keys = secrets.map((s) => scheme.key(s)!);
  const sig = new SignatureCheck(parts, keys, { replayOf: scheme.name });
  const bytes = Buffer.from(body);
  for (let i = 0; i < bytes.length; i += 7) sig.update(bytes.subarray(i, i + 7));
  const { matched, replayId } = sig.finish();
  return matched === -1 ? { ok: false, problem: 'invalid_signature', detail: 'no match' } : { ok: true, matched, replayId: replayId! };
}

const nowSeconds = () => Math.floor(Date.now() / 1000);

describe('Standard Webhooks (signed by the standardwebhooks package)', () => {
  const signed = (payload: string, options: { id?: string; at?: number; secret?: string } = {}) => {
    const id = options.id ?? `msg_${randomBytes(8).toString('hex')}`;
    const at = options.at ?? nowSeconds();
    const signature = new Webhook(options.secret ?? STANDARD_SECRET).sign(id, new Date(at * 1000), payload);
    return { 'webhook-id': id, 'webhook-timestamp': String(at), 'webhook-signature': signature } as Record<string, string>;
  };

  it('verifies a delivery the reference library signed, and the library agrees', () => {
    const headers = signed(PAYLOAD);
    expect(check(standard, headers, PAYLOAD, [STANDARD_SECRET])).toMatchObject({ ok: true, matched: 0 });
    expect(() => new Webhook(STANDARD_SECRET).verify(PAYLOAD, headers)).not.toThrow();
    // The secret without its whsec_ prefix is the same key.
    expect(check(standard, headers, PAYLOAD, [STANDARD_SECRET.slice(6)])).toMatchObject({ ok: true });
  });

  it('refuses a wrong signature, a wrong secret, a tampered body, id or timestamp', () => {
    const headers = signed(PAYLOAD);
    expect(check(standard, { ...headers, 'webhook-signature': `v1,${randomBytes(32).toString('base64')}` }, PAYLOAD, [STANDARD_SECRET])).toMatchObject({ ok: false, problem: 'invalid_signature' });
    expect(check(standard, headers, PAYLOAD, [STANDARD_NEXT])).toMatchObject({ ok: false, problem: 'invalid_signature' });
    expect(check(standard, headers, PAYLOAD.replace('4200', '4201'), [STANDARD_SECRET])).toMatchObject({ ok: false, problem: 'invalid_signature' });
    expect(check(standard, headers, `${PAYLOAD} `, [STANDARD_SECRET])).toMatchObject({ ok: false, problem: 'invalid_signature' });
    expect(check(standard, { ...headers, 'webhook-id': `${headers['webhook-id']}x` }, PAYLOAD, [STANDARD_SECRET])).toMatchObject({ ok: false, problem: 'invalid_signature' });
    expect(check(standard, { ...headers, 'webhook-timestamp': String(Number(headers['webhook-timestamp']) + 1) }, PAYLOAD, [STANDARD_SECRET])).toMatchObject({ ok: false, problem: 'invalid_signature' });
  });

  it('refuses a timestamp older or further in the future than the tolerance, accepts one just inside', () => {
    const now = Date.now();
    const at = Math.floor(now / 1000);
    expect(check(standard, signed(PAYLOAD, { at: at - TOLERANCE - 1 }), PAYLOAD, [STANDARD_SECRET], now)).toMatchObject({ ok: false, problem: 'signature_expired', detail: expect.stringMatching(/300 s old/) });
    expect(check(standard, signed(PAYLOAD, { at: at + TOLERANCE + 1 }), PAYLOAD, [STANDARD_SECRET], now)).toMatchObject({ ok: false, problem: 'signature_expired', detail: expect.stringMatching(/in the future/) });
    expect(check(standard, signed(PAYLOAD, { at: at - TOLERANCE + 1 }), PAYLOAD, [STANDARD_SECRET], now)).toMatchObject({ ok: true });
    expect(check(standard, signed(PAYLOAD, { at: at + TOLERANCE - 1 }), PAYLOAD, [STANDARD_SECRET], now)).toMatchObject({ ok: true });
  });

  it('names each missing header, and refuses malformed ones without quoting them', () => {
    const headers = signed(PAYLOAD);
    for (const name of ['webhook-id', 'webhook-timestamp', 'webhook-signature']) {
      const { [name]: _, ...rest } = headers;
      const out = check(standard, rest, PAYLOAD, [STANDARD_SECRET]);
      expect(out).toMatchObject({ ok: false, problem: 'missing_signature' });
      expect((out as { detail: string }).detail).toContain(name);
    }
    expect(check(standard, {}, PAYLOAD, [STANDARD_SECRET])).toMatchObject({ ok: false, problem: 'missing_signature' });
    for (const timestamp of ['12abc', '-5', '+1700000000', '1.5', '', '1'.repeat(13)]) {
      expect(check(standard, { ...headers, 'webhook-timestamp': timestamp }, PAYLOAD, [STANDARD_SECRET]), timestamp).toMatchObject({ ok: false, problem: 'invalid_signature' });
    }
    expect(check(standard, { ...headers, 'webhook-id': 'has space' }, PAYLOAD, [STANDARD_SECRET])).toMatchObject({ ok: false, problem: 'invalid_signature' });
    expect(check(standard, { ...headers, 'webhook-id': 'x'.repeat(257) }, PAYLOAD, [STANDARD_SECRET])).toMatchObject({ ok: false, problem: 'invalid_signature' });
    for (const signature of ['', 'garbage', 'v1,', 'v1,not-base64!', `v1,${randomBytes(16).toString('base64')}`, headers['webhook-signature']!.replace('v1,', 'v1:')]) {
      const out = check(standard, { ...headers, 'webhook-signature': signature }, PAYLOAD, [STANDARD_SECRET]);
      expect(out, signature).toMatchObject({ ok: false, problem: 'invalid_signature' });
      if (signature.length > 8) expect((out as { detail: string }).detail).not.toContain(signature);
    }
  });

  it('rotation: any one of several signatures may match, with either of two secrets', () => {
    const id = 'msg_rotation';
    const at = nowSeconds();
    const oldSig = new Webhook(STANDARD_SECRET).sign(id, new Date(at * 1000), PAYLOAD);
    const newSig = new Webhook(STANDARD_NEXT).sign(id, new Date(at * 1000), PAYLOAD);
    const both = { 'webhook-id': id, 'webhook-timestamp': String(at), 'webhook-signature': `${oldSig} ${newSig}` };
    expect(check(standard, both, PAYLOAD, [STANDARD_NEXT])).toMatchObject({ ok: true, matched: 0 });
    expect(check(standard, both, PAYLOAD, [STANDARD_SECRET])).toMatchObject({ ok: true, matched: 0 });
    // The receiver holds both while senders move over: each sender's single signature passes.
    const onlyNew = { ...both, 'webhook-signature': newSig };
    expect(check(standard, onlyNew, PAYLOAD, [STANDARD_SECRET, STANDARD_NEXT])).toMatchObject({ ok: true, matched: 1 });
    expect(check(standard, { ...both, 'webhook-signature': oldSig }, PAYLOAD, [STANDARD_SECRET, STANDARD_NEXT])).toMatchObject({ ok: true, matched: 0 });
    // The library agrees that the two-signature header verifies with either secret.
    expect(() => new Webhook(STANDARD_NEXT).verify(PAYLOAD, both)).not.toThrow();
  });

  it('ignores unknown signature versions; only those is no signature at all', () => {
    const headers = signed(PAYLOAD);
    const other = `v1a,${randomBytes(64).toString('base64')} v2,${randomBytes(32).toString('base64')}`;
    expect(check(standard, { ...headers, 'webhook-signature': `${other} ${headers['webhook-signature']}` }, PAYLOAD, [STANDARD_SECRET])).toMatchObject({ ok: true });
    const out = check(standard, { ...headers, 'webhook-signature': other }, PAYLOAD, [STANDARD_SECRET]);
    expect(out).toMatchObject({ ok: false, problem: 'invalid_signature', detail: expect.stringMatching(/no well-formed v1/) });
  });

  it("reads Svix's own header names when no webhook-* header is sent, never a mix", () => {
    const headers = signed(PAYLOAD);
    const svix = { 'svix-id': headers['webhook-id']!, 'svix-timestamp': headers['webhook-timestamp']!, 'svix-signature': headers['webhook-signature']! };
    expect(check(standard, svix, PAYLOAD, [STANDARD_SECRET])).toMatchObject({ ok: true });
    const mixed = { 'webhook-id': headers['webhook-id']!, 'svix-timestamp': headers['webhook-timestamp']!, 'svix-signature': headers['webhook-signature']! };
    expect(check(standard, mixed, PAYLOAD, [STANDARD_SECRET])).toMatchObject({ ok: false, problem: 'missing_signature' });
  });

  it('takes only whsec_<base64> secrets as keys', () => {
    expect(standard.key(STANDARD_SECRET)).toEqual(Buffer.from(STANDARD_SECRET.slice(6), 'base64'));
    for (const bad of ['whsec_', 'whsec_not base64', 'whsec_abc', 'whsec_!!!!', '']) expect(standard.key(bad), bad).toBeNull();
  });
});

describe('Stripe (signed by the Stripe SDK)', () => {
  const header = (payload: string, secret = STRIPE_SECRET, timestamp = nowSeconds(), scheme?: string) =>
    Stripe.webhooks.generateTestHeaderString({ payload, secret, timestamp, ...(scheme ? { scheme } : {}) });

  it('verifies a delivery the SDK signed, and the SDK agrees', () => {
    const sig = header(PAYLOAD);
    expect(check(stripe, { 'stripe-signature': sig }, PAYLOAD, [STRIPE_SECRET])).toMatchObject({ ok: true, matched: 0 });
    expect(Stripe.webhooks.constructEvent(PAYLOAD, sig, STRIPE_SECRET)).toMatchObject({ id: 'evt_1' });
  });

  it('uses the whsec_ secret as it is, not base64-decoded', () => {
    expect(stripe.key(STRIPE_SECRET)).toEqual(Buffer.from(STRIPE_SECRET, 'utf8'));
    const sig = header(PAYLOAD);
    const decodedKey = { ...stripe, key: (v: string) => standard.key(v) };
    expect(check(decodedKey as Scheme, { 'stripe-signature': sig }, PAYLOAD, [STRIPE_SECRET])).toMatchObject({ ok: false });
  });

  it('refuses a wrong signature, a wrong secret, a tampered body or timestamp', () => {
    const at = nowSeconds();
    const sig = header(PAYLOAD, STRIPE_SECRET, at);
    expect(check(stripe, { 'stripe-signature': `t=${at},v1=${randomBytes(32).toString('hex')}` }, PAYLOAD, [STRIPE_SECRET])).toMatchObject({ ok: false, problem: 'invalid_signature' });
    expect(check(stripe, { 'stripe-signature': sig }, PAYLOAD, [STRIPE_NEXT])).toMatchObject({ ok: false, problem: 'invalid_signature' });
    expect(check(stripe, { 'stripe-signature': sig }, PAYLOAD.replace('paid', 'void'), [STRIPE_SECRET])).toMatchObject({ ok: false, problem: 'invalid_signature' });
    expect(check(stripe, { 'stripe-signature': sig.replace(`t=${at}`, `t=${at - 1}`) }, PAYLOAD, [STRIPE_SECRET])).toMatchObject({ ok: false, problem: 'invalid_signature' });
  });

  it('refuses old and future timestamps (the SDK checks only old ones)', () => {
    const now = Date.now();
    const at = Math.floor(now / 1000);
    expect(check(stripe, { 'stripe-signature': header(PAYLOAD, STRIPE_SECRET, at - 301) }, PAYLOAD, [STRIPE_SECRET], now)).toMatchObject({ ok: false, problem: 'signature_expired' });
    expect(check(stripe, { 'stripe-signature': header(PAYLOAD, STRIPE_SECRET, at + 301) }, PAYLOAD, [STRIPE_SECRET], now)).toMatchObject({ ok: false, problem: 'signature_expired' });
    expect(() => Stripe.webhooks.constructEvent(PAYLOAD, header(PAYLOAD, STRIPE_SECRET, at - 301), STRIPE_SECRET)).toThrow(/tolerance/);
  });

  it('missing and malformed headers', () => {
    const at = nowSeconds();
    const v1 = header(PAYLOAD, STRIPE_SECRET, at).split(',')[1]!;
    expect(check(stripe, {}, PAYLOAD, [STRIPE_SECRET])).toMatchObject({ ok: false, problem: 'missing_signature' });
    for (const bad of ['', v1, `t=${at}`, `t=${at},v1=zz`, `t=${at},v1=${'a'.repeat(63)}`, `t=abc,${v1}`, `t=${at},t=${at + 1},${v1}`, `t=${at - 5},${v1}, t=${at},${v1}`]) {
      expect(check(stripe, { 'stripe-signature': bad }, PAYLOAD, [STRIPE_SECRET]), bad).toMatchObject({ ok: false, problem: 'invalid_signature' });
    }
  });

  it('rotation: several v1 signatures (Stripe rolling a secret), any one matches; v0 is ignored', () => {
    const at = nowSeconds();
    const oldHeader = header(PAYLOAD, STRIPE_SECRET, at);
    const newV1 = header(PAYLOAD, STRIPE_NEXT, at).split(',')[1]!;
    const v0 = header(PAYLOAD, STRIPE_SECRET, at, 'v0').split(',')[1]!;
    const both = `${oldHeader},${newV1},${v0}`;
    expect(check(stripe, { 'stripe-signature': both }, PAYLOAD, [STRIPE_NEXT])).toMatchObject({ ok: true });
    expect(check(stripe, { 'stripe-signature': both }, PAYLOAD, [STRIPE_SECRET])).toMatchObject({ ok: true });
    expect(Stripe.webhooks.constructEvent(PAYLOAD, both, STRIPE_NEXT)).toMatchObject({ id: 'evt_1' });
    // Receiver-side rotation: two secrets configured, the sender signs with the second.
    expect(check(stripe, { 'stripe-signature': header(PAYLOAD, STRIPE_NEXT, at) }, PAYLOAD, [STRIPE_SECRET, STRIPE_NEXT])).toMatchObject({ ok: true, matched: 1 });
    // Only a v0 (another scheme): no v1 signature.
    expect(check(stripe, { 'stripe-signature': `t=${at},${v0}` }, PAYLOAD, [STRIPE_SECRET])).toMatchObject({ ok: false, problem: 'invalid_signature' });
  });
});

describe('GitHub (signed by @octokit/webhooks-methods)', () => {
  it('verifies a delivery octokit signed; hex in either case', async () => {
    const sig = await githubSign(GITHUB_SECRET, PAYLOAD);
    expect(check(github, { 'x-hub-signature-256': sig }, PAYLOAD, [GITHUB_SECRET])).toMatchObject({ ok: true });
    expect(check(github, { 'x-hub-signature-256': `sha256=${sig.slice(7).toUpperCase()}` }, PAYLOAD, [GITHUB_SECRET])).toMatchObject({ ok: true });
  });

  it('refuses a wrong signature, a wrong secret, a tampered body', async () => {
    const sig = await githubSign(GITHUB_SECRET, PAYLOAD);
    expect(check(github, { 'x-hub-signature-256': `sha256=${randomBytes(32).toString('hex')}` }, PAYLOAD, [GITHUB_SECRET])).toMatchObject({ ok: false, problem: 'invalid_signature' });
    expect(check(github, { 'x-hub-signature-256': sig }, PAYLOAD, [GITHUB_NEXT])).toMatchObject({ ok: false, problem: 'invalid_signature' });
    expect(check(github, { 'x-hub-signature-256': sig }, `${PAYLOAD}\n`, [GITHUB_SECRET])).toMatchObject({ ok: false, problem: 'invalid_signature' });
  });

  it('missing, legacy SHA-1 only, malformed', async () => {
    expect(check(github, {}, PAYLOAD, [GITHUB_SECRET])).toMatchObject({ ok: false, problem: 'missing_signature' });
    const legacy = check(github, { 'x-hub-signature': `sha1=${'a'.repeat(40)}` }, PAYLOAD, [GITHUB_SECRET]);
    expect(legacy).toMatchObject({ ok: false, problem: 'missing_signature', detail: expect.stringMatching(/SHA-1/) });
    const sig = await githubSign(GITHUB_SECRET, PAYLOAD);
    for (const bad of [sig.slice(7), `sha1=${sig.slice(7)}`, `${sig}0`, `sha256=${sig.slice(8)}g`, `${sig}, ${sig}`]) {
      expect(check(github, { 'x-hub-signature-256': bad }, PAYLOAD, [GITHUB_SECRET]), bad).toMatchObject({ ok: false, problem: 'invalid_signature' });
    }
  });

  it('receiver-side rotation: either of two secrets', async () => {
    expect(check(github, { 'x-hub-signature-256': await githubSign(GITHUB_NEXT, PAYLOAD) }, PAYLOAD, [GITHUB_SECRET, GITHUB_NEXT])).toMatchObject({ ok: true, matched: 1 });
  });
});

describe('binary bodies', () => {
  it('are signed and verified as bytes (the reference libraries only take text, so they are signed here with node:crypto per each spec)', async () => {
    const { createHmac } = await import('node:crypto');
    const body = randomBytes(4096);
    const at = nowSeconds();
    const hmac = (key: Buffer, prefix: string) => createHmac('sha256', key).update(prefix).update(body).digest();
    const std = { 'webhook-id': 'msg_bin', 'webhook-timestamp': String(at), 'webhook-signature': `v1,${hmac(standard.key(STANDARD_SECRET)!, `msg_bin.${at}.`).toString('base64')}` };
    expect(check(standard, std, body, [STANDARD_SECRET])).toMatchObject({ ok: true });
    const str = { 'stripe-signature': `t=${at},v1=${hmac(Buffer.from(STRIPE_SECRET), `${at}.`).toString('hex')}` };
    expect(check(stripe, str, body, [STRIPE_SECRET])).toMatchObject({ ok: true });
    const gh = { 'x-hub-signature-256': `sha256=${hmac(Buffer.from(GITHUB_SECRET), '').toString('hex')}` };
    expect(check(github, gh, body, [GITHUB_SECRET])).toMatchObject({ ok: true });
    // A UTF-8 body signed by a library equals the same bytes signed here: one definition of "the body".
    const text = Buffer.from(PAYLOAD);
    expect(`sha256=${createHmac('sha256', GITHUB_SECRET).update(text).digest('hex')}`).toBe(await githubSign(GITHUB_SECRET, PAYLOAD));
  });
});

describe('replay id', () => {
  it('is the same for the same signed content, whichever key or signature matched', () => {
    const at = nowSeconds();
    const oldSig = Stripe.webhooks.generateTestHeaderString({ payload: PAYLOAD, secret: STRIPE_SECRET, timestamp: at });
    const newV1 = Stripe.webhooks.generateTestHeaderString({ payload: PAYLOAD, secret: STRIPE_NEXT, timestamp: at }).split(',')[1];
    const a = check(stripe, { 'stripe-signature': `${oldSig},${newV1}` }, PAYLOAD, [STRIPE_SECRET, STRIPE_NEXT]);
    // A replayer strips the first signature so that the second secret matches instead.
    const b = check(stripe, { 'stripe-signature': `t=${at},${newV1}` }, PAYLOAD, [STRIPE_SECRET, STRIPE_NEXT]);
    expect(a).toMatchObject({ ok: true, matched: 0 });
    expect(b).toMatchObject({ ok: true, matched: 1 });
    expect((a as { replayId: string }).replayId).toBe((b as { replayId: string }).replayId);
    expect((a as { replayId: string }).replayId).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it('differs for another timestamp (a sender retry), another body, another scheme', () => {
    const at = nowSeconds();
    const id = (payload: string, t: number) => (check(stripe, { 'stripe-signature': Stripe.webhooks.generateTestHeaderString({ payload, secret: STRIPE_SECRET, timestamp: t }) }, payload, [STRIPE_SECRET]) as { replayId: string }).replayId;
    expect(id(PAYLOAD, at)).not.toBe(id(PAYLOAD, at - 1));
    expect(id(PAYLOAD, at)).not.toBe(id(`${PAYLOAD} `, at));
    const parts = { prefix: '', timestamp: null, signatures: [] };
    const one = new SignatureCheck(parts, [], { replayOf: 'github' });
    const two = new SignatureCheck(parts, [], { replayOf: 'stripe' });
    expect(one.finish().replayId).not.toBe(two.finish().replayId);
    expect(new SignatureCheck(parts, []).finish().replayId).toBeNull();
  });

  it('is remembered until the timestamp leaves the window everywhere; without a timestamp, for the tolerance', () => {
    const now = 1_700_000_000_000;
    expect(replayTtlMs(now / 1000, now, 300)).toBe(300_000 + CLOCK_SKEW_MS);
    expect(replayTtlMs(now / 1000 + 300, now, 300)).toBe(600_000 + CLOCK_SKEW_MS);
    expect(replayTtlMs(now / 1000 - 300, now, 300)).toBe(CLOCK_SKEW_MS);
    expect(replayTtlMs(null, now, 86_400)).toBe(86_400_000);
  });
});

describe('matchesAny', () => {
  it('compares equal-length values only, and finds a match anywhere in the list', () => {
    const digest = randomBytes(32);
    expect(matchesAny(digest, [randomBytes(32), Buffer.from(digest)])).toBe(true);
    expect(matchesAny(digest, [digest.subarray(0, 31), randomBytes(32)])).toBe(false);
    expect(matchesAny(digest, [])).toBe(false);
  });
});

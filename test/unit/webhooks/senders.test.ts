/**
 * Slack, Shopify, Twilio and the generic hmac scheme (issue 24), each against the sender's
 * own SDK where one exists: @slack/bolt's verifySlackRequest (Slack signs, the SDK only
 * verifies: each test signature is checked by it first), @shopify/shopify-api's getHmac
 * (test-helpers) and webhooks.validate, twilio's getExpectedTwilioSignature /
 * validateRequest / validateRequestWithBody. Each delivery goes through the request path's
 * steps (webhooks/delivery.ts): parse → timestamp window → HMAC over the body in 7-byte
 * chunks (or derived from the whole body, Twilio) → constant-time match.
 */
import { createHash, createHmac, randomBytes } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import '@shopify/shopify-api/adapters/web-api';
import { ApiVersion, LogSeverity, shopifyApi } from '@shopify/shopify-api';
import { getHmac } from '@shopify/shopify-api/test-helpers';
import { verifySlackRequest } from '@slack/bolt';
import twilio from 'twilio';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/load.ts';
import { configProblems } from '../../helpers/config.ts';
import type { RawConfig } from '../../../src/config/schema.ts';
import type { Scheme } from '../../../src/webhooks/scheme.ts';
import { schemeFor } from '../../../src/webhooks/schemes.ts';
import { SignatureCheck, timestampProblem } from '../../../src/webhooks/signature.ts';
import { twilioParams } from '../../../src/webhooks/twilio.ts';

const TOLERANCE = 300;
const PAYLOAD = JSON.stringify({ id: 'evt_1', type: 'order.paid', data: { amount: 4200, note: 'ünïcödé ✓ "quoted"\r\n' } });
const nowSeconds = () => Math.floor(Date.now() / 1000);

type Outcome = { ok: true; matched: number; replayId: string | null } | { ok: false; problem: string; detail: string };

/** A route's scheme, built from a webhook section through the real config schema. */
function schemeOf(webhook: Record<string, unknown>, pathPrefix = '/hooks/x'): Scheme {
  const config = parseConfig({ routes: [{ name: 'r', pathPrefix, upstream: 'http://127.0.0.1:1', auth: { required: false }, webhook }] } as RawConfig, 'test.yaml');
  return schemeFor(config.routes[0]!.webhook!, config.routes[0]!.pathPrefix);
}

function check(scheme: Scheme, headers: IncomingHttpHeaders, body: string | Buffer, secrets: string[], options: { url?: string; nowMs?: number; replay?: boolean } = {}): Outcome {
  const parts = scheme.parse(headers, options.url ?? '/hooks/x');
  if ('problem' in parts) return { ok: false, problem: parts.problem, detail: parts.detail };
  if (parts.timestamp !== null) {
    const stale = timestampProblem(parts.timestamp, options.nowMs ?? Date.now(), TOLERANCE);
    if (stale !== null) return { ok: false, problem: 'signature_expired', detail: stale };
  }
  const sig = new SignatureCheck(parts, secrets.map((s) => scheme.key(s)!), options.replay === false ? {} : { replayOf: scheme.name });
  const bytes = Buffer.from(body);
  for (let i = 0; i < bytes.length; i += 7) sig.update(bytes.subarray(i, i + 7));
  const { matched, replayId, problem } = sig.finish(bytes);
  if (problem !== undefined) return { ok: false, problem: 'invalid_signature', detail: problem };
  return matched === -1 ? { ok: false, problem: 'invalid_signature', detail: 'no match' } : { ok: true, matched, replayId };
}

describe('Slack (each signature accepted by @slack/bolt verifySlackRequest first)', () => {
  const SECRET = randomBytes(16).toString('hex');
  const NEXT = randomBytes(16).toString('hex');
  const slack = schemeOf({ scheme: 'slack', secrets: ['slack-signing'] });
  /** Slack's documented signing: v0=hex(HMAC-SHA256(secret, "v0:{ts}:{body}")); Slack publishes no signing SDK. */
  const signed = (body: string, at = nowSeconds(), secret = SECRET) => {
    const headers = { 'x-slack-request-timestamp': String(at), 'x-slack-signature': `v0=${createHmac('sha256', secret).update(`v0:${at}:${body}`).digest('hex')}` };
    verifySlackRequest({ signingSecret: secret, body, headers: { 'x-slack-request-timestamp': at, 'x-slack-signature': headers['x-slack-signature'] }, nowMilliseconds: at * 1000 });
    return headers;
  };

  it('verifies what the SDK verifies; the SDK refuses what keygate refuses', () => {
    const headers = signed(PAYLOAD);
    expect(check(slack, headers, PAYLOAD, [SECRET])).toMatchObject({ ok: true, matched: 0 });
    expect(check(slack, headers, PAYLOAD, [NEXT, SECRET])).toMatchObject({ ok: true, matched: 1 });
    const tampered = `${PAYLOAD} `;
    expect(check(slack, headers, tampered, [SECRET])).toMatchObject({ ok: false, problem: 'invalid_signature' });
    expect(() => verifySlackRequest({ signingSecret: SECRET, body: tampered, headers: { 'x-slack-request-timestamp': Number(headers['x-slack-request-timestamp']), 'x-slack-signature': headers['x-slack-signature'] } })).toThrow(/signature mismatch/);
    expect(check(slack, headers, PAYLOAD, [NEXT])).toMatchObject({ ok: false, problem: 'invalid_signature' });
    expect(check(slack, { ...headers, 'x-slack-request-timestamp': String(Number(headers['x-slack-request-timestamp']) + 1) }, PAYLOAD, [SECRET])).toMatchObject({ ok: false, problem: 'invalid_signature' });
  });

  it('a url_verification challenge and a form-encoded slash command are signed the same way', () => {
    const challenge = JSON.stringify({ token: 'x', challenge: 'abc', type: 'url_verification' });
    expect(check(slack, signed(challenge), challenge, [SECRET])).toMatchObject({ ok: true });
    const command = 'token=x&team_id=T1&command=%2Fweather&text=94070&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2F1';
    expect(check(slack, signed(command), command, [SECRET])).toMatchObject({ ok: true });
  });

  it('5 minutes either way (the SDK checks only the past)', () => {
    const now = Date.now();
    const at = Math.floor(now / 1000);
    expect(check(slack, signed(PAYLOAD, at - TOLERANCE - 1), PAYLOAD, [SECRET], { nowMs: now })).toMatchObject({ ok: false, problem: 'signature_expired' });
    expect(check(slack, signed(PAYLOAD, at + TOLERANCE + 1), PAYLOAD, [SECRET], { nowMs: now })).toMatchObject({ ok: false, problem: 'signature_expired', detail: expect.stringMatching(/future/) });
    expect(check(slack, signed(PAYLOAD, at - TOLERANCE + 1), PAYLOAD, [SECRET], { nowMs: now })).toMatchObject({ ok: true });
  });

  it('missing and malformed headers', () => {
    const headers = signed(PAYLOAD);
    expect(check(slack, {}, PAYLOAD, [SECRET])).toMatchObject({ problem: 'missing_signature', detail: expect.stringContaining('X-Slack-Request-Timestamp, X-Slack-Signature') });
    expect(check(slack, { 'x-slack-signature': headers['x-slack-signature'] }, PAYLOAD, [SECRET])).toMatchObject({ problem: 'missing_signature' });
    expect(check(slack, { ...headers, 'x-slack-signature': headers['x-slack-signature'].replace('v0=', 'v1=') }, PAYLOAD, [SECRET])).toMatchObject({ problem: 'invalid_signature', detail: expect.stringMatching(/v0=<64 hex>/) });
    expect(check(slack, { ...headers, 'x-slack-signature': headers['x-slack-signature'].slice(0, -1) }, PAYLOAD, [SECRET])).toMatchObject({ problem: 'invalid_signature' });
    expect(check(slack, { ...headers, 'x-slack-request-timestamp': '12ab' }, PAYLOAD, [SECRET])).toMatchObject({ problem: 'invalid_signature', detail: expect.stringMatching(/whole seconds/) });
  });

  it("replay id: the same for a resend, new for Slack's retry (new timestamp)", () => {
    const at = nowSeconds();
    const a = check(slack, signed(PAYLOAD, at), PAYLOAD, [SECRET]);
    const b = check(slack, signed(PAYLOAD, at), PAYLOAD, [SECRET]);
    const retry = check(slack, signed(PAYLOAD, at + 1), PAYLOAD, [SECRET]);
    expect(a.ok && b.ok && retry.ok).toBe(true);
    expect((a as { replayId: string }).replayId).toBe((b as { replayId: string }).replayId);
    expect((a as { replayId: string }).replayId).not.toBe((retry as { replayId: string }).replayId);
  });
});

describe('Shopify (signed by @shopify/shopify-api getHmac, checked by its webhooks.validate)', () => {
  const SECRET = `shpss_${randomBytes(16).toString('hex')}`;
  const NEXT = `shpss_${randomBytes(16).toString('hex')}`;
  const shopify = schemeOf({ scheme: 'shopify', secrets: ['shopify-signing'] });
  const api = shopifyApi({ apiKey: 'key', apiSecretKey: SECRET, apiVersion: ApiVersion.January25, hostName: 'app.example.com', isEmbeddedApp: false, logger: { level: LogSeverity.Error } });
  const headersFor = (body: string, id: string = crypto.randomUUID(), secret = SECRET) => ({
    'x-shopify-hmac-sha256': getHmac(body, secret),
    'x-shopify-webhook-id': id,
    'x-shopify-topic': 'orders/create',
    'x-shopify-shop-domain': 'shop.myshopify.com',
    'x-shopify-api-version': '2025-01',
  });
  const sdkValid = async (body: string, headers: Record<string, string>) =>
    (await api.webhooks.validate({ rawBody: body, rawRequest: new Request('https://app.example.com/hooks', { method: 'POST', body, headers }), rawResponse: new Response() })).valid;

  it('verifies what the SDK verifies; the SDK refuses what keygate refuses', async () => {
    const headers = headersFor(PAYLOAD);
    expect(await sdkValid(PAYLOAD, headers)).toBe(true);
    expect(check(shopify, headers, PAYLOAD, [SECRET])).toMatchObject({ ok: true, matched: 0 });
    expect(check(shopify, headers, PAYLOAD, [NEXT, SECRET])).toMatchObject({ ok: true, matched: 1 });
    expect(await sdkValid(`${PAYLOAD} `, headers)).toBe(false);
    expect(check(shopify, headers, `${PAYLOAD} `, [SECRET])).toMatchObject({ ok: false, problem: 'invalid_signature' });
    expect(check(shopify, headersFor(PAYLOAD, undefined, NEXT), PAYLOAD, [SECRET])).toMatchObject({ ok: false, problem: 'invalid_signature' });
  });

  it("Shopify's newer event headers (Shopify-Hmac-Sha256, Shopify-Webhook-Id) too", async () => {
    const body = JSON.stringify({ handle: 'h', action: 'create' });
    const headers = { 'shopify-hmac-sha256': getHmac(body, SECRET), 'shopify-webhook-id': 'w-1', 'shopify-topic': 'orders/create', 'shopify-shop-domain': 's.myshopify.com', 'shopify-api-version': '2025-01', 'shopify-handle': 'h', 'shopify-action': 'create', 'shopify-triggered-at': new Date().toISOString() };
    expect(await sdkValid(body, headers)).toBe(true);
    expect(check(shopify, headers, body, [SECRET])).toMatchObject({ ok: true });
  });

  it('missing and malformed headers; the webhook id is needed only for replay protection', () => {
    const headers = headersFor(PAYLOAD);
    expect(check(shopify, {}, PAYLOAD, [SECRET])).toMatchObject({ problem: 'missing_signature', detail: expect.stringContaining('X-Shopify-Hmac-Sha256') });
    expect(check(shopify, { ...headers, 'x-shopify-hmac-sha256': headers['x-shopify-hmac-sha256'].slice(1) }, PAYLOAD, [SECRET])).toMatchObject({ problem: 'invalid_signature' });
    expect(check(shopify, { ...headers, 'x-shopify-hmac-sha256': createHmac('sha256', SECRET).update(PAYLOAD).digest('hex') }, PAYLOAD, [SECRET])).toMatchObject({ problem: 'invalid_signature', detail: expect.stringMatching(/base64/) });
    const { 'x-shopify-webhook-id': _, ...noId } = headers;
    expect(check(shopify, noId, PAYLOAD, [SECRET])).toMatchObject({ problem: 'missing_signature', detail: expect.stringMatching(/X-Shopify-Webhook-Id .*replay/) });
    const unprotected = schemeOf({ scheme: 'shopify', secrets: ['shopify-signing'], replay: false });
    expect(check(unprotected, noId, PAYLOAD, [SECRET], { replay: false })).toMatchObject({ ok: true });
  });

  it('replay id: the webhook id with the body — a resend is the same, another webhook with the same body is not', () => {
    const replayOf = (headers: Record<string, string>, body = PAYLOAD) => (check(shopify, headers, body, [SECRET]) as { replayId: string }).replayId;
    const id = crypto.randomUUID();
    expect(replayOf(headersFor(PAYLOAD, id))).toBe(replayOf(headersFor(PAYLOAD, id)));
    expect(replayOf(headersFor(PAYLOAD, id))).not.toBe(replayOf(headersFor(PAYLOAD, crypto.randomUUID())));
    expect(replayOf(headersFor(PAYLOAD, id))).not.toBe(replayOf(headersFor(`${PAYLOAD} `, id), `${PAYLOAD} `));
  });
});

describe('Twilio (signed by the twilio package, getExpectedTwilioSignature)', () => {
  const TOKEN = randomBytes(16).toString('hex');
  const NEXT = randomBytes(16).toString('hex');
  const PUBLIC = 'https://hooks.example.com/twilio';
  const twilioRoute = schemeOf({ scheme: 'twilio', secrets: ['twilio-token'], publicUrl: `${PUBLIC}/` }, '/hooks/twilio');
  const FORM = { CallSid: 'CA1234567890abcdef', From: '+15551230000', To: '+15559870000', Body: 'Hi ✓ & "you" + 100%', AccountSid: 'AC1' };
  const formBody = (params: Record<string, string | string[]>) => {
    const form = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) for (const one of [v].flat()) form.append(k, one);
    return form.toString();
  };
  const FORM_HEADERS = { 'content-type': 'application/x-www-form-urlencoded' };

  it('a form POST: the URL (with its query) and the sorted parameters; the SDK agrees', () => {
    const url = `${PUBLIC}/sms?tenant=acme&x=%27q%27`;
    const signature = twilio.getExpectedTwilioSignature(TOKEN, url, FORM);
    expect(twilio.validateRequest(TOKEN, signature, url, FORM)).toBe(true);
    const headers = { ...FORM_HEADERS, 'x-twilio-signature': signature };
    expect(check(twilioRoute, headers, formBody(FORM), [TOKEN], { url: '/hooks/twilio/sms?tenant=acme&x=%27q%27' })).toMatchObject({ ok: true, matched: 0 });
    expect(check(twilioRoute, headers, formBody(FORM), [NEXT, TOKEN], { url: '/hooks/twilio/sms?tenant=acme&x=%27q%27' })).toMatchObject({ ok: true, matched: 1 });
    // The parameters in another order in the body are the same parameters.
    const reordered = formBody(Object.fromEntries(Object.entries(FORM).reverse()));
    expect(check(twilioRoute, headers, reordered, [TOKEN], { url: '/hooks/twilio/sms?tenant=acme&x=%27q%27' })).toMatchObject({ ok: true });
  });

  it('refuses another path, query, parameter value, extra parameter or token', () => {
    const url = `${PUBLIC}/sms?tenant=acme`;
    const headers = { ...FORM_HEADERS, 'x-twilio-signature': twilio.getExpectedTwilioSignature(TOKEN, url, FORM) };
    const body = formBody(FORM);
    expect(check(twilioRoute, headers, body, [TOKEN], { url: '/hooks/twilio/voice?tenant=acme' })).toMatchObject({ ok: false, problem: 'invalid_signature' });
    expect(check(twilioRoute, headers, body, [TOKEN], { url: '/hooks/twilio/sms?tenant=other' })).toMatchObject({ ok: false, problem: 'invalid_signature' });
    expect(check(twilioRoute, headers, formBody({ ...FORM, Body: 'Hi' }), [TOKEN], { url: '/hooks/twilio/sms?tenant=acme' })).toMatchObject({ ok: false, problem: 'invalid_signature' });
    expect(twilio.validateRequest(TOKEN, headers['x-twilio-signature'], url, { ...FORM, Extra: '1' })).toBe(false);
    expect(check(twilioRoute, headers, `${body}&Extra=1`, [TOKEN], { url: '/hooks/twilio/sms?tenant=acme' })).toMatchObject({ ok: false, problem: 'invalid_signature' });
    expect(check(twilioRoute, headers, body, [NEXT], { url: '/hooks/twilio/sms?tenant=acme' })).toMatchObject({ ok: false, problem: 'invalid_signature' });
    expect(check(twilioRoute, headers, body, [TOKEN], { url: '/elsewhere/sms?tenant=acme' })).toMatchObject({ ok: false, problem: 'invalid_signature', detail: expect.stringMatching(/pathPrefix/) });
  });

  it('repeated parameters, as the SDK concatenates them', () => {
    const params = { MediaUrl: ['https://b.example/2', 'https://a.example/1', 'https://a.example/1'], Body: 'x' };
    const url = `${PUBLIC}/mms`;
    const signature = twilio.getExpectedTwilioSignature(TOKEN, url, params);
    expect(check(twilioRoute, { ...FORM_HEADERS, 'x-twilio-signature': signature }, formBody(params), [TOKEN], { url: '/hooks/twilio/mms' })).toMatchObject({ ok: true });
    expect(twilioParams(new URLSearchParams('b=2&a=1&b=1'))).toBe('a1b1b2');
  });

  it('a URL signed with or without its default port (as the SDK accepts)', () => {
    const body = formBody(FORM);
    for (const signedUrl of ['https://hooks.example.com:443/twilio/sms', 'https://hooks.example.com/twilio/sms']) {
      const headers = { ...FORM_HEADERS, 'x-twilio-signature': twilio.getExpectedTwilioSignature(TOKEN, signedUrl, FORM) };
      expect(twilio.validateRequest(TOKEN, headers['x-twilio-signature'], `${PUBLIC}/sms`, FORM)).toBe(true);
      expect(check(twilioRoute, headers, body, [TOKEN], { url: '/hooks/twilio/sms' })).toMatchObject({ ok: true });
    }
  });

  it('a JSON body through bodySHA256 (validateRequestWithBody): the URL is signed, the body must hash to it', () => {
    const json = JSON.stringify({ event: 'status', sid: 'SM1' });
    const hash = createHash('sha256').update(json).digest('hex');
    const target = `/hooks/twilio/events?bodySHA256=${hash}`;
    const url = `${PUBLIC}/events?bodySHA256=${hash}`;
    const signature = twilio.getExpectedTwilioSignature(TOKEN, url, {});
    expect(twilio.validateRequestWithBody(TOKEN, signature, url, json)).toBe(true);
    const headers = { 'content-type': 'application/json', 'x-twilio-signature': signature };
    expect(check(twilioRoute, headers, json, [TOKEN], { url: target })).toMatchObject({ ok: true });
    const other = JSON.stringify({ event: 'status', sid: 'SM2' });
    expect(twilio.validateRequestWithBody(TOKEN, signature, url, other)).toBe(false);
    expect(check(twilioRoute, headers, other, [TOKEN], { url: target })).toMatchObject({ ok: false, problem: 'invalid_signature', detail: expect.stringMatching(/bodySHA256/) });
  });

  it('a JSON (or any non-form) body without bodySHA256 is refused: nothing would cover it', () => {
    const json = JSON.stringify({ event: 'status' });
    const signature = twilio.getExpectedTwilioSignature(TOKEN, `${PUBLIC}/events`, {});
    expect(check(twilioRoute, { 'content-type': 'application/json', 'x-twilio-signature': signature }, json, [TOKEN], { url: '/hooks/twilio/events' })).toMatchObject({ ok: false, problem: 'invalid_signature', detail: expect.stringMatching(/only form parameters/) });
    // An empty body (a GET-style callback, parameters in the query) is the URL alone.
    expect(check(twilioRoute, { 'x-twilio-signature': signature }, '', [TOKEN], { url: '/hooks/twilio/events' })).toMatchObject({ ok: true });
  });

  it('SharedKey webhooks: HMAC-SHA-256 when X-Twilio-Webhooks-Signature-Settings says so', () => {
    const url = `${PUBLIC}/sms`;
    const signature = twilio.getExpectedTwilioSignature(TOKEN, url, FORM, 'HMAC_SHA256');
    const headers = { ...FORM_HEADERS, 'x-twilio-signature': signature, 'x-twilio-webhooks-signature-settings': 'key=webhooks_sharedkey_1,algorithm=HMAC_SHA256' };
    expect(check(twilioRoute, headers, formBody(FORM), [TOKEN], { url: '/hooks/twilio/sms' })).toMatchObject({ ok: true });
    expect(check(twilioRoute, { ...headers, 'x-twilio-webhooks-signature-settings': 'algorithm=HMAC_MD5' }, formBody(FORM), [TOKEN], { url: '/hooks/twilio/sms' })).toMatchObject({ ok: false, problem: 'invalid_signature' });
    const { 'x-twilio-webhooks-signature-settings': _, ...sha1 } = headers;
    expect(check(twilioRoute, sha1, formBody(FORM), [TOKEN], { url: '/hooks/twilio/sms' })).toMatchObject({ ok: false, problem: 'invalid_signature', detail: expect.stringMatching(/20-byte/) });
  });

  it('missing signature; replay id the same for the same parameters in any order', () => {
    expect(check(twilioRoute, FORM_HEADERS, formBody(FORM), [TOKEN], { url: '/hooks/twilio/sms' })).toMatchObject({ problem: 'missing_signature' });
    const headers = { ...FORM_HEADERS, 'x-twilio-signature': twilio.getExpectedTwilioSignature(TOKEN, `${PUBLIC}/sms`, FORM) };
    const a = check(twilioRoute, headers, formBody(FORM), [TOKEN], { url: '/hooks/twilio/sms' }) as { replayId: string };
    const b = check(twilioRoute, headers, formBody(Object.fromEntries(Object.entries(FORM).reverse())), [TOKEN], { url: '/hooks/twilio/sms' }) as { replayId: string };
    expect(a.replayId).toEqual(expect.any(String));
    expect(a.replayId).toBe(b.replayId);
  });

  it('pathPrefix "/" and a public URL with a base path', () => {
    const root = schemeOf({ scheme: 'twilio', secrets: ['t'], publicUrl: 'http://gw.example.com:8080/base' }, '/');
    const url = 'http://gw.example.com:8080/base/sms?a=1';
    const headers = { ...FORM_HEADERS, 'x-twilio-signature': twilio.getExpectedTwilioSignature(TOKEN, url, FORM) };
    expect(check(root, headers, formBody(FORM), [TOKEN], { url: '/sms?a=1' })).toMatchObject({ ok: true });
  });
});

describe('hmac: the generic scheme', () => {
  const SECRET = `s-${randomBytes(12).toString('hex')}`;
  const sign = (algorithm: string, text: string, encoding: 'hex' | 'base64' = 'hex', secret = SECRET) => createHmac(algorithm, secret).update(text).digest(encoding);

  it('GitHub-style: sha256=<hex> over the body (the same as @octokit/webhooks-methods)', () => {
    const scheme = schemeOf({ scheme: 'hmac', secrets: ['s'], hmac: { header: 'X-Signature', prefix: 'sha256=' } });
    expect(check(scheme, { 'x-signature': `sha256=${sign('sha256', PAYLOAD)}` }, PAYLOAD, [SECRET])).toMatchObject({ ok: true });
    expect(check(scheme, { 'x-signature': sign('sha256', PAYLOAD) }, PAYLOAD, [SECRET])).toMatchObject({ ok: false, problem: 'invalid_signature', detail: 'x-signature must be sha256=<hex HMAC-SHA256>' });
    expect(check(scheme, {}, PAYLOAD, [SECRET])).toMatchObject({ ok: false, problem: 'missing_signature', detail: 'the delivery has no x-signature header' });
    expect(check(scheme, { 'x-signature': `sha256=${sign('sha256', `${PAYLOAD}x`)}` }, PAYLOAD, [SECRET])).toMatchObject({ ok: false, problem: 'invalid_signature' });
  });

  it('sha1 and sha512, hex and base64', () => {
    for (const algorithm of ['sha1', 'sha256', 'sha512'] as const) {
      for (const encoding of ['hex', 'base64'] as const) {
        const scheme = schemeOf({ scheme: 'hmac', secrets: ['s'], hmac: { header: 'x-sig', algorithm, encoding } });
        expect(check(scheme, { 'x-sig': sign(algorithm, PAYLOAD, encoding) }, PAYLOAD, [SECRET]), `${algorithm} ${encoding}`).toMatchObject({ ok: true });
        const other = algorithm === 'sha512' ? 'sha256' : 'sha512';
        expect(check(scheme, { 'x-sig': sign(other, PAYLOAD, encoding) }, PAYLOAD, [SECRET])).toMatchObject({ ok: false, problem: 'invalid_signature' });
      }
    }
  });

  it('a signed timestamp and id in the payload template, the timestamp window, the replay id', () => {
    const scheme = schemeOf({ scheme: 'hmac', secrets: ['s'], hmac: { header: 'x-sig', encoding: 'base64', timestampHeader: 'x-ts', idHeader: 'x-id', payload: 'v1:{id}:{timestamp}:{body}:end' } });
    const at = nowSeconds();
    const headers = (id: string, ts: number, body = PAYLOAD) => ({ 'x-id': id, 'x-ts': String(ts), 'x-sig': sign('sha256', `v1:${id}:${ts}:${body}:end`, 'base64') });
    const ok = check(scheme, headers('d1', at), PAYLOAD, [SECRET]);
    expect(ok).toMatchObject({ ok: true });
    expect(check(scheme, { ...headers('d1', at), 'x-id': 'd2' }, PAYLOAD, [SECRET])).toMatchObject({ ok: false, problem: 'invalid_signature' });
    expect(check(scheme, { ...headers('d1', at), 'x-ts': String(at + 1) }, PAYLOAD, [SECRET])).toMatchObject({ ok: false, problem: 'invalid_signature' });
    expect(check(scheme, headers('d1', at - TOLERANCE - 5), PAYLOAD, [SECRET])).toMatchObject({ ok: false, problem: 'signature_expired' });
    const { 'x-ts': _, ...noTs } = headers('d1', at);
    expect(check(scheme, noTs, PAYLOAD, [SECRET])).toMatchObject({ ok: false, problem: 'missing_signature', detail: 'the delivery has no x-ts header' });
    expect((check(scheme, headers('d1', at), PAYLOAD, [SECRET]) as { replayId: string }).replayId).toBe((ok as { replayId: string }).replayId);
    expect((check(scheme, headers('d2', at), PAYLOAD, [SECRET]) as { replayId: string }).replayId).not.toBe((ok as { replayId: string }).replayId);
  });

  it('an unsigned delivery id (idHeader without {id}) is needed only with replay protection', () => {
    const scheme = schemeOf({ scheme: 'hmac', secrets: ['s'], hmac: { header: 'x-sig', idHeader: 'x-delivery' } });
    expect(check(scheme, { 'x-sig': sign('sha256', PAYLOAD) }, PAYLOAD, [SECRET])).toMatchObject({ ok: false, problem: 'missing_signature', detail: 'the delivery has no x-delivery header' });
    expect(check(scheme, { 'x-sig': sign('sha256', PAYLOAD), 'x-delivery': 'a' }, PAYLOAD, [SECRET])).toMatchObject({ ok: true });
    const off = schemeOf({ scheme: 'hmac', secrets: ['s'], replay: false, hmac: { header: 'x-sig', idHeader: 'x-delivery' } });
    expect(check(off, { 'x-sig': sign('sha256', PAYLOAD) }, PAYLOAD, [SECRET], { replay: false })).toMatchObject({ ok: true });
  });
});

describe('config: the new schemes', () => {
  const route = { name: 'hook', pathPrefix: '/hook', upstream: 'http://127.0.0.1:3000', auth: { required: false } };
  const problems = (webhook: Record<string, unknown>) => configProblems({ routes: [{ ...route, webhook }] });

  it('fills the hmac defaults and keeps publicUrl without a trailing slash', () => {
    const config = parseConfig({ routes: [{ ...route, webhook: { scheme: 'hmac', secrets: ['a'], hmac: { header: 'X-Sig' } } }, { ...route, name: 't', pathPrefix: '/t', webhook: { scheme: 'twilio', secrets: ['b'], publicUrl: 'https://h.example.com/t/' } }] }, 'test.yaml');
    expect(config.routes[0]!.webhook!.hmac).toEqual({ header: 'x-sig', algorithm: 'sha256', encoding: 'hex', prefix: '', payload: '{body}' });
    expect(config.routes[1]!.webhook!.publicUrl).toBe('https://h.example.com/t');
  });

  it('twilio needs publicUrl, an absolute http(s) URL without query; no other scheme takes one', () => {
    expect(problems({ scheme: 'twilio', secrets: ['a'] })).toEqual([expect.stringMatching(/^routes\[0\]\.webhook\.publicUrl: is required for scheme twilio/)]);
    expect(problems({ scheme: 'twilio', secrets: ['a'], publicUrl: '/hooks/twilio' })).toEqual(['routes[0].webhook.publicUrl: must be an absolute URL (https://host/path)']);
    expect(problems({ scheme: 'twilio', secrets: ['a'], publicUrl: 'ftp://h.example.com/x' })).toEqual(['routes[0].webhook.publicUrl: must be an http:// or https:// URL']);
    expect(problems({ scheme: 'twilio', secrets: ['a'], publicUrl: 'https://h.example.com/x?y=1' })[0]).toMatch(/^routes\[0\]\.webhook\.publicUrl: must not have a query/);
    expect(problems({ scheme: 'twilio', secrets: ['a'], publicUrl: 'https://u:p@h.example.com/x' })).toEqual(['routes[0].webhook.publicUrl: must not contain credentials']);
    expect(problems({ scheme: 'slack', secrets: ['a'], publicUrl: 'https://h.example.com/x' })).toEqual(['routes[0].webhook.publicUrl: only applies to scheme twilio']);
  });

  it('hmac needs its section, and refuses bad fields by name', () => {
    expect(problems({ scheme: 'hmac', secrets: ['a'] })).toEqual([expect.stringMatching(/^routes\[0\]\.webhook\.hmac: is required for scheme hmac/)]);
    expect(problems({ scheme: 'github', secrets: ['a'], hmac: { header: 'x' } })).toEqual(['routes[0].webhook.hmac: only applies to scheme hmac']);
    const hmac = (h: Record<string, unknown>) => problems({ scheme: 'hmac', secrets: ['a'], hmac: { header: 'x-sig', ...h } });
    expect(hmac({ header: 'x sig' })[0]).toMatch(/^routes\[0\]\.webhook\.hmac\.header: must be an HTTP header name/);
    expect(hmac({ algorithm: 'md5' })).toEqual(['routes[0].webhook.hmac.algorithm: must be one of sha1, sha256, sha512']);
    expect(hmac({ encoding: 'base32' })).toEqual(['routes[0].webhook.hmac.encoding: must be one of hex, base64']);
    expect(hmac({ payload: '{timestamp}.body' })).toEqual(['routes[0].webhook.hmac.payload: must contain {body} exactly once', 'routes[0].webhook.hmac.timestampHeader: is required when payload contains {timestamp}']);
    expect(hmac({ payload: '{body}{body}' })).toEqual(['routes[0].webhook.hmac.payload: must contain {body} exactly once']);
    expect(hmac({ payload: '{ts}.{body}' })).toEqual(['routes[0].webhook.hmac.payload: unknown placeholder {ts} (only {body}, {timestamp} and {id})']);
    expect(hmac({ timestampHeader: 'x-ts' })).toEqual(['routes[0].webhook.hmac.payload: must contain {timestamp} when timestampHeader is set (an unsigned timestamp protects nothing)']);
    expect(hmac({ payload: '{id}.{body}' })).toEqual(['routes[0].webhook.hmac.idHeader: is required when payload contains {id}']);
    expect(hmac({ secret: 'x' })).toEqual(['routes[0].webhook.hmac: unknown field "secret"']);
  });
});

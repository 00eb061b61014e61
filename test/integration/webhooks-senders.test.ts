/**
 * Slack, Shopify, Twilio and generic hmac routes end to end (issue 24): deliveries signed as
 * each sender's SDK signs (twilio's getExpectedTwilioSignature, @shopify/shopify-api's
 * getHmac, Slack's documented v0 signature checked by @slack/bolt's verifySlackRequest)
 * go through keygate to an upstream that hashes what it receives: a verified delivery
 * arrives byte-identical with `x-webhook-verified`; a bad one is refused with its code and
 * the upstream sees nothing; a repeated delivery is 409 replayed_delivery. Signing secrets
 * come from the vault (SecretService, test master key) and never appear in a response.
 */
import { createHash, createHmac, randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { getHmac } from '@shopify/shopify-api/test-helpers';
import { verifySlackRequest } from '@slack/bolt';
import twilio from 'twilio';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RawConfig } from '../../src/config/schema.ts';
import { CLI_CALLER } from '../../src/keys/service.ts';
import { expectProblem, rawRequest, type RawResponse } from '../helpers/http.ts';
import { startTestKeygate, type TestKeygate } from '../helpers/keygate.ts';
import { startUpstream, type TestUpstream } from '../helpers/upstream.ts';

const MASTER_KEY = randomBytes(32).toString('base64');
const SECRETS = {
  'slack-1': randomBytes(16).toString('hex'),
  'shopify-1': `shpss_${randomBytes(16).toString('hex')}`,
  'twilio-1': randomBytes(16).toString('hex'),
  'acme-1': `acme-${randomBytes(16).toString('hex')}`,
};
const PUBLIC_TWILIO = 'https://hooks.example.com/hooks/twilio';

interface Got {
  url: string;
  headers: IncomingMessage['headers'];
  sha256: string;
}
const got: Got[] = [];

function hashingUpstream(req: IncomingMessage, res: ServerResponse): void {
  const hash = createHash('sha256');
  const entry: Got = { url: req.url ?? '', headers: req.headers, sha256: '' };
  got.push(entry);
  req.on('data', (chunk: Buffer) => hash.update(chunk));
  req.on('end', () => {
    entry.sha256 = hash.digest('hex');
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ sha256: entry.sha256 }));
  });
}

const sha = (body: string | Buffer) => createHash('sha256').update(body).digest('hex');
const now = () => Math.floor(Date.now() / 1000);
const event = () => JSON.stringify({ id: `evt_${randomBytes(6).toString('hex')}`, data: { note: 'ü ✓ "q"\r\n' } });

function slackHeaders(body: string, at = now()): Record<string, string> {
  const signature = `v0=${createHmac('sha256', SECRETS['slack-1']).update(`v0:${at}:${body}`).digest('hex')}`;
  // The SDK's verifier accepts exactly this (it throws otherwise).
  verifySlackRequest({ signingSecret: SECRETS['slack-1'], body, headers: { 'x-slack-request-timestamp': at, 'x-slack-signature': signature }, nowMilliseconds: at * 1000 });
  return { 'x-slack-request-timestamp': String(at), 'x-slack-signature': signature, 'content-type': 'application/json' };
}

function shopifyHeaders(body: string, id: string = crypto.randomUUID()): Record<string, string> {
  return { 'x-shopify-hmac-sha256': getHmac(body, SECRETS['shopify-1']), 'x-shopify-webhook-id': id, 'x-shopify-topic': 'orders/create', 'content-type': 'application/json' };
}

const routes = (upstream: string): RawConfig['routes'] => [
  { name: 'slack', pathPrefix: '/hooks/slack', upstream, auth: { required: false }, webhook: { scheme: 'slack', secrets: ['slack-1'] } },
  { name: 'shopify', pathPrefix: '/hooks/shopify', upstream, auth: { required: false }, webhook: { scheme: 'shopify', secrets: ['shopify-1'], toleranceSeconds: 3600 } },
  { name: 'twilio', pathPrefix: '/hooks/twilio', upstream, auth: { required: false }, webhook: { scheme: 'twilio', secrets: ['twilio-1'], publicUrl: PUBLIC_TWILIO } },
  {
    name: 'acme',
    pathPrefix: '/hooks/acme',
    upstream,
    auth: { required: false },
    webhook: { scheme: 'hmac', secrets: ['acme-1'], hmac: { header: 'X-Acme-Signature', prefix: 'sha512=', algorithm: 'sha512', encoding: 'base64', timestampHeader: 'X-Acme-Timestamp', idHeader: 'X-Acme-Delivery', payload: '{id}.{timestamp}.{body}' } },
  },
];

let up: TestUpstream;
let t: TestKeygate;
const responses: RawResponse[] = [];

async function deliver(path: string, body: string, headers: Record<string, string>): Promise<{ res: RawResponse; upstream: Got | undefined }> {
  const before = got.length;
  const res = await rawRequest(t.url, { method: 'POST', path, headers, body });
  responses.push(res);
  return { res, upstream: got.length > before ? got[got.length - 1] : undefined };
}


beforeAll(async () => {
  up = await startUpstream(hashingUpstream);
  t = await startTestKeygate({ routes: routes(up.url) }, { KEYGATE_MASTER_KEY: MASTER_KEY });
  for (const [id, value] of Object.entries(SECRETS)) await t.keygate.secrets.add(CLI_CALLER, { id, name: `${id} signing secret`, value });
});

afterAll(async () => {
  await t?.stop();
  await up?.close();
});

describe('Slack', () => {
  it('a signed delivery reaches the upstream byte-identical; a resend is 409; a tampered or stale one 401', async () => {
    const body = event();
    const headers = slackHeaders(body);
    const ok = await deliver('/hooks/slack/events', body, headers);
    expect(ok.res.status, ok.res.body).toBe(200);
    expect(ok.res.json).toEqual({ sha256: sha(body) });
    expect(ok.upstream!.headers['x-webhook-verified']).toBe('slack;secret="slack-1"');
    expect(ok.upstream!.headers['x-slack-signature']).toBe(headers['x-slack-signature']);
    const again = await deliver('/hooks/slack/events', body, headers);
    expectProblem(again.res, 409, 'replayed_delivery');
    expect(again.upstream).toBeUndefined();
    // Slack's retry: same body, new timestamp and signature.
    expect((await deliver('/hooks/slack/events', body, { ...slackHeaders(body, now() + 1), 'x-slack-retry-num': '1' })).res.status).toBe(200);
    const tampered = await deliver('/hooks/slack/events', `${body} `, slackHeaders(body));
    expectProblem(tampered.res, 401, 'invalid_signature');
    expect(tampered.upstream).toBeUndefined();
    expectProblem((await deliver('/hooks/slack/events', body, slackHeaders(body, now() - 301))).res, 401, 'signature_expired');
    expectProblem((await deliver('/hooks/slack/events', body, { 'content-type': 'application/json' })).res, 401, 'missing_signature');
  });
});

describe('Shopify', () => {
  it('verified and forwarded; the same webhook id and body again is 409; another webhook with the same body passes', async () => {
    const body = event();
    const id = crypto.randomUUID();
    const ok = await deliver('/hooks/shopify', body, shopifyHeaders(body, id));
    expect(ok.res.status, ok.res.body).toBe(200);
    expect(ok.res.json).toEqual({ sha256: sha(body) });
    expect(ok.upstream!.headers['x-webhook-verified']).toBe('shopify;secret="shopify-1"');
    const again = await deliver('/hooks/shopify', body, shopifyHeaders(body, id));
    expectProblem(again.res, 409, 'replayed_delivery');
    expect(again.upstream).toBeUndefined();
    expect((await deliver('/hooks/shopify', body, shopifyHeaders(body))).res.status).toBe(200);
    expectProblem((await deliver('/hooks/shopify', `${body}x`, shopifyHeaders(body))).res, 401, 'invalid_signature');
    const { 'x-shopify-webhook-id': _, ...noId } = shopifyHeaders(body);
    expectProblem((await deliver('/hooks/shopify', body, noId)).res, 401, 'missing_signature');
  });
});

describe('Twilio', () => {
  const params = { AccountSid: 'AC1', MessageSid: `SM${randomBytes(8).toString('hex')}`, From: '+15551230000', Body: 'Hi ✓ & 100% "you"' };
  const form = new URLSearchParams(params).toString();

  it('a form POST signed over publicUrl + path + query + sorted parameters: forwarded as sent; a resend is 409', async () => {
    const signature = twilio.getExpectedTwilioSignature(SECRETS['twilio-1'], `${PUBLIC_TWILIO}/sms?tenant=acme`, params);
    const headers = { 'content-type': 'application/x-www-form-urlencoded', 'x-twilio-signature': signature };
    const ok = await deliver('/hooks/twilio/sms?tenant=acme', form, headers);
    expect(ok.res.status, ok.res.body).toBe(200);
    expect(ok.res.json).toEqual({ sha256: sha(form) });
    expect(ok.upstream!.url).toBe('/hooks/twilio/sms?tenant=acme');
    expect(ok.upstream!.headers['x-webhook-verified']).toBe('twilio;secret="twilio-1"');
    expectProblem((await deliver('/hooks/twilio/sms?tenant=acme', form, headers)).res, 409, 'replayed_delivery');
    const elsewhere = await deliver('/hooks/twilio/voice?tenant=acme', form, headers);
    expectProblem(elsewhere.res, 401, 'invalid_signature');
    expect(elsewhere.upstream).toBeUndefined();
  });

  it('a JSON body through bodySHA256 (validateRequestWithBody); a body that does not hash to it is 401', async () => {
    const json = event();
    const path = `/hooks/twilio/events?bodySHA256=${sha(json)}`;
    const signature = twilio.getExpectedTwilioSignature(SECRETS['twilio-1'], `${PUBLIC_TWILIO}/events?bodySHA256=${sha(json)}`, {});
    expect(twilio.validateRequestWithBody(SECRETS['twilio-1'], signature, `${PUBLIC_TWILIO}/events?bodySHA256=${sha(json)}`, json)).toBe(true);
    const headers = { 'content-type': 'application/json', 'x-twilio-signature': signature };
    const ok = await deliver(path, json, headers);
    expect(ok.res.status, ok.res.body).toBe(200);
    expect(ok.res.json).toEqual({ sha256: sha(json) });
    const swapped = await deliver(path, event(), headers);
    expectProblem(swapped.res, 401, 'invalid_signature');
    expect(swapped.res.json.detail).toMatch(/bodySHA256/);
    expect(swapped.upstream).toBeUndefined();
  });
});

describe('hmac (generic)', () => {
  const sign = (id: string, at: number, body: string) => ({
    'x-acme-delivery': id,
    'x-acme-timestamp': String(at),
    'x-acme-signature': `sha512=${createHmac('sha512', SECRETS['acme-1']).update(`${id}.${at}.${body}`).digest('base64')}`,
    'content-type': 'application/json',
  });

  it('configured header, prefix, algorithm, encoding, timestamp and id: forwarded; a resend is 409; a changed id is 401', async () => {
    const body = event();
    const headers = sign('d-1', now(), body);
    const ok = await deliver('/hooks/acme', body, headers);
    expect(ok.res.status, ok.res.body).toBe(200);
    expect(ok.upstream!.headers['x-webhook-verified']).toBe('hmac;secret="acme-1"');
    expectProblem((await deliver('/hooks/acme', body, headers)).res, 409, 'replayed_delivery');
    expectProblem((await deliver('/hooks/acme', body, { ...headers, 'x-acme-delivery': 'd-2' })).res, 401, 'invalid_signature');
    expectProblem((await deliver('/hooks/acme', body, sign('d-3', now() - 400, body))).res, 401, 'signature_expired');
  });
});

describe('secrets', () => {
  it('never appear in a response or the log', () => {
    const text = responses.map((r) => JSON.stringify(r.headers) + r.body).join('\n') + t.logs();
    for (const value of Object.values(SECRETS)) expect(text).not.toContain(value);
  });
});

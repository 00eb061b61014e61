/**
 * Notifications end to end: keygate started with a real notifier (as `keygate serve` wires
 * it), an SMTP server (smtp-server, no TLS, no login) and a webhook receiver that verifies
 * every request with the reference Standard Webhooks library. Actions taken through the
 * admin API (create, revoke, rotate) and the sweeper (expiry reminder) each reach both
 * destinations once, naming tenant, name, display prefix and who acted, never the key; and
 * a slow webhook receiver never slows the admin API down.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { CLI_CALLER } from '../../src/keys/service.ts';
import { createNotifier, type Notifier } from '../../src/events/notifications/notifier.ts';
import { adminClient, type AdminClient, type AdminTestKeygate, mayCarryKey, replies, startAdminKeygate } from '../helpers/admin.ts';
import { decodeMail, startMailServer, type Mail, type MailServer } from '../helpers/mail.ts';
import { testHasher } from '../helpers/pepper.ts';

const WEBHOOK_SECRET = `whsec_${randomBytes(32).toString('base64')}`;
const SECRET_ENV = 'KG_ADMIN_NOTIFY_WEBHOOK_SECRET';
const PATH_TOKEN = `hook-${randomBytes(6).toString('hex')}`;
const ENV = { [SECRET_ENV]: WEBHOOK_SECRET };

// ---------------------------------------------------------------------------------------------
// SMTP: no TLS, no login; keeps every raw message.

const mails: Mail[] = [];
let smtp: MailServer | undefined;

// ---------------------------------------------------------------------------------------------
// Webhooks: verified with standardwebhooks; can be made slow.

interface Hook {
  headers: Record<string, string>;
  body: string;
  verified: boolean;
  payload: any;
  receivedAt: number;
  answeredAt: number | null;
}

const hooks: Hook[] = [];
let hookDelayMs = 0;
let receiver: Server | undefined;
let receiverUrl: string;

// ---------------------------------------------------------------------------------------------

let keygate: AdminTestKeygate;
let notifier: Notifier | undefined;
let root: AdminClient;
let rootId: string;
const fullKeys: string[] = [];

beforeAll(async () => {
  smtp = await startMailServer(mails);
  const smtpPort = smtp.port;

  const verifier = new Webhook(WEBHOOK_SECRET);
  receiver = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, String(v)]));
    const hook: Hook = { headers, body, verified: false, payload: undefined, receivedAt: Date.now(), answeredAt: null };
    try {
      hook.payload = verifier.verify(body, headers);
      hook.verified = true;
    } catch {
      hook.verified = false;
    }
    hooks.push(hook);
    if (hookDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, hookDelayMs));
    res.writeHead(hook.verified ? 204 : 401).end();
    hook.answeredAt = Date.now();
  });
  receiver.listen(0, '127.0.0.1');
  await once(receiver, 'listening');
  receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks/${PATH_TOKEN}`;

  keygate = await startAdminKeygate(
    {
      notifications: {
        email: {
          smtp: { host: '127.0.0.1', port: smtpPort, timeoutMs: 3000 },
          from: 'Keygate <keygate@example.com>',
          to: ['platform-admins@example.com'],
        },
        webhooks: [{ url: receiverUrl, secretEnv: SECRET_ENV, timeoutMs: 5000 }],
        retry: { attempts: 3, baseDelayMs: 10, maxDelayMs: 50 },
      },
      lifecycle: { sweepMs: 3_600_000 },
    },
    ENV,
    {
      notify: (config, logger) => {
        notifier = createNotifier({ config: config.notifications, env: ENV, logger });
        return notifier.notify;
      },
    },
  );
  const created = await keygate.keygate.service.create(CLI_CALLER, { tenant: 'system', role: 'admin', name: 'root' });
  fullKeys.push(created.key);
  rootId = created.record.id;
  root = adminClient(keygate.adminUrl, created.key);
});

afterAll(async () => {
  await keygate?.stop().catch(() => {});
  await notifier?.flush(3000);
  await notifier?.close();
  if (receiver) {
    receiver.closeAllConnections();
    await new Promise<void>((resolve) => receiver!.close(() => resolve()));
  }
  await smtp?.close();
});

beforeEach(async () => {
  await notifier!.flush(5000);
  mails.length = 0;
  hooks.length = 0;
  hookDelayMs = 0;
});

async function createKey(body: Record<string, unknown>): Promise<{ key: string; id: string; record: any }> {
  const res = await root.post('/v1/keys', body);
  expect(res.status, res.text).toBe(201);
  fullKeys.push(res.json.key);
  return { key: res.json.key, id: res.json.id, record: res.json };
}

/** A key whose own key.created notifications have been delivered and cleared, for tests of what comes next. */
async function createKeyQuietly(body: Record<string, unknown>): Promise<{ key: string; id: string; record: any }> {
  const created = await createKey(body);
  await delivered();
  mails.length = 0;
  hooks.length = 0;
  return created;
}

/** Rotates key `id` as the root key (201 expected); the successor's full key joins `fullKeys`. Returns the answer's body. */
async function rotate(id: string, overlapSeconds: number): Promise<any> {
  const res = await root.post(`/v1/keys/${id}/rotate`, { overlapSeconds });
  expect(res.status, res.text).toBe(201);
  fullKeys.push(res.json.key);
  return res.json;
}

/** Everything delivered so far, once the notifier is idle: one email and one webhook per event. */
async function delivered(): Promise<{ mails: (Mail & ReturnType<typeof decodeMail>)[]; hooks: Hook[] }> {
  await notifier!.flush(5000);
  expect(notifier!.pending).toBe(0);
  return { mails: mails.map((m) => ({ ...m, ...decodeMail(m.raw) })), hooks: [...hooks] };
}

/** The email and the webhook of one event, each exactly once, agreeing on the event id. */
function pair(got: Awaited<ReturnType<typeof delivered>>, type: string, keyId: string) {
  const hooksOf = got.hooks.filter((h) => h.payload?.type === type && h.payload?.data?.target?.keyId === keyId);
  expect(hooksOf, `${type} webhooks for ${keyId}`).toHaveLength(1);
  const hook = hooksOf[0]!;
  expect(hook.verified).toBe(true);
  const eventId = hook.payload.data.id;
  expect(hook.headers['webhook-id']).toBe(eventId);
  const mailsOf = got.mails.filter((m) => m.headers.get('x-keygate-event-id') === eventId);
  expect(mailsOf, `${type} emails for ${keyId}`).toHaveLength(1);
  const mail = mailsOf[0]!;
  expect(mail.headers.get('x-keygate-event')).toBe(type);
  expect(mail.to).toEqual(['platform-admins@example.com']);
  expect(mail.from).toBe('keygate@example.com');
  return { hook, mail, data: hook.payload.data };
}

function expectNoKeys(texts: string[]): void {
  const hasher = testHasher;
  const all = texts.join('\n');
  for (const key of fullKeys) {
    expect(all.includes(key)).toBe(false);
    expect(all.includes(key.slice(-64))).toBe(false);
    expect(all.includes(hasher(key))).toBe(false);
  }
  expect(all).not.toMatch(/[0-9a-f]{64}/);
}

const everything = (got: Awaited<ReturnType<typeof delivered>>) => [
  ...got.mails.flatMap((m) => [m.raw, m.subject, m.text]),
  ...got.hooks.flatMap((h) => [h.body, JSON.stringify(h.headers)]),
];

describe('admin actions reach email and webhook', () => {
  it('create: one key.created naming tenant, name, display prefix and the acting key, never the key', async () => {
    const k = await createKey({ tenant: 'acme', name: 'ci-bot', permissions: ['read'] });
    const got = await delivered();
    expect(got.hooks).toHaveLength(1);
    expect(got.mails).toHaveLength(1);
    const { hook, mail, data } = pair(got, 'key.created', k.id);
    expect(hook.payload).toMatchObject({ type: 'key.created', timestamp: expect.any(String) });
    expect(data).toEqual({
      id: expect.stringMatching(/^evt_/),
      type: 'key.created',
      at: expect.any(Number),
      actor: rootId,
      tenant: 'acme',
      target: { keyId: k.id, name: 'ci-bot', prefix: k.record.prefix, role: 'api-user', expiresAt: null },
    });
    expect(k.record.prefix).toMatch(/^kg_acme_[0-9a-f]+…$/);
    expect(mail.subject).toBe(`[keygate] Key created: 'ci-bot' (${k.record.prefix}) for tenant acme by ${rootId}`);
    expect(mail.text).toMatch(/Tenant:\s+acme\n/);
    expect(mail.text).toContain(`Prefix:     ${k.record.prefix}`);
    expect(mail.text).toContain(`Key id:     ${k.id}`);
    expect(mail.text).toContain(`Done by:    ${rootId}`);
    expectNoKeys(everything(got));
  });

  it('revoke: key.revoked by the acting key', async () => {
    const k = await createKeyQuietly({ tenant: 'acme', name: 'to-revoke' });
    const res = await root.post(`/v1/keys/${k.id}/revoke`);
    expect(res.status).toBe(200);
    const got = await delivered();
    expect(got.hooks.map((h) => h.payload?.type)).toEqual(['key.revoked']);
    const { data, mail } = pair(got, 'key.revoked', k.id);
    expect(data).toMatchObject({ actor: rootId, tenant: 'acme', target: { keyId: k.id, name: 'to-revoke', prefix: k.record.prefix } });
    expect(mail.subject).toBe(`[keygate] Key revoked: 'to-revoke' (${k.record.prefix}) in tenant acme by ${rootId}`);
    // Revoking again changes nothing, and tells no one.
    expect((await root.post(`/v1/keys/${k.id}/revoke`)).status).toBe(200);
    const again = await delivered();
    expect(again.hooks).toHaveLength(1);
    expect(again.mails).toHaveLength(1);
    expectNoKeys(everything(again));
  });

  it('rotate: key.rotated for the old key, key.created for its successor (and key.revoked with no overlap)', async () => {
    const k = await createKeyQuietly({ tenant: 'acme', name: 'to-rotate', permissions: ['read'] });
    const successor = await rotate(k.id, 0);
    const got = await delivered();
    expect(got.hooks.map((h) => h.payload?.type).sort()).toEqual(['key.created', 'key.revoked', 'key.rotated']);
    expect(got.mails).toHaveLength(3);
    const rotated = pair(got, 'key.rotated', k.id);
    expect(rotated.data).toMatchObject({ actor: rootId, tenant: 'acme', target: { keyId: k.id, name: 'to-rotate', prefix: k.record.prefix } });
    expect(rotated.mail.subject).toBe(`[keygate] Key rotated: 'to-rotate' (${k.record.prefix}) in tenant acme by ${rootId}`);
    const created = pair(got, 'key.created', successor.id);
    expect(created.data).toMatchObject({ actor: rootId, tenant: 'acme', target: { keyId: successor.id, name: 'to-rotate', prefix: successor.prefix } });
    expect(successor.prefix).not.toBe(k.record.prefix);
    pair(got, 'key.revoked', k.id);
    expectNoKeys(everything(got));
  });

  it('rotate with an overlap: key.rotated says when the old key stops working, and no key.revoked until the sweep', async () => {
    const k = await createKeyQuietly({ tenant: 'acme', name: 'to-rotate-later', permissions: ['read'] });
    const revokesAt = Date.parse((await rotate(k.id, 3600)).previous.revokesAt);
    const got = await delivered();
    expect(got.hooks.map((h) => h.payload?.type).sort()).toEqual(['key.created', 'key.rotated']);
    const rotated = pair(got, 'key.rotated', k.id);
    expect(rotated.data).toMatchObject({ target: { keyId: k.id, revokesAt } });
    expect(rotated.mail.text).toContain(`Stops at:   ${new Date(revokesAt).toISOString().replace(/\.000Z$/, 'Z')}`);
    expectNoKeys(everything(got));
  });

  it('expiry: a sweep sends one key.expiring reminder with its stage, from keygate itself', async () => {
    const k = await createKeyQuietly({ tenant: 'acme', name: 'expiring-soon', expires: '5d' });
    await keygate.keygate.jobs.sweep();
    await keygate.keygate.jobs.sweep();
    const got = await delivered();
    expect(got.hooks.map((h) => h.payload?.type)).toEqual(['key.expiring']);
    const { data, mail } = pair(got, 'key.expiring', k.id);
    expect(data).toMatchObject({ actor: null, tenant: 'acme', target: { keyId: k.id, name: 'expiring-soon', prefix: k.record.prefix, reminder: '7d', expiresAt: Date.parse(k.record.expiresAt) } });
    expect(mail.subject).toBe(`[keygate] Key expires in 5 days: 'expiring-soon' (${k.record.prefix}) in tenant acme`);
    expect(mail.text).toMatch(/By:\s+keygate \(automatic\)\n/);
    expectNoKeys(everything(got));
  });
});

describe('delivery never holds up the admin API', () => {
  it('answers create and revoke at once while the webhook receiver takes 2 s; both still arrive, once', async () => {
    hookDelayMs = 2000;
    const res = await root.post('/v1/keys', { tenant: 'acme', name: 'while-slow' });
    expect(res.status, res.text).toBe(201);
    fullKeys.push(res.json.key);
    expect(res.ms).toBeLessThan(500);
    const revoke = await root.post(`/v1/keys/${res.json.id}/revoke`);
    expect(revoke.status).toBe(200);
    expect(revoke.ms).toBeLessThan(500);
    // Nothing has been answered by the receiver yet: the admin requests did not wait for it.
    expect(hooks.every((h) => h.answeredAt === null)).toBe(true);
    expect(notifier!.pending).toBeGreaterThan(0);

    const got = await delivered();
    pair(got, 'key.created', res.json.id);
    pair(got, 'key.revoked', res.json.id);
    expect(got.hooks).toHaveLength(2); // slow, not failed: no retries
    for (const h of got.hooks) expect(h.answeredAt! - h.receivedAt).toBeGreaterThanOrEqual(1900);
    expectNoKeys(everything(got));
  });
});

describe('no key leaks', () => {
  it('no admin response after creation and no log line holds a full key; the log holds no secret or URL path', () => {
    expect(fullKeys.length).toBeGreaterThanOrEqual(6);
    for (const reply of replies) {
      let text = reply.text;
      if (mayCarryKey(reply)) {
        const { key, ...rest } = reply.json;
        expect(fullKeys).toContain(key);
        text = JSON.stringify(rest);
      }
      for (const key of fullKeys) expect(text.includes(key), `${reply.method} ${reply.url}`).toBe(false);
    }
    const logs = keygate.logs();
    expect(logs).toContain('notifications enabled');
    for (const key of fullKeys) expect(logs.includes(key)).toBe(false);
    expect(logs).not.toMatch(/kg_[a-z0-9-]+_[0-9a-f]{64}/);
    expect(logs).not.toContain(WEBHOOK_SECRET.slice(6));
    expect(logs).not.toContain(PATH_TOKEN);
  });
});

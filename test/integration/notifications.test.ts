/**
 * Notifications against real servers on 127.0.0.1: an SMTP server (smtp-server, with
 * authentication, no TLS) and HTTP webhook receivers that verify every request with the
 * reference Standard Webhooks library. Back-off is a few milliseconds so retries are quick.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { ConfigError } from '../../src/config/load.ts';
import { notificationsSchema, type RawNotificationsConfig } from '../../src/config/notifications.ts';
import { createNotifier, type Notifier } from '../../src/events/notifications/notifier.ts';
import type { KeygateEvent } from '../../src/events/types.ts';
import { generateKey } from '../../src/keys/format.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { decodeMail, startMailServer, type Mail, type MailServer } from '../helpers/mail.ts';

// ---------------------------------------------------------------------------------------------
// Fixtures

const FULL_KEY = generateKey('kg', 'acme');
const KEY_BODY = FULL_KEY.slice(-64);
const DISPLAY_PREFIX = `${FULL_KEY.slice(0, 12)}…`;
const WEBHOOK_SECRET = `whsec_${randomBytes(32).toString('base64')}`;
const SMTP_PASSWORD = `smtp-${randomBytes(12).toString('hex')}`;
const PATH_TOKEN = `path-token-${randomBytes(6).toString('hex')}`;
const ENV = { KG_TEST_WEBHOOK_SECRET: WEBHOOK_SECRET, KG_TEST_SMTP_PASSWORD: SMTP_PASSWORD };

let eventCounter = 0;
function keyEvent(type: KeygateEvent['type'] = 'key.created', overrides: Partial<KeygateEvent> = {}): KeygateEvent {
  eventCounter++;
  const event: KeygateEvent = {
    id: `evt_${randomBytes(12).toString('hex')}`,
    type,
    at: Date.now(),
    actor: 'key_5c0ffee5c0ffee5c0ffe',
    tenant: 'acme',
    target: { keyId: `key_${eventCounter.toString().padStart(20, '0')}`, name: 'ci-bot', prefix: DISPLAY_PREFIX, role: 'api-user', expiresAt: null },
    ...overrides,
  };
  // Smuggle the full key in at runtime, as a careless caller might: it must never be sent.
  return Object.assign(event, { key: FULL_KEY, target: Object.assign(event.target, { key: FULL_KEY, hash: KEY_BODY }) });
}

/** A logger that keeps every line (JSON) in memory. */
function memoryLogger() {
  const lines: string[] = [];
  const logger = createLogger({ level: 'debug', destination: { write: (line: string) => void lines.push(line) } });
  return { logger, lines, parsed: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

const notifiers: Notifier[] = [];
function notifier(raw: RawNotificationsConfig, logger = memoryLogger().logger, env: NodeJS.ProcessEnv = ENV): Notifier {
  const n = createNotifier({ config: notificationsSchema.parse(raw), env, logger });
  notifiers.push(n);
  return n;
}
const fast = { retry: { attempts: 5, baseDelayMs: 10, maxDelayMs: 50 } } as const;

afterEach(async () => {
  await Promise.all(notifiers.splice(0).map((n) => n.close()));
});

// ---------------------------------------------------------------------------------------------
// A webhook receiver that verifies each request with the standardwebhooks package.

interface Received {
  headers: Record<string, string>;
  body: string;
  verified: boolean;
  payload: any;
  status: number | 'hang';
}

interface Receiver {
  url: string;
  received: Received[];
  /** Statuses to answer with, in order; the last one repeats. 'hang' never answers. */
  script: (number | 'hang')[];
  close(): Promise<void>;
}

async function startReceiver(script: (number | 'hang')[], path = `/hooks/${PATH_TOKEN}`): Promise<Receiver> {
  const verifier = new Webhook(WEBHOOK_SECRET);
  const received: Received[] = [];
  const receiver = { script, received } as Receiver;
  const server: Server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, String(v)]));
    let verified = false;
    let payload: unknown;
    try {
      payload = verifier.verify(body, headers);
      verified = true;
    } catch {
      verified = false;
    }
    const status = receiver.script[Math.min(received.length, receiver.script.length - 1)]!;
    received.push({ headers, body, verified, payload, status });
    if (status === 'hang') return;
    res.writeHead(verified ? status : 401, { 'content-type': 'text/plain' }).end(verified ? 'ok' : 'bad signature');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  receiver.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}${path}`;
  receiver.close = async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return receiver;
}

// ---------------------------------------------------------------------------------------------
// An SMTP server that requires a login and keeps every message.

let smtp: MailServer;
let smtpPort: number;
const mails: Mail[] = [];

beforeAll(async () => {
  smtp = await startMailServer(mails, SMTP_PASSWORD);
  smtpPort = smtp.port;
});

afterAll(async () => {
  await smtp.close();
});

const emailConfig = (overrides: Record<string, unknown> = {}) => ({
  smtp: { host: '127.0.0.1', port: smtpPort, user: 'keygate', passwordEnv: 'KG_TEST_SMTP_PASSWORD', timeoutMs: 2000 },
  from: 'Keygate <keygate@example.com>',
  to: ['platform-admins@example.com', 'security@example.com'],
  ...overrides,
});

async function until(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

function expectNoKey(text: string): void {
  expect(text).not.toContain(FULL_KEY);
  expect(text).not.toContain(KEY_BODY);
  expect(text).not.toContain(KEY_BODY.slice(0, 32));
}

/** Every log line: no key, no secret, no URL path. */
function expectCleanLogs(lines: string[]): void {
  const all = lines.join('\n');
  expectNoKey(all);
  expect(all).not.toContain(WEBHOOK_SECRET);
  expect(all).not.toContain(WEBHOOK_SECRET.slice(6));
  expect(all).not.toContain(SMTP_PASSWORD);
  expect(all).not.toContain(PATH_TOKEN);
}

// ---------------------------------------------------------------------------------------------

describe('email over SMTP', () => {
  it('mails key.created to the admins, logged in, with who, tenant, name and prefix but never the key', async () => {
    const log = memoryLogger();
    const n = notifier({ email: emailConfig() }, log.logger);
    const event = keyEvent('key.created');
    mails.length = 0;
    n.notify(event);
    await n.flush(10_000);
    expect(n.pending).toBe(0);

    expect(mails).toHaveLength(1);
    const mail = mails[0]!;
    expect(mail.user).toBe('keygate');
    expect(mail.from).toBe('keygate@example.com');
    expect(mail.to).toEqual(['platform-admins@example.com', 'security@example.com']);
    const { headers, subject, text } = decodeMail(mail.raw);
    expect(subject).toBe(`[keygate] Key created: 'ci-bot' (${DISPLAY_PREFIX}) for tenant acme by key_5c0ffee5c0ffee5c0ffe`);
    expect(headers.get('x-keygate-event-id')).toBe(event.id);
    expect(text).toContain('A new API key was created.');
    expect(text).toMatch(/Tenant:\s+acme\n/);
    expect(text).toMatch(/Name:\s+ci-bot\n/);
    expect(text).toContain(`Prefix:     ${DISPLAY_PREFIX}`);
    expect(text).toContain(`Key id:     ${event.target.keyId}`);
    expect(text).toMatch(/Role:\s+api-user\n/);
    expect(text).toMatch(/Expires:\s+never\n/);
    expect(text).toMatch(/Done by:\s+key_5c0ffee5c0ffee5c0ffe\n/);
    expect(text).toContain(event.id);
    expectNoKey(mail.raw);
    expectNoKey(subject);
    expectNoKey(text);
    expectCleanLogs(log.lines);
  });

  it('writes an expiry reminder for a person, and sends each event type to email only if configured', async () => {
    const n = notifier({ events: ['key.expiring', 'key.revoked'], email: emailConfig({ subjectPrefix: '' }) });
    mails.length = 0;
    const at = Date.UTC(2030, 0, 1, 12);
    n.notify(keyEvent('key.expiring', { actor: null, at, target: { name: 'ci-bot', prefix: DISPLAY_PREFIX, keyId: 'key_00000000000000000001', expiresAt: at + 7 * 86_400_000, reminder: '7d' } }));
    n.notify(keyEvent('key.created')); // not in events: not sent
    await n.flush(10_000);
    expect(mails).toHaveLength(1);
    const { subject, text } = decodeMail(mails[0]!.raw);
    expect(subject).toBe(`Key expires in 7 days: 'ci-bot' (${DISPLAY_PREFIX}) in tenant acme`);
    expect(text).toContain('Expires:    2030-01-08T12:00:00Z');
    expect(text).toMatch(/By:\s+keygate \(automatic\)/);
  });

  it('does not retry a recipient the server refuses for good (550)', async () => {
    const log = memoryLogger();
    const n = notifier({ ...fast, email: emailConfig({ to: ['nobody@example.com'] }) }, log.logger);
    mails.length = 0;
    const event = keyEvent('key.revoked');
    n.notify(event);
    await n.flush(10_000);
    expect(mails).toHaveLength(0);
    const warnings = log.parsed().filter((l) => l.level === 'warn');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ event: event.id, eventType: 'key.revoked', destination: 'email', host: `127.0.0.1:${smtpPort}`, attempt: 1 });
    expect(String(warnings[0]!.msg)).toContain('not retried');
    expectCleanLogs(log.lines);
  });

  it('retries when the SMTP server cannot be reached, then gives up with a warning per attempt', async () => {
    const closed = createServer();
    closed.listen(0, '127.0.0.1');
    await once(closed, 'listening');
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));

    const log = memoryLogger();
    const n = notifier({ retry: { attempts: 3, baseDelayMs: 10, maxDelayMs: 20 }, email: emailConfig({ smtp: { host: '127.0.0.1', port, timeoutMs: 1000 } }) }, log.logger);
    const event = keyEvent('key.created');
    n.notify(event);
    await n.flush(10_000);
    const warnings = log.parsed().filter((l) => l.level === 'warn');
    expect(warnings.map((w) => w.attempt)).toEqual([1, 2, 3]);
    expect(String(warnings[2]!.msg)).toContain('giving up');
    for (const w of warnings) expect(w).toMatchObject({ event: event.id, eventType: 'key.created', host: `127.0.0.1:${port}` });
    expect(String(warnings[0]!.reason)).toContain('ECONNREFUSED');
    expectCleanLogs(log.lines);
  });
});

describe('signed webhooks', () => {
  let receivers: Receiver[] = [];
  const receiver = async (script: (number | 'hang')[]) => {
    const r = await startReceiver(script);
    receivers.push(r);
    return r;
  };
  afterEach(async () => {
    await Promise.all(notifiers.splice(0).map((n) => n.close()));
    await Promise.all(receivers.map((r) => r.close()));
    receivers = [];
  });

  it('retries 500, 500, then delivers exactly once: same webhook-id, a valid signature every time', async () => {
    const r = await receiver([500, 500, 200]);
    const log = memoryLogger();
    const n = notifier({ ...fast, webhooks: [{ url: r.url, secretEnv: 'KG_TEST_WEBHOOK_SECRET' }] }, log.logger);
    const event = keyEvent('key.created');
    n.notify(event);
    await n.flush(10_000);

    expect(r.received).toHaveLength(3);
    expect(r.received.map((x) => x.status)).toEqual([500, 500, 200]);
    for (const attempt of r.received) {
      expect(attempt.verified).toBe(true);
      expect(attempt.headers['webhook-id']).toBe(event.id);
      expect(attempt.headers['content-type']).toBe('application/json');
      expect(attempt.headers['webhook-signature']).toMatch(/^v1,[A-Za-z0-9+/]{43}=$/);
      expect(Math.abs(Number(attempt.headers['webhook-timestamp']) - Date.now() / 1000)).toBeLessThan(10);
      expectNoKey(attempt.body);
      expectNoKey(JSON.stringify(attempt.headers));
    }
    expect(new Set(r.received.map((x) => x.body)).size).toBe(1);
    expect(r.received[2]!.payload).toEqual({
      type: 'key.created',
      timestamp: new Date(event.at).toISOString(),
      data: {
        id: event.id,
        type: 'key.created',
        at: event.at,
        actor: 'key_5c0ffee5c0ffee5c0ffe',
        tenant: 'acme',
        target: { keyId: event.target.keyId, name: 'ci-bot', prefix: DISPLAY_PREFIX, role: 'api-user', expiresAt: null },
      },
    });

    const warnings = log.parsed().filter((l) => l.level === 'warn');
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toMatchObject({ event: event.id, eventType: 'key.created', destination: 'webhook', host: new URL(r.url).host, attempt: 1, reason: 'HTTP 500' });
    expect(warnings[1]).toMatchObject({ attempt: 2 });
    expectCleanLogs(log.lines);
  });

  it.each([400, 401, 404, 410])('does not retry a %i', async (status) => {
    const r = await receiver([status]);
    const log = memoryLogger();
    const n = notifier({ ...fast, webhooks: [{ url: r.url, secretEnv: 'KG_TEST_WEBHOOK_SECRET' }] }, log.logger);
    n.notify(keyEvent('key.revoked'));
    await n.flush(10_000);
    expect(r.received).toHaveLength(1);
    const warnings = log.parsed().filter((l) => l.level === 'warn');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ reason: `HTTP ${status}`, attempt: 1 });
    expect(String(warnings[0]!.msg)).toContain('not retried');
  });

  it('retries 408 and 429', async () => {
    const r = await receiver([408, 429, 204]);
    const n = notifier({ ...fast, webhooks: [{ url: r.url, secretEnv: 'KG_TEST_WEBHOOK_SECRET' }] });
    n.notify(keyEvent('key.revoked'));
    await n.flush(10_000);
    expect(r.received.map((x) => x.status)).toEqual([408, 429, 204]);
  });

  it('gives up after the configured attempts', async () => {
    const r = await receiver([503]);
    const log = memoryLogger();
    const n = notifier({ retry: { attempts: 3, baseDelayMs: 5, maxDelayMs: 10 }, webhooks: [{ url: r.url, secretEnv: 'KG_TEST_WEBHOOK_SECRET' }] }, log.logger);
    n.notify(keyEvent());
    await n.flush(10_000);
    expect(r.received).toHaveLength(3);
    const warnings = log.parsed().filter((l) => l.level === 'warn');
    expect(warnings).toHaveLength(3);
    expect(String(warnings[2]!.msg)).toContain('giving up');
  });

  it('notify() returns at once and never throws, even while the receiver hangs', async () => {
    const r = await receiver(['hang']);
    const log = memoryLogger();
    const n = notifier(
      { retry: { attempts: 2, baseDelayMs: 5, maxDelayMs: 5 }, webhooks: [{ url: r.url, secretEnv: 'KG_TEST_WEBHOOK_SECRET', timeoutMs: 300 }] },
      log.logger,
    );
    const started = performance.now();
    n.notify(keyEvent());
    const took = performance.now() - started;
    expect(took).toBeLessThan(20);
    expect(r.received).toHaveLength(0); // nothing is sent inside the caller's turn
    expect(n.pending).toBe(1);

    expect(() => n.notify(null as unknown as KeygateEvent)).not.toThrow();
    expect(() => n.notify({ id: 'evt_x' } as unknown as KeygateEvent)).not.toThrow();

    await n.flush(10_000);
    expect(r.received).toHaveLength(2);
    const warnings = log.parsed().filter((l) => l.level === 'warn');
    expect(warnings.map((w) => w.reason)).toEqual(['timed out after 300 ms', 'timed out after 300 ms']);
    expectCleanLogs(log.lines);
  });

  it('bounds the queue: drops and logs what does not fit, and close() ends what is in flight', async () => {
    const r = await receiver(['hang']);
    const log = memoryLogger();
    const n = notifier({ queue: { max: 3, concurrency: 1 }, webhooks: [{ url: r.url, secretEnv: 'KG_TEST_WEBHOOK_SECRET', timeoutMs: 30_000 }] }, log.logger);
    const events = Array.from({ length: 10 }, () => keyEvent());
    const started = performance.now();
    for (const e of events) n.notify(e);
    expect(performance.now() - started).toBeLessThan(50);
    expect(n.pending).toBe(3);
    const dropped = log.parsed().filter((l) => String(l.msg).includes('queue is full'));
    expect(dropped.map((d) => d.event)).toEqual(events.slice(3).map((e) => e.id));
    expect(dropped[0]).toMatchObject({ level: 'warn', eventType: 'key.created', host: new URL(r.url).host, queueMax: 3 });

    await until(() => r.received.length > 0);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(r.received).toHaveLength(1); // concurrency 1: one in flight, two waiting

    const closing = performance.now();
    await n.close();
    expect(performance.now() - closing).toBeLessThan(2000);
    expect(n.pending).toBe(0);
    const summary = log.parsed().find((l) => String(l.msg).includes('closed with deliveries pending'));
    expect(summary).toMatchObject({ level: 'warn', dropped: 2, interrupted: 1, events: [events[1]!.id, events[2]!.id] });
    expect(() => n.notify(keyEvent())).not.toThrow();
    expectCleanLogs(log.lines);
  });

  it('close() cancels retries that are waiting, and flush() gives up at its timeout', async () => {
    const r = await receiver([500]);
    const log = memoryLogger();
    const n = notifier({ retry: { attempts: 5, baseDelayMs: 60_000, maxDelayMs: 60_000 }, webhooks: [{ url: r.url, secretEnv: 'KG_TEST_WEBHOOK_SECRET' }] }, log.logger);
    n.notify(keyEvent());
    const started = performance.now();
    await n.flush(300);
    expect(performance.now() - started).toBeLessThan(1000);
    expect(r.received).toHaveLength(1);
    expect(n.pending).toBe(1);
    await n.close();
    expect(n.pending).toBe(0);
    expect(log.parsed().find((l) => String(l.msg).includes('closed with deliveries pending'))).toMatchObject({ dropped: 1, interrupted: 0 });
  });

  it('sends each destination only the event types it asked for, email and webhooks side by side', async () => {
    const all = await receiver([200]);
    const revokedOnly = await receiver([200]);
    const n = notifier({
      events: ['key.created', 'key.revoked', 'secret.created'],
      email: emailConfig({ events: ['secret.created'] }),
      webhooks: [
        { url: all.url, secretEnv: 'KG_TEST_WEBHOOK_SECRET' },
        { url: `${revokedOnly.url}?only=revoked`, secretEnv: 'KG_TEST_WEBHOOK_SECRET', events: ['key.revoked'] },
      ],
    });
    mails.length = 0;
    n.notify(keyEvent('key.created'));
    n.notify(keyEvent('key.revoked'));
    n.notify(keyEvent('key.expired')); // nobody asked for it
    n.notify({ id: 'evt_secret1', type: 'secret.created', at: Date.now(), actor: 'cli', tenant: 'system', target: { secretId: 'openai', name: 'OpenAI production' } });
    await n.flush(10_000);
    expect(all.received.map((x) => x.payload.type).sort()).toEqual(['key.created', 'key.revoked', 'secret.created']);
    expect(revokedOnly.received.map((x) => x.payload.type)).toEqual(['key.revoked']);
    expect(mails).toHaveLength(1);
    expect(decodeMail(mails[0]!.raw).subject).toBe("[keygate] Upstream secret created: 'OpenAI production' (openai) by the keygate command line");
  });
});

describe('secrets from the environment', () => {
  const config = (raw: RawNotificationsConfig) => notificationsSchema.parse(raw);
  const logger = memoryLogger().logger;

  it('refuses to start when a named variable is missing, naming the field and the variable', () => {
    let error: unknown;
    try {
      createNotifier({
        config: config({
          email: { smtp: { host: 'smtp.example.com', user: 'keygate', passwordEnv: 'KG_TEST_NO_SMTP_PASSWORD' }, from: 'k@example.com', to: ['a@example.com'] },
          webhooks: [
            { url: 'https://hooks.example.com/a', secretEnv: 'KG_TEST_WEBHOOK_SECRET' },
            { url: 'https://hooks.example.com/b', secretEnv: 'KG_TEST_NO_WEBHOOK_SECRET' },
          ],
        }),
        env: ENV,
        logger,
      });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).problems).toEqual([
      'notifications.email.smtp.passwordEnv: the environment variable KG_TEST_NO_SMTP_PASSWORD is not set (it must hold the SMTP password)',
      'notifications.webhooks[1].secretEnv: the environment variable KG_TEST_NO_WEBHOOK_SECRET is not set (it must hold the webhook signing secret, "whsec_<base64>")',
    ]);
  });

  it('refuses a webhook secret that is not "whsec_<base64>", without quoting it', () => {
    const bad = 'not-a-standard-webhooks-secret-value';
    const make = (value: string) => () =>
      createNotifier({ config: config({ webhooks: [{ url: 'https://hooks.example.com/a', secretEnv: 'HOOK' }] }), env: { HOOK: value }, logger });
    expect(make(bad)).toThrow(/notifications\.webhooks\[0\]\.secretEnv: the environment variable HOOK must hold a Standard Webhooks secret/);
    try {
      make(bad)();
    } catch (e) {
      expect((e as Error).message).not.toContain(bad);
    }
    expect(make(`whsec_${randomBytes(8).toString('base64')}`)).toThrow(/decodes to 8 bytes/);
    expect(make('whsec_!!!notbase64!!!')).toThrow(/not standard base64/);
    expect(make('')).toThrow(/HOOK is not set/);
  });

  it('needs no secrets and does nothing without destinations', async () => {
    const n = createNotifier({ config: config({}), env: {}, logger });
    n.notify(keyEvent());
    expect(n.pending).toBe(0);
    await n.flush(10);
    await n.close();
  });
});

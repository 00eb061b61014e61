/**
 * Every keygate the hostile suite starts goes through here, so that every byte it writes
 * can be scanned for secrets once the whole run is over (test/hostile/global-setup.ts):
 *
 *  - `<tag>.responses`: everything written on the proxy and admin listeners' sockets
 *    (responses, node's own 400/408/431 answers, 429s for refused connections), tapped
 *    at the socket so nothing that reaches a client is missed;
 *  - `<tag>.log`: every log line (main and access logger);
 *  - `<tag>.audit`: the audit log, read from the store at stop;
 *  - `<tag>.notifications`: every webhook delivery (headers and body), received by a real
 *    signed-webhook receiver;
 *  - `<tag>.secrets.json`: what must never appear in any of it — each key created (in
 *    `.responses` only before the byte offset where its creation response ended), each key
 *    hash, each upstream secret value, the pepper, the master key, the webhook secret.
 *
 * The capture directory comes from the global setup (`inject('hostileCaptureDir')`).
 */
import { once } from 'node:events';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { expect, inject } from 'vitest';
import type { Pool } from 'undici';
import type { RawConfig } from '../../../src/config/schema.ts';
import { createNotifier, type Notifier } from '../../../src/events/notifications/notifier.ts';
import { CLI_CALLER } from '../../../src/keys/service.ts';
import { createLoggers } from '../../../src/observability/logger.ts';
import { startKeygate } from '../../../src/server.ts';
import { call } from '../../helpers/admin.ts';
import { RunCollapser } from './collapse.ts';
import { cliKeys, testConfig, type TestKeygate } from '../../helpers/keygate.ts';
import { TEST_PEPPER, testHasher } from '../../helpers/pepper.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    hostileCaptureDir: string;
  }
}

export type SecretKind = 'key' | 'hash' | 'secret' | 'pepper' | 'master-key' | 'webhook-secret';

export interface LedgerEntry {
  kind: SecretKind;
  value: string;
  /** For keys: in `.responses`, bytes before this offset may hold it (its creation response). */
  responsesAfter?: number;
}

export const MASTER_KEY = randomBytes(32).toString('base64');
export const WEBHOOK_SECRET = `whsec_${randomBytes(24).toString('base64')}`;
const hash = testHasher;
let started = 0;

export function captureDir(): string {
  return inject('hostileCaptureDir');
}

/** Appends to a file synchronously (no buffering that a crash could lose), runs of filler shortened. */
class Sink {
  readonly #fd: number;
  readonly #runs = new RunCollapser();
  bytes = 0;
  constructor(path: string) {
    this.#fd = openSync(path, 'a');
  }
  write(chunk: Buffer | string, encoding: BufferEncoding = 'utf8'): void {
    const buffer = this.#runs.collapse(typeof chunk === 'string' ? Buffer.from(chunk, encoding) : chunk);
    writeSync(this.#fd, buffer);
    this.bytes += buffer.length;
  }
  close(): void {
    closeSync(this.#fd);
  }
}

type Chunk = { chunk: Buffer | string; encoding: BufferEncoding };
type Tapped = Socket & {
  _write(chunk: Buffer | string, encoding: BufferEncoding, cb: (error?: Error | null) => void): void;
  _writev?(chunks: Chunk[], cb: (error?: Error | null) => void): void;
};

/** Copies everything written on the server's sockets into `sink`, before it goes out. */
function tap(server: Server, sink: Sink): void {
  server.prependListener('connection', (socket: Socket) => {
    const s = socket as Tapped;
    const write = s._write;
    s._write = function (chunk, encoding, cb) {
      sink.write(chunk, encoding);
      return write.call(this, chunk, encoding, cb);
    };
    const writev = s._writev;
    if (writev) {
      s._writev = function (chunks, cb) {
        for (const { chunk, encoding } of chunks) sink.write(chunk, encoding);
        return writev.call(this, chunks, cb);
      };
    }
  });
}

/** A signed-webhook receiver that records every delivery verbatim. */
async function startReceiver(sink: Sink): Promise<{ url: string; close(): Promise<void> }> {
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    sink.write(`${JSON.stringify(req.headers)}\n${Buffer.concat(chunks).toString('utf8')}\n`);
    res.end('ok');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export interface HostileKeygate extends TestKeygate {
  /** Records `value` as something keygate must never write. */
  remember(entry: LedgerEntry): void;
  /** Bytes tapped from the listeners so far (a key's creation response ends before this). */
  responsesOffset(): number;
  /**
   * Creates a key through the admin API (POST /v1/keys) with `adminKey`, and remembers it:
   * its creation response is the one place it may appear.
   */
  createKeyViaApi(adminKey: string, body: Record<string, unknown>): Promise<{ id: string; key: string }>;
  /** Stores an upstream secret (as the CLI does) and remembers its value. */
  addSecret(id: string, value: string): Promise<void>;
  /** The connection pools to the upstreams, one per route (undici Pool). */
  pools(): Pool[];
  /** Open connections on the proxy listener. */
  clientConnections(): Promise<number>;
}

export interface HostileOptions {
  env?: NodeJS.ProcessEnv;
  /** Deliver every event type to a webhook receiver and capture the deliveries. */
  notifications?: boolean;
  /** Where the capture goes; default the run's capture directory. */
  dir?: string;
}

/**
 * startTestKeygate, captured (see the top of the file). `tag` names the capture files; the
 * test file's name and a counter are added, so tags need only be unique within a file.
 */
export async function startHostileKeygate(tag: string, raw: RawConfig, options: HostileOptions = {}): Promise<HostileKeygate> {
  const out = options.dir ?? captureDir();
  const file = basename(expect.getState().testPath ?? 'unknown').replace(/\.test\.ts$/, '');
  const prefix = join(out, `${file}-${tag}-${process.pid}-${++started}`);
  const responses = new Sink(`${prefix}.responses`);
  const log = new Sink(`${prefix}.log`);
  const delivered = new Sink(`${prefix}.notifications`);
  const ledger: LedgerEntry[] = [
    { kind: 'pepper', value: TEST_PEPPER },
    { kind: 'master-key', value: MASTER_KEY },
    { kind: 'webhook-secret', value: WEBHOOK_SECRET },
  ];
  const receiver = options.notifications ? await startReceiver(delivered) : null;
  if (receiver) {
    raw = {
      ...raw,
      notifications: {
        events: ['key.created', 'key.revoked', 'key.rotated', 'key.expiring', 'key.expired', 'secret.created', 'secret.renamed', 'secret.removed'],
        webhooks: [{ url: receiver.url, secretEnv: 'HOSTILE_WEBHOOK_SECRET', timeoutMs: 2000 }],
        retry: { attempts: 2, baseDelayMs: 10, maxDelayMs: 50 },
      },
    };
  }
  const dir = mkdtempSync(join(tmpdir(), 'keygate-hostile-'));
  const config = testConfig(raw, dir);
  const env = { KEYGATE_PEPPER: TEST_PEPPER, KEYGATE_MASTER_KEY: MASTER_KEY, HOSTILE_WEBHOOK_SECRET: WEBHOOK_SECRET, ...options.env };
  const text: string[] = [];
  const destination = new Writable({
    write(chunk, _encoding, done) {
      text.push(String(chunk));
      log.write(chunk as Buffer);
      done();
    },
  });
  const { logger, access } = createLoggers({ level: config.log.level, destination });
  const notifier: Notifier | null = receiver ? createNotifier({ config: config.notifications, env, logger }) : null;
  const keygate = await startKeygate({ config, env, logger, accessLogger: access, ...(notifier ? { notify: notifier.notify } : {}) });
  tap(keygate.servers.proxy, responses);
  tap(keygate.servers.admin, responses);
  const keys = cliKeys(keygate.service);
  const create = keys.create;
  keys.create = async (input) => {
    const created = await create(input);
    ledger.push({ kind: 'key', value: created.key }, { kind: 'hash', value: hash(created.key) });
    return created;
  };
  let stopped = false;
  return {
    keygate,
    config,
    keys,
    service: keygate.service,
    url: `http://127.0.0.1:${keygate.proxyPort}`,
    adminUrl: `http://127.0.0.1:${keygate.adminPort}`,
    logs: () => text.join(''),
    remember: (entry) => ledger.push(entry),
    responsesOffset: () => responses.bytes,
    async createKeyViaApi(adminKey, body) {
      const res = await call(`http://127.0.0.1:${keygate.adminPort}`, 'POST', '/v1/keys', { key: adminKey, body });
      if (res.status !== 201) throw new Error(`POST /v1/keys answered ${res.status}: ${res.text}`);
      const created = res.json as { id: string; key: string };
      ledger.push({ kind: 'key', value: created.key, responsesAfter: responses.bytes }, { kind: 'hash', value: hash(created.key) });
      return created;
    },
    async addSecret(id, value) {
      await keygate.secrets.add(CLI_CALLER, { id, name: `hostile ${id}`, value });
      ledger.push({ kind: 'secret', value });
    },
    pools: () => keygate.current.state.router.routes.map((route) => route.dispatcher as Pool),
    clientConnections: () => new Promise((resolve, reject) => keygate.servers.proxy.getConnections((error, n) => (error ? reject(error) : resolve(n)))),
    async stop() {
      if (stopped) return;
      stopped = true;
      // The audit log, every page, while the store is still open.
      const entries: unknown[] = [];
      try {
        for (let before: string | undefined; ; ) {
          const page = await keygate.store.listAudit({ limit: 500, ...(before ? { before } : {}) });
          entries.push(...page.entries);
          if (page.next === null) break;
          before = page.next;
        }
      } catch (error) {
        entries.push({ unreadable: String(error) });
      }
      await keygate.close(500);
      if (notifier) {
        await notifier.flush(2000);
        await notifier.close();
      }
      await receiver?.close();
      writeFileSync(`${prefix}.audit`, JSON.stringify(entries));
      writeFileSync(`${prefix}.secrets.json`, JSON.stringify(ledger));
      for (const sink of [responses, log, delivered]) sink.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

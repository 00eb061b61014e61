/**
 * Helpers for admin-API tests that run keygate through `startKeygate` directly (so a
 * `notify` callback can be given): an instance on any store with its log lines and
 * notifications captured, and an admin-API client that records every response it got, so
 * a test can check afterwards that no full key ever came back except where it must.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Config, RawConfig } from '../../src/config/schema.ts';
import type { Notify } from '../../src/events/event-sink.ts';
import type { KeygateEvent } from '../../src/events/types.ts';
import { createLoggers, type Logger } from '../../src/observability/logger.ts';
import { startKeygate, type Keygate } from '../../src/server.ts';
import { captureStream, TEST_PEPPER, testConfig } from './keygate.ts';

export interface Instance {
  keygate: Keygate;
  config: Config;
  /** The proxy listener. */
  url: string;
  adminUrl: string;
  /** Every event keygate handed to `notify`, in order (when no `notify` was given). */
  events: KeygateEvent[];
  /** Every log line written so far (application and access log), as text. */
  logs(): string;
  stop(): Promise<void>;
}

export interface InstanceOptions {
  env?: NodeJS.ProcessEnv;
  /**
   * Where notifications go, built from the parsed config with the instance's logger (so
   * what the notifier logs is captured too); by default they are collected in `events`.
   */
  notify?: (config: Config, logger: Logger) => Notify;
}

/** Starts keygate on free loopback ports; with the embedded store, in a temporary directory. */
export async function startInstance(raw: RawConfig, options: InstanceOptions = {}): Promise<Instance> {
  const dir = mkdtempSync(join(tmpdir(), 'keygate-admin-redis-'));
  try {
    const config = testConfig(raw, dir);
    const capture = captureStream();
    const { logger, access } = createLoggers({ level: config.log.level, destination: capture.stream });
    const events: KeygateEvent[] = [];
    const keygate = await startKeygate({
      config,
      env: { KEYGATE_PEPPER: TEST_PEPPER, ...options.env },
      logger,
      accessLogger: access,
      notify: options.notify ? options.notify(config, logger) : (event) => void events.push(event),
    });
    return {
      keygate,
      config,
      url: `http://127.0.0.1:${keygate.proxyPort}`,
      adminUrl: `http://127.0.0.1:${keygate.adminPort}`,
      events,
      logs: capture.text,
      async stop() {
        try {
          await keygate.close(500);
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      },
    };
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}

export interface Reply {
  method: string;
  url: string;
  status: number;
  headers: Headers;
  text: string;
  /** Parsed JSON, or undefined. */
  json: any;
  ms: number;
}

/** Every admin-API response any client of this module received, in order. */
export const replies: Reply[] = [];

export async function request(base: string, method: string, path: string, key?: string, body?: unknown): Promise<Reply> {
  const headers: Record<string, string> = {};
  if (key !== undefined) headers['x-api-key'] = key;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const started = performance.now();
  const res = await fetch(base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  const ms = performance.now() - started;
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  const reply: Reply = { method, url: base + path, status: res.status, headers: res.headers, text, json, ms };
  replies.push(reply);
  return reply;
}

/** An admin-API client of one instance, acting with one key. */
export function admin(instance: { adminUrl: string }, key: string) {
  const base = instance.adminUrl;
  return {
    get: (path: string) => request(base, 'GET', path, key),
    post: (path: string, body?: unknown) => request(base, 'POST', path, key, body ?? {}),
    patch: (path: string, body: unknown) => request(base, 'PATCH', path, key, body),
  };
}

export type Admin = ReturnType<typeof admin>;

/** A request through the proxy with X-Api-Key: status and, for keygate's own errors, the code. */
export async function proxy(instance: { url: string }, path: string, key: string): Promise<{ status: number; code: string | undefined; body: any }> {
  const res = await fetch(instance.url + path, { headers: { 'x-api-key': key } });
  const text = await res.text();
  let body: any;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  const isProblem = res.headers.get('content-type') === 'application/problem+json';
  return { status: res.status, code: isProblem ? body.code : undefined, body };
}

/** Whether the admin reply is one that may carry a full key: a 201 from create or rotate. */
export function mayCarryKey(reply: Reply): boolean {
  return reply.method === 'POST' && reply.status === 201 && /\/v1\/keys(\/[^/]+\/rotate)?$/.test(new URL(reply.url).pathname);
}

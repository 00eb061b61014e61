/**
 * Admin API test helpers: a keygate started with a `notify` collector (startTestKeygate
 * passes none), a small JSON client for the admin listener, problem+json assertions, a
 * KeyService with a shifted clock (for keys that expired in the past) and a minimal
 * JSON-Schema conformance check for responses against /openapi.json.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import type { Config, RawConfig } from '../../src/config/schema.ts';
import type { Notify } from '../../src/events/event-sink.ts';
import type { KeygateEvent } from '../../src/events/types.ts';
import { KeyService } from '../../src/keys/service.ts';
import { createLoggers, type Logger } from '../../src/observability/logger.ts';
import { startKeygate, type Keygate } from '../../src/server.ts';
import { expectProblem } from './http.ts';
import { captureStream, cliKeys, testConfig, type TestKeygate } from './keygate.ts';
import { TEST_PEPPER, testHasher } from './pepper.ts';

export interface AdminTestKeygate extends TestKeygate {
  /** Every notification keygate emitted (reminders, created, revoked, …), in order (when no `notify` was given). */
  events: KeygateEvent[];
}

export interface AdminKeygateOptions {
  /**
   * Where notifications go, built from the parsed config with the instance's logger (so
   * what the notifier logs is captured too); by default they are collected in `events`.
   */
  notify?: (config: Config, logger: Logger) => Notify;
}

/**
 * Like startTestKeygate, but with a `notify` collector. To run two instances on one
 * embedded store, pass the same `store: { path }` to both (or one Redis).
 */
export async function startAdminKeygate(raw: RawConfig = {}, env: NodeJS.ProcessEnv = {}, options: AdminKeygateOptions = {}): Promise<AdminTestKeygate> {
  const dir = mkdtempSync(join(tmpdir(), 'keygate-admin-'));
  try {
    const config = testConfig(raw, dir);
    const capture = captureStream();
    const { logger, access } = createLoggers({ level: config.log.level, destination: capture.stream });
    const events: KeygateEvent[] = [];
    const notify: Notify = options.notify ? options.notify(config, logger) : (event) => void events.push(event);
    const keygate = await startKeygate({ config, env: { KEYGATE_PEPPER: TEST_PEPPER, ...env }, logger, accessLogger: access, notify });
    return {
      keygate,
      config,
      keys: cliKeys(keygate.service),
      service: keygate.service,
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

/**
 * A KeyService over a running keygate's store whose clock is `shiftMs` off (negative: in
 * the past), to create keys that have already expired — the real service refuses a past
 * date. No events: nothing is audited for these.
 */
export function shiftedService(t: { keygate: Keygate }, shiftMs: number): KeyService {
  return new KeyService(t.keygate.store, testHasher, t.keygate.config, null, () => Date.now() + shiftMs);
}

export interface ApiResponse {
  method: string;
  url: string;
  status: number;
  headers: Headers;
  text: string;
  /** Parsed JSON, or undefined. */
  json: any;
  /** For keygate's own errors (application/problem+json), the problem code. */
  code: string | undefined;
  ms: number;
}

/** Every response `call` (and so every client of this module) received, in order. */
export const replies: ApiResponse[] = [];

export interface CallOptions {
  /** Sent as X-Api-Key. */
  key?: string;
  /** Serialised as JSON with content-type application/json. */
  body?: unknown;
  /** Sent verbatim (give `contentType` yourself). */
  raw?: string | Buffer | ReadableStream<Uint8Array>;
  contentType?: string;
  headers?: Record<string, string>;
}

/** A request to the admin listener (or any listener), recorded in `replies`. */
export async function call(base: string, method: string, path: string, options: CallOptions = {}): Promise<ApiResponse> {
  const reply = await send(base, method, path, options);
  replies.push(reply);
  return reply;
}

async function send(base: string, method: string, path: string, options: CallOptions): Promise<ApiResponse> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.key !== undefined) headers['x-api-key'] = options.key;
  let body: string | Buffer | ReadableStream<Uint8Array> | undefined = options.raw;
  if (options.body !== undefined) {
    body = JSON.stringify(options.body);
    headers['content-type'] = 'application/json';
  }
  if (options.contentType !== undefined) headers['content-type'] = options.contentType;
  const init: RequestInit & { duplex?: 'half' } = { method, headers };
  if (body !== undefined) init.body = body as RequestInit['body'];
  if (body instanceof ReadableStream) init.duplex = 'half';
  const started = performance.now();
  const res = await fetch(base + path, init);
  const text = await res.text();
  const ms = performance.now() - started;
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  const code = res.headers.get('content-type') === 'application/problem+json' ? json?.code : undefined;
  return { method, url: base + path, status: res.status, headers: res.headers, text, json, code, ms };
}

/** A client bound to one admin listener and one caller key. */
export function adminClient(base: string, key: string | undefined) {
  const opts = (extra: CallOptions = {}): CallOptions => (key === undefined ? extra : { key, ...extra });
  return {
    get: (path: string) => call(base, 'GET', path, opts()),
    post: (path: string, body?: unknown) => call(base, 'POST', path, opts(body === undefined ? {} : { body })),
    patch: (path: string, body: unknown) => call(base, 'PATCH', path, opts({ body })),
    call: (method: string, path: string, extra: CallOptions = {}) => call(base, method, path, opts(extra)),
  };
}

export type AdminClient = ReturnType<typeof adminClient>;

/** A request through the proxy with X-Api-Key (not recorded in `replies`). */
export async function proxyGet(base: string, path: string, key: string): Promise<ApiResponse> {
  return send(base, 'GET', path, { key });
}

/** Whether the admin reply is one that may carry a full key: a 201 from create or rotate. */
export function mayCarryKey(reply: ApiResponse): boolean {
  return reply.method === 'POST' && reply.status === 201 && /\/v1\/keys(\/[^/]+\/rotate)?$/.test(new URL(reply.url).pathname);
}

/** 422 whose detail names `field` (e.g. `body.name`, `query.revoked`, or a bare `role`). */
export function expectInvalid(res: ApiResponse, field: string): void {
  expectProblem(res, 422, 'validation_failed');
  expect(res.json.detail).toContain(field);
}

/**
 * Checks `value` against the subset of JSON Schema that zod renders for the admin schemas
 * (type, enum, properties, required, additionalProperties, items, anyOf, $ref into
 * components). Returns the problems found, empty when it conforms.
 */
export function schemaProblems(schema: any, value: unknown, components: Record<string, any>, at = '$'): string[] {
  if (schema.$ref) return schemaProblems(components[String(schema.$ref).split('/').pop()!], value, components, at);
  if (schema.anyOf) {
    const ok = (schema.anyOf as any[]).some((s) => schemaProblems(s, value, components, at).length === 0);
    return ok ? [] : [`${at}: matches none of anyOf`];
  }
  const problems: string[] = [];
  if (schema.type !== undefined) {
    const types: string[] = Array.isArray(schema.type) ? schema.type : [schema.type];
    const actual = value === null ? 'null' : Array.isArray(value) ? 'array' : Number.isInteger(value) ? 'integer' : typeof value;
    if (!types.includes(actual) && !(actual === 'integer' && types.includes('number'))) return [`${at}: is ${actual}, documented as ${types.join('|')}`];
  }
  if (schema.enum && !schema.enum.includes(value)) problems.push(`${at}: ${JSON.stringify(value)} not in enum`);
  if (Array.isArray(value) && schema.items) value.forEach((v, i) => problems.push(...schemaProblems(schema.items, v, components, `${at}[${i}]`)));
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const obj = value as Record<string, unknown>;
    const props: Record<string, any> = schema.properties ?? {};
    for (const name of schema.required ?? []) if (!(name in obj)) problems.push(`${at}.${name}: required but missing`);
    for (const [name, v] of Object.entries(obj)) {
      if (props[name]) problems.push(...schemaProblems(props[name], v, components, `${at}.${name}`));
      else if (schema.additionalProperties === false) problems.push(`${at}.${name}: not documented (additionalProperties: false)`);
      else if (typeof schema.additionalProperties === 'object') problems.push(...schemaProblems(schema.additionalProperties, v, components, `${at}.${name}`));
    }
  }
  return problems;
}

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
import type { KeygateEvent } from '../../src/events/types.ts';
import { createKeyHasher } from '../../src/keys/hash.ts';
import { KeyService } from '../../src/keys/service.ts';
import { createLoggers } from '../../src/observability/logger.ts';
import { startKeygate, type Keygate } from '../../src/server.ts';
import { captureStream, cliKeys, TEST_PEPPER, testConfig, type TestKeygate } from './keygate.ts';

export interface AdminTestKeygate extends TestKeygate {
  /** Every notification keygate emitted (reminders, created, revoked, …), in order. */
  events: KeygateEvent[];
}

/**
 * Like startTestKeygate, but with a `notify` collector. To run two instances on one
 * embedded store, pass the same `store: { path }` to both.
 */
export async function startAdminKeygate(raw: RawConfig = {}, env: NodeJS.ProcessEnv = {}): Promise<AdminTestKeygate> {
  const dir = mkdtempSync(join(tmpdir(), 'keygate-admin-'));
  const config = testConfig(raw, dir);
  const capture = captureStream();
  const { logger, access } = createLoggers({ level: config.log.level, destination: capture.stream });
  const events: KeygateEvent[] = [];
  const keygate = await startKeygate({ config, env: { KEYGATE_PEPPER: TEST_PEPPER, ...env }, logger, accessLogger: access, notify: (event) => events.push(event) });
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
      await keygate.close(500);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A KeyService over a running keygate's store whose clock is `shiftMs` off (negative: in
 * the past), to create keys that have already expired — the real service refuses a past
 * date. No events: nothing is audited for these.
 */
export function shiftedService(t: { keygate: Keygate }, shiftMs: number): KeyService {
  return new KeyService(t.keygate.store, createKeyHasher(TEST_PEPPER), t.keygate.config, null, () => Date.now() + shiftMs);
}

export interface ApiResponse {
  status: number;
  headers: Headers;
  text: string;
  /** Parsed JSON, or undefined. */
  json: any;
}

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

export async function call(base: string, method: string, path: string, options: CallOptions = {}): Promise<ApiResponse> {
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
  const res = await fetch(base + path, init);
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
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

/** A request through the proxy with X-Api-Key. */
export async function proxyGet(base: string, path: string, key: string): Promise<ApiResponse> {
  return call(base, 'GET', path, { key });
}

export function expectProblem(res: ApiResponse, status: number, code: string): void {
  expect(res.status, res.text).toBe(status);
  expect(res.headers.get('content-type')).toBe('application/problem+json');
  expect(res.json).toEqual({ type: `urn:keygate:problem:${code}`, title: expect.any(String), status, code, detail: expect.any(String) });
  expect(res.json.detail.length).toBeGreaterThan(0);
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

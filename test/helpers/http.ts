/**
 * Raw HTTP helpers for the proxy tests: requests through node:http (so the request-target
 * reaches keygate exactly as written — fetch would normalise `..` and `%2e%2e` away — and
 * duplicate or hop-by-hop headers can be sent), the one problem+json assertion, log-line
 * parsing and a small waiting helper. Raw TCP is in raw-socket.ts.
 */
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { Pool } from 'undici';
import { expect } from 'vitest';

export interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  rawHeaders: string[];
  body: string;
  /** The body parsed as JSON, or undefined when it is not JSON. */
  json: any;
  /** True when the server answered `100 Continue` before the final response. */
  continued: boolean;
}

export interface RawRequestOptions {
  method?: string;
  /** Request-target exactly as sent on the request line. */
  path?: string;
  /** An object, or a flat [name, value, …] array (duplicates and order kept). */
  headers?: Record<string, string | string[]> | string[];
  body?: string | Buffer;
  /**
   * Send `Expect: 100-continue` and write the body only once the server answers
   * `100 Continue` (never, if the final response comes first).
   */
  expectContinue?: boolean;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

export function rawRequest(base: string, options: RawRequestOptions = {}): Promise<RawResponse> {
  const url = new URL(base);
  const body = options.body === undefined ? undefined : Buffer.from(options.body);
  let headers: Record<string, string | string[]> | string[] = options.headers ?? {};
  if (body !== undefined) {
    if (Array.isArray(headers)) {
      if (!headers.some((h, i) => i % 2 === 0 && /^(content-length|transfer-encoding)$/i.test(h))) headers = [...headers, 'content-length', String(body.length)];
    } else if (!Object.keys(headers).some((h) => /^(content-length|transfer-encoding)$/i.test(h))) {
      headers = { ...headers, 'content-length': String(body.length) };
    }
  }
  // node:http adds Host itself only for object headers; HTTP/1.1 requires one.
  if (Array.isArray(headers) && !headers.some((h, i) => i % 2 === 0 && h.toLowerCase() === 'host')) headers = ['Host', url.host, ...headers];
  if (options.expectContinue) headers = Array.isArray(headers) ? [...headers, 'expect', '100-continue'] : { ...headers, expect: '100-continue' };
  return new Promise((resolve, reject) => {
    let continued = false;
    const req = httpRequest({
      host: url.hostname,
      port: url.port,
      method: options.method ?? 'GET',
      path: options.path ?? '/',
      headers: headers as Record<string, string>,
      agent: false,
    });
    req.on('error', reject);
    req.on('continue', () => {
      continued = true;
      req.end(body);
    });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode ?? 0, headers: res.headers, rawHeaders: res.rawHeaders, body: text, json: parseJson(text), continued });
        // With Expect, a final answer came first: the body is never sent.
        if (options.expectContinue && !continued) req.destroy();
      });
    });
    if (options.expectContinue) req.flushHeaders();
    else req.end(body);
  });
}

/** A response as the fetch-based admin client (`text`, Headers) or rawRequest (`body`, header object) gives it. */
export type AnyResponse = { status: number; json: any } & ({ headers: Headers; text: string } | { headers: IncomingHttpHeaders; body: string });

/**
 * keygate's own error answer: `status`, application/problem+json, and exactly the problem
 * fields (type urn:keygate:problem:<code>, a title, the status, the code, a non-empty detail).
 */
export function expectProblem(res: AnyResponse, status: number, code: string): void {
  const text = 'text' in res ? res.text : res.body;
  const contentType = res.headers instanceof Headers ? res.headers.get('content-type') : res.headers['content-type'];
  expect(res.status, text).toBe(status);
  expect(contentType).toBe('application/problem+json');
  expect(res.json).toEqual({ type: `urn:keygate:problem:${code}`, title: expect.any(String), status, code, detail: expect.any(String) });
  expect(res.json.detail.length).toBeGreaterThan(0);
}

/** The value of the line `name` (with its labels, if any) on an admin listener's /metrics; NaN when there is none. */
export async function metric(adminUrl: string, name: string): Promise<number> {
  const text = await (await fetch(`${adminUrl}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? NaN : Number(line.split(' ')[1]);
}

/**
 * GETs with X-Api-Key on kept-alive connections, one undici Pool of `connections` per base
 * URL: for tests that send many requests fast. Gives the status and, for keygate's own
 * errors, the problem code.
 */
export function pooledGets(connections: number) {
  const pools = new Map<string, Pool>();
  return {
    async get(base: string, path: string, key: string): Promise<{ status: number; code?: string }> {
      let pool = pools.get(base);
      if (!pool) pools.set(base, (pool = new Pool(base, { connections })));
      const res = await pool.request({ path, method: 'GET', headers: { 'x-api-key': key } });
      const text = await res.body.text();
      const problem = res.headers['content-type'] === 'application/problem+json';
      return problem ? { status: res.statusCode, code: (JSON.parse(text) as { code: string }).code } : { status: res.statusCode };
    },
    close: () => Promise.all([...pools.values()].map((p) => p.close())),
  };
}

/** Polls `check` until it returns a truthy value or `timeoutMs` passes (then throws). */
type Falsy = null | undefined | false | 0 | '';

export async function waitFor<T>(check: () => T | Falsy | Promise<T | Falsy>, timeoutMs = 2000, stepMs = 5): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value as T;
    if (Date.now() > deadline) throw new Error(`waitFor: condition not met within ${timeoutMs} ms`);
    await sleep(stepMs);
  }
}

/** The JSON lines a TestKeygate's `logs()` holds, parsed. */
export function logLines(text: string): Record<string, unknown>[] {
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

/** Access-log lines only. */
export function accessLines(text: string): Record<string, unknown>[] {
  return logLines(text).filter((line) => line.log === 'access');
}

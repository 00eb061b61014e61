/**
 * What the upstream receives (and what the client gets back) header by header: credential
 * and identity headers, hop-by-hop headers, X-Forwarded-*.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { rawRequest } from '../helpers/http.ts';
import { startTestKeygate, type TestKeygate } from '../helpers/keygate.ts';
import { startUpstream, type Received, type TestUpstream } from '../helpers/upstream.ts';
import { rawSocket } from '../helpers/raw-socket.ts';
import { closeAll } from '../helpers/close.ts';

/** Every value of a header as the upstream got it on the wire (duplicates kept). */
function raw(received: Received, name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < received.rawHeaders.length; i += 2) if (received.rawHeaders[i]!.toLowerCase() === name) out.push(received.rawHeaders[i + 1]!);
  return out;
}

/** Answers with a fixed set of response headers, including hop-by-hop ones. */
function responder(req: IncomingMessage, res: ServerResponse): void {
  req.resume();
  req.on('end', () => {
    res.writeHead(201, [
      ['Content-Type', 'text/plain'],
      ['Connection', 'keep-alive, X-Resp-Private'],
      ['X-Resp-Private', 'hop'],
      ['Keep-Alive', 'timeout=99'],
      ['Proxy-Connection', 'keep-alive'],
      ['Set-Cookie', 'a=1'],
      ['Set-Cookie', 'b=2'],
      ['X-Resp-Kept', 'yes'],
    ].flat());
    res.end('made');
  });
}

let up: TestUpstream;
let respUp: TestUpstream;
let t: TestKeygate;
let k: string, keyId: string;

beforeAll(async () => {
  up = await startUpstream();
  respUp = await startUpstream(responder);
  t = await startTestKeygate({
    routes: [
      { name: 'api', pathPrefix: '/api', upstream: up.url },
      { name: 'public', pathPrefix: '/public', upstream: up.url, auth: { required: false } },
      { name: 'resp', pathPrefix: '/resp', upstream: respUp.url },
    ],
  });
  const created = await t.keys.create({ tenant: 'acme', name: 'h', permissions: ['read', 'files:write'], user: 'alice', client: 'mcp' });
  k = created.key;
  keyId = created.record.id;
});

afterAll(() => closeAll(t, up, respUp));

async function send(headers: string[], path = '/api/x', method = 'GET', body?: string): Promise<Received> {
  const before = up.received.length;
  const res = await rawRequest(t.url, { method, path, headers, ...(body !== undefined ? { body } : {}) });
  expect(res.status, res.body).toBe(200);
  expect(up.received.length).toBe(before + 1);
  return up.received.at(-1)!;
}

describe('identity headers', () => {
  it('sets every identity header from the key, replacing spoofed copies (however many)', async () => {
    const got = await send([
      'X-Api-Key', k,
      'X-Tenant-Id', 'evil', 'x-tenant-id', 'evil2', 'X-TENANT-ID', 'evil3',
      'X-Api-Key-Id', 'key_evil', 'X-Auth-Role', 'admin', 'X-Auth-Permissions', '*', 'X-Auth-User', 'root', 'X-Auth-Client', 'cli',
    ]);
    expect(raw(got, 'x-tenant-id')).toEqual(['acme']);
    expect(raw(got, 'x-api-key-id')).toEqual([keyId]);
    expect(raw(got, 'x-auth-role')).toEqual(['api-user']);
    expect(raw(got, 'x-auth-permissions')).toEqual(['read,files:write']);
    expect(raw(got, 'x-auth-user')).toEqual(['alice']);
    expect(raw(got, 'x-auth-client')).toEqual(['mcp']);
    expect(raw(got, 'x-api-key')).toEqual([]);
  });

  it('omits the headers a key has no value for', async () => {
    const bare = await t.keys.create({ tenant: 'beta', name: 'bare' });
    const got = await send(['Authorization', `Bearer ${bare.key}`, 'X-Auth-User', 'root', 'X-Auth-Client', 'cli', 'X-Auth-Permissions', '*']);
    expect(raw(got, 'x-tenant-id')).toEqual(['beta']);
    expect(raw(got, 'x-auth-role')).toEqual(['api-user']);
    expect(raw(got, 'x-auth-user')).toEqual([]);
    expect(raw(got, 'x-auth-client')).toEqual([]);
    expect(raw(got, 'x-auth-permissions')).toEqual([]);
    expect(raw(got, 'authorization')).toEqual([]);
  });

  it('strips them on public routes too', async () => {
    const got = await send(['X-Tenant-Id', 'evil', 'X-Auth-Role', 'admin'], '/public/x');
    expect(raw(got, 'x-tenant-id')).toEqual([]);
    expect(raw(got, 'x-auth-role')).toEqual([]);
  });
});

describe('a key never reaches the upstream', () => {
  // node:http keeps only the first Authorization header in req.headers; the raw headers
  // forwarded upstream hold every copy.
  it('not in a second Authorization header on an authenticated route', async () => {
    const got = await send(['X-Api-Key', k, 'Authorization', 'Basic dXNlcjpwYXNz', 'Authorization', `Bearer ${k}`]);
    expect(JSON.stringify(got.rawHeaders)).not.toContain(k);
  });

  it('not in a second Authorization header on a public route', async () => {
    const got = await send(['Authorization', 'Basic dXNlcjpwYXNz', 'Authorization', `Bearer ${k}`], '/public/x');
    expect(JSON.stringify(got.rawHeaders)).not.toContain(k);
  });

  it('not in repeated X-Api-Key headers', async () => {
    const got = await send(['X-Api-Key', k, 'x-api-key', k], '/public/x');
    expect(JSON.stringify(got.rawHeaders)).not.toContain(k);
  });
});

describe('hop-by-hop headers', () => {
  it('removes the RFC 9110 hop-by-hop headers and every header Connection lists', async () => {
    const before = up.received.length;
    const res = await rawSocket(
      t.url,
      [
        'GET /api/hop HTTP/1.1',
        `Host: ${new URL(t.url).host}`,
        `X-Api-Key: ${k}`,
        'Connection: close, X-Private, x-also-private',
        'Keep-Alive: timeout=5',
        'Proxy-Connection: keep-alive',
        'TE: trailers',
        'Trailer: X-Checksum',
        'Upgrade: h2c',
        'Proxy-Authorization: Basic cHJveHk6cHc=',
        'X-Private: for-keygate-only',
        'X-Also-Private: same',
        'X-Kept: for-upstream',
        '',
        '',
      ].join('\r\n'),
    );
    expect(res.status, res.text).toBe(200);
    expect(up.received.length).toBe(before + 1);
    const got = up.received.at(-1)!;
    for (const name of ['keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade', 'proxy-authorization', 'x-private', 'x-also-private']) {
      expect(raw(got, name), name).toEqual([]);
    }
    // The upstream connection's own Connection header is undici's business, never the client's list.
    expect(raw(got, 'connection').join()).not.toMatch(/x-private|close/i);
    expect(raw(got, 'x-kept')).toEqual(['for-upstream']);
  });

  it('forwards a chunked body without passing the client\'s Transfer-Encoding through verbatim', async () => {
    const got = await send(['X-Api-Key', k, 'Transfer-Encoding', 'chunked', 'Content-Type', 'text/plain'], '/api/upload', 'POST', 'chunked-body');
    expect(raw(got, 'transfer-encoding')).toEqual(['chunked']);
    expect(raw(got, 'content-type')).toEqual(['text/plain']);
  });

  it('keeps ordinary headers, duplicates and their order', async () => {
    const got = await send(['X-Api-Key', k, 'X-Multi', 'one', 'Accept', 'text/plain', 'X-Multi', 'two', 'Cookie', 'c=1']);
    expect(raw(got, 'x-multi')).toEqual(['one', 'two']);
    expect(raw(got, 'accept')).toEqual(['text/plain']);
    expect(raw(got, 'cookie')).toEqual(['c=1']);
  });

  it('removes hop-by-hop and Connection-listed headers from the response, keeps the rest', async () => {
    const res = await rawRequest(t.url, { path: '/resp', headers: { 'x-api-key': k } });
    expect(res.status).toBe(201);
    expect(res.body).toBe('made');
    expect(res.headers['x-resp-private']).toBeUndefined();
    expect(res.headers['proxy-connection']).toBeUndefined();
    expect(res.headers['keep-alive']).not.toBe('timeout=99');
    expect(res.headers['x-resp-kept']).toBe('yes');
    expect(res.headers['set-cookie']).toEqual(['a=1', 'b=2']);
  });
});

describe('X-Forwarded-*', () => {
  it('are set from the connection; client copies and Forwarded are dropped', async () => {
    const got = await send([
      'X-Api-Key', k, 'Host', 'gateway.example.com:8443',
      'X-Forwarded-For', '10.9.8.7', 'X-Forwarded-Proto', 'https', 'X-Forwarded-Host', 'evil.example', 'Forwarded', 'for=10.9.8.7;proto=https',
    ]);
    expect(raw(got, 'x-forwarded-for')).toEqual(['127.0.0.1']);
    expect(raw(got, 'x-forwarded-proto')).toEqual(['http']);
    expect(raw(got, 'x-forwarded-host')).toEqual(['gateway.example.com:8443']);
    expect(raw(got, 'forwarded')).toEqual([]);
    // The upstream is addressed by its own name, not the client's Host.
    expect(raw(got, 'host')).toEqual([new URL(up.url).host]);
  });

  it('with forwarded.trustClient, extend the client\'s values: one header each, not two', async () => {
    const u = await startUpstream();
    const t2 = await startTestKeygate({ forwarded: { trustClient: true }, routes: [{ name: 'api', pathPrefix: '/api', upstream: u.url }] });
    try {
      const { key: k2 } = await t2.keys.create({ tenant: 'acme', name: 'lb' });
      const res = await rawRequest(t2.url, {
        path: '/api',
        headers: ['X-Api-Key', k2, 'Host', 'internal:80', 'X-Forwarded-For', '198.51.100.9', 'X-Forwarded-Proto', 'https', 'X-Forwarded-Host', 'public.example.com'],
      });
      expect(res.status).toBe(200);
      const got = u.received.at(-1)!;
      expect(raw(got, 'x-forwarded-for')).toEqual(['198.51.100.9, 127.0.0.1']);
      expect(raw(got, 'x-forwarded-proto')).toEqual(['https']);
      expect(raw(got, 'x-forwarded-host')).toEqual(['public.example.com']);
    } finally {
      await t2.stop();
      await u.close();
    }
  });
});

describe('configured identity header names', () => {
  it('are the ones set and stripped', async () => {
    const u = await startUpstream();
    const t2 = await startTestKeygate({ headers: { tenant: 'x-org', keyId: 'x-key' }, routes: [{ name: 'api', pathPrefix: '/api', upstream: u.url }] });
    try {
      const { key: k2, record } = await t2.keys.create({ tenant: 'acme', name: 'n' });
      const res = await rawRequest(t2.url, { path: '/api', headers: ['X-Api-Key', k2, 'X-Org', 'evil', 'X-Key', 'key_evil'] });
      expect(res.status).toBe(200);
      const got = u.received.at(-1)!;
      expect(raw(got, 'x-org')).toEqual(['acme']);
      expect(raw(got, 'x-key')).toEqual([record.id]);
    } finally {
      await t2.stop();
      await u.close();
    }
  });
});

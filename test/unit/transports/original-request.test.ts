/**
 * Reading the original request from what each proxy sends to forward-auth
 * (src/transports/original-request.ts): nginx's X-Original-*, Caddy's and Traefik's
 * X-Forwarded-*, Envoy's path prefix and Host. Each path reads its own convention only, a
 * missing or repeated header is refused naming it, and the client's address is the right-most
 * X-Forwarded-For entry.
 */
import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { isRefusal, type Refusal } from '../../../src/auth/refusals.ts';
import { extractCredential } from '../../../src/auth/extract.ts';
import { clientAddress } from '../../../src/http/client-address.ts';
import { normalizeTarget } from '../../../src/routing/normalize-path.ts';
import { requestHost } from '../../../src/routing/request-host.ts';
import { clientAddressOf, readOriginal, styleOf, type Original } from '../../../src/transports/original-request.ts';

/** An auth request as node:http would hand it over: `raw` is the flat [name, value, …] list. */
function authRequest(url: string, raw: string[], { method = 'GET', remoteAddress = '127.0.0.1' } = {}): IncomingMessage {
  const headers: Record<string, string> = {};
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    headers[name] = headers[name] === undefined ? raw[i + 1]! : `${headers[name]}, ${raw[i + 1]!}`;
  }
  return { url, method, headers, rawHeaders: raw, socket: { remoteAddress }, httpVersionMajor: 1, httpVersionMinor: 1 } as unknown as IncomingMessage;
}

function original(req: IncomingMessage): Original {
  const read = readOriginal(req);
  if (isRefusal(read)) throw new Error(`refused: ${read.detail}`);
  return read;
}

function refused(req: IncomingMessage): Refusal {
  const read = readOriginal(req);
  if (!isRefusal(read)) throw new Error('accepted');
  return read;
}

const KEY = 'kg_acme_' + '0'.repeat(64);

describe('styleOf', () => {
  it('is chosen by the auth request path alone', () => {
    expect(styleOf('/nginx')).toEqual({ style: 'nginx', rest: '' });
    expect(styleOf('/nginx?x=1')).toEqual({ style: 'nginx', rest: '' });
    expect(styleOf('/forwarded')).toEqual({ style: 'forwarded', rest: '' });
    expect(styleOf('/envoy/api/x?y=1')).toEqual({ style: 'envoy', rest: '/api/x?y=1' });
    for (const other of ['/', '/nginx/x', '/envoy', '/envoyx/a', '/forwardedx', '/NGINX']) expect(styleOf(other)).toBeNull();
  });
});

describe('nginx (auth_request with proxy_set_header X-Original-*)', () => {
  const req = () =>
    authRequest('/nginx', ['Host', '127.0.0.1:8082', 'X-Original-Method', 'POST', 'X-Original-URI', '/api/orders?limit=5', 'X-Original-Host', 'api.example.com', 'X-Api-Key', KEY, 'X-Forwarded-For', '198.51.100.7']);

  it('reads method, URI and host; the original host replaces the auth request\'s', () => {
    const { style, request } = original(req());
    expect(style).toBe('nginx');
    expect(request.method).toBe('POST');
    expect(request.url).toBe('/api/orders?limit=5');
    expect(request.headers.host).toBe('api.example.com');
    // One Host, the original, in the raw list too (request-host.ts counts the copies).
    expect(request.rawHeaders.filter((_, i) => i % 2 === 0 && request.rawHeaders[i]!.toLowerCase() === 'host')).toHaveLength(1);
    const incoming = request.asIncoming();
    const target = normalizeTarget(incoming.url!)!;
    expect(target.path).toBe('/api/orders');
    expect(requestHost(incoming, target)).toBe('api.example.com');
  });

  it('keeps the client\'s credential headers for the credential stage', () => {
    const incoming = original(req()).request.asIncoming();
    expect(extractCredential(incoming.headers)).toMatchObject({ key: KEY, inApiKey: true });
  });

  it('the client is the right-most X-Forwarded-For entry (what $proxy_add_x_forwarded_for appended)', () => {
    const incoming = original(req()).request.asIncoming();
    expect(clientAddress(incoming, false)).toBe('198.51.100.7');
    const spoofed = authRequest('/nginx', ['X-Original-Method', 'GET', 'X-Original-URI', '/', 'X-Original-Host', 'a', 'X-Forwarded-For', '203.0.113.9, 198.51.100.7']);
    expect(clientAddressOf(spoofed)).toBe('198.51.100.7');
    const none = authRequest('/nginx', [], { remoteAddress: '10.1.2.3' });
    expect(clientAddressOf(none)).toBe('10.1.2.3');
    const garbage = authRequest('/nginx', ['X-Forwarded-For', 'unknown'], { remoteAddress: '10.1.2.3' });
    expect(clientAddressOf(garbage)).toBe('10.1.2.3');
  });

  it('ignores X-Forwarded-Uri/-Host a client sent through nginx', () => {
    const read = original(
      authRequest('/nginx', ['X-Forwarded-Uri', '/public', 'X-Forwarded-Host', 'public.example', 'X-Forwarded-Method', 'GET', 'X-Original-Method', 'GET', 'X-Original-URI', '/admin', 'X-Original-Host', 'api.example.com']),
    );
    expect(read.request.url).toBe('/admin');
    expect(read.request.headers.host).toBe('api.example.com');
  });

  it.each([
    ['X-Original-Method', 'x-original-method is missing'],
    ['X-Original-URI', 'x-original-uri is missing'],
    ['X-Original-Host', 'x-original-host is missing'],
  ])('without %s: 400 naming it, never a default', (name, detail) => {
    const raw = ['X-Original-Method', 'GET', 'X-Original-URI', '/api', 'X-Original-Host', 'a.example'];
    const i = raw.indexOf(name);
    raw.splice(i, 2);
    const refusal = refused(authRequest('/nginx', raw));
    expect(refusal.code).toBe('bad_request');
    expect(refusal.detail).toContain(detail);
  });

  it('a repeated header, a host list or a method that is not a token: 400', () => {
    expect(refused(authRequest('/nginx', ['X-Original-Method', 'GET', 'X-Original-URI', '/a', 'X-Original-URI', '/b', 'X-Original-Host', 'h'])).detail).toContain('more than once');
    expect(refused(authRequest('/nginx', ['X-Original-Method', 'GET', 'X-Original-URI', '/a', 'X-Original-Host', 'h, i'])).detail).toContain('not a list');
    expect(refused(authRequest('/nginx', ['X-Original-Method', 'G ET', 'X-Original-URI', '/a', 'X-Original-Host', 'h'])).detail).toContain('not an HTTP method');
    expect(refused(authRequest('/nginx', ['X-Original-Method', 'GET', 'X-Original-URI', '', 'X-Original-Host', 'h'])).detail).toContain('missing');
  });
});

describe('forwarded (Caddy forward_auth, Traefik forwardAuth)', () => {
  it('reads X-Forwarded-Method/-Uri/-Host (Caddy also keeps the original Host; Traefik does not)', () => {
    for (const host of ['app.example.com', '127.0.0.1:8082']) {
      const { style, request } = original(
        authRequest('/forwarded', ['Host', host, 'X-Forwarded-Method', 'DELETE', 'X-Forwarded-Uri', '/t/acme/items/1', 'X-Forwarded-Host', 'app.example.com', 'X-Forwarded-Proto', 'https', 'X-Forwarded-For', '192.0.2.44']),
      );
      expect(style).toBe('forwarded');
      expect(request.method).toBe('DELETE');
      expect(request.url).toBe('/t/acme/items/1');
      expect(request.headers.host).toBe('app.example.com');
      expect(request.socket.remoteAddress).toBe('192.0.2.44');
    }
  });

  it('ignores X-Original-* a client sent through Caddy or Traefik', () => {
    const { request } = original(
      authRequest('/forwarded', ['X-Original-URI', '/public', 'X-Original-Host', 'public.example', 'X-Original-Method', 'GET', 'X-Forwarded-Method', 'GET', 'X-Forwarded-Uri', '/admin', 'X-Forwarded-Host', 'api.example.com']),
    );
    expect(request.url).toBe('/admin');
    expect(request.headers.host).toBe('api.example.com');
  });

  it('a URI with commas is one URI (never split)', () => {
    expect(original(authRequest('/forwarded', ['X-Forwarded-Method', 'GET', 'X-Forwarded-Uri', '/a,b?c=d,e', 'X-Forwarded-Host', 'h'])).request.url).toBe('/a,b?c=d,e');
  });

  it('without X-Forwarded-Uri: 400 naming it', () => {
    expect(refused(authRequest('/forwarded', ['X-Forwarded-Method', 'GET', 'X-Forwarded-Host', 'h'])).detail).toContain('x-forwarded-uri is missing');
  });
});

describe('envoy (ext_authz http_service, path_prefix /envoy)', () => {
  it('the original path follows the prefix; method and Host are the auth request\'s own', () => {
    const { style, request } = original(authRequest('/envoy/api/orders?x=1', ['Host', 'api.example.com', 'Authorization', `Bearer ${KEY}`, 'X-Forwarded-For', '192.0.2.5'], { method: 'PUT' }));
    expect(style).toBe('envoy');
    expect(request.method).toBe('PUT');
    expect(request.url).toBe('/api/orders?x=1');
    expect(request.headers.host).toBe('api.example.com');
    expect(extractCredential(request.asIncoming().headers)).toMatchObject({ key: KEY, inAuthorization: true });
  });

  it('without a Host: 400', () => {
    expect(refused(authRequest('/envoy/api', [])).code).toBe('bad_request');
  });
});

it('any other path: 404 not_found', () => {
  expect(refused(authRequest('/auth', ['X-Original-Method', 'GET', 'X-Original-URI', '/', 'X-Original-Host', 'h'])).code).toBe('not_found');
});

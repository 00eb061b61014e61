/**
 * Sandbox keys in the configuration (docs/sandbox.md): `routes[].sandbox.upstream` and
 * `headers.environment`, and the checks that keep a client from forging the environment.
 */
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/load.ts';
import { createHeaderPolicy } from '../../../src/pipeline/rewrite.ts';
import { configProblems as problems } from '../../helpers/config.ts';

const route = { name: 'api', pathPrefix: '/api', upstream: 'http://127.0.0.1:3000' };

describe('routes[].sandbox', () => {
  it('is optional, and takes an http(s) upstream', () => {
    expect(parseConfig({ routes: [route] }, 't').routes[0]!.sandbox).toBeUndefined();
    const config = parseConfig({ routes: [{ ...route, sandbox: { upstream: 'http://127.0.0.1:3001/base/' } }] }, 't');
    expect(config.routes[0]!.sandbox).toEqual({ upstream: 'http://127.0.0.1:3001/base/' });
  });

  it('refuses an upstream that is not a plain http(s) URL, naming the field', () => {
    for (const upstream of ['ftp://x', 'not a url', 'http://x/?q=1', 'http://x/#f', '127.0.0.1:3000']) {
      expect(problems({ routes: [{ ...route, sandbox: { upstream } }] }), upstream).toEqual(['routes[0].sandbox.upstream: must be an http(s) URL without query or fragment']);
    }
    expect(problems({ routes: [{ ...route, sandbox: {} }] })).toEqual(['routes[0].sandbox.upstream: is required']);
    expect(problems({ routes: [{ ...route, sandbox: { upstream: 'http://x', timeouts: {} } }] })).toEqual(['routes[0].sandbox: unknown field "timeouts"']);
    expect(problems({ routes: [{ ...route, sandbox: 'http://127.0.0.1:3001' }] })).toHaveLength(1);
  });

  it('refuses the live upstream itself (sandbox keys must never reach it)', () => {
    for (const upstream of ['http://127.0.0.1:3000', 'http://127.0.0.1:3000/', 'HTTP://127.0.0.1:3000']) {
      expect(problems({ routes: [{ ...route, sandbox: { upstream } }] }), upstream).toEqual([
        "routes[0].sandbox.upstream: must differ from the route's upstream (sandbox keys must never reach the live upstream)",
      ]);
    }
    // Same host, another path or port: a different upstream.
    expect(() => parseConfig({ routes: [{ ...route, sandbox: { upstream: 'http://127.0.0.1:3000/sandbox' } }] }, 't')).not.toThrow();
    expect(() => parseConfig({ routes: [{ ...route, sandbox: { upstream: 'http://127.0.0.1:3001' } }] }, 't')).not.toThrow();
  });

  it('needs auth.required: a public request has no key to choose by', () => {
    expect(problems({ routes: [{ ...route, auth: { required: false }, sandbox: { upstream: 'http://127.0.0.1:3001' } }] })).toEqual([
      'routes[0].sandbox: needs auth.required: true (a public request has no key, so no environment to choose the sandbox by)',
    ]);
  });
});

describe('headers.environment', () => {
  it('defaults to x-auth-environment and is a header name like the others', () => {
    expect(parseConfig({}, 't').headers.environment).toBe('x-auth-environment');
    expect(parseConfig({ headers: { environment: 'x-env' } }, 't').headers.environment).toBe('x-env');
    expect(problems({ headers: { environment: 'X Env' } })).toEqual(['headers.environment: must be a lower-case HTTP header name']);
  });

  it('is dropped from client requests like every identity header (default and configured name)', () => {
    expect(createHeaderPolicy(parseConfig({}, 't')).drop.has('x-auth-environment')).toBe(true);
    const renamed = createHeaderPolicy(parseConfig({ headers: { environment: 'x-env' } }, 't'));
    expect(renamed.drop.has('x-env')).toBe(true);
  });

  it('cannot be a route secret header or a signedIdentity header', () => {
    expect(problems({ routes: [{ ...route, secret: { id: 'tok', header: 'x-auth-environment' } }] })).toEqual([`routes[0].secret.header: is one of keygate's identity headers (headers.*)`]);
    expect(problems({ headers: { environment: 'x-env' }, routes: [{ ...route, secret: { id: 'tok', header: 'x-env' } }] })).toEqual([`routes[0].secret.header: is one of keygate's identity headers (headers.*)`]);
    expect(problems({ routes: [{ ...route, signedIdentity: { header: 'x-auth-environment' } }] })).toEqual([
      'routes[0].signedIdentity.header: is a header keygate or the route already sets, or the credential',
    ]);
    expect(problems({ routes: [{ ...route, signedIdentity: { requestIdHeader: 'x-auth-environment' } }] })).toEqual([
      'routes[0].signedIdentity.requestIdHeader: is a header keygate or the route already sets, or the credential',
    ]);
  });
});

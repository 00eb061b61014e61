/** routes[].secret in the config: what a route may inject, and where. */
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../../src/config/load.ts';

const route = { name: 'llm', pathPrefix: '/llm', upstream: 'http://127.0.0.1:9000' };

function problems(secret: unknown, extra: Record<string, unknown> = {}): string[] {
  try {
    parseConfig({ routes: [{ ...route, ...extra, secret }] }, 'test');
    return [];
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
}

describe('routes[].secret', () => {
  it('accepts an id, a header and a template, defaulting the template to {value}', () => {
    const config = parseConfig({ routes: [{ ...route, secret: { id: 'openai', header: 'x-api-key' } }] }, 'test');
    expect(config.routes[0]!.secret).toEqual({ id: 'openai', header: 'x-api-key', template: '{value}' });
    expect(problems({ id: 'openai', header: 'authorization', template: 'Bearer {value}' })).toEqual([]);
  });

  it('refuses ids the secrets commands cannot create', () => {
    expect(problems({ id: 'Open AI', header: 'authorization' })[0]).toMatch(/^routes\[0\]\.secret\.id: must be 1-64 lower-case letters/);
  });

  it('refuses headers keygate or HTTP framing owns', () => {
    for (const header of ['host', 'content-length', 'transfer-encoding', 'connection', 'x-forwarded-for']) {
      expect(problems({ id: 'openai', header })[0], header).toMatch(/^routes\[0\]\.secret\.header: cannot be/);
    }
    expect(problems({ id: 'openai', header: 'x-tenant-id' })).toEqual(["routes[0].secret.header: is one of keygate's identity headers (headers.*)"]);
  });

  it('refuses a template without {value}, or one that is not a valid header value', () => {
    expect(problems({ id: 'openai', header: 'authorization', template: 'Bearer' })).toEqual(['routes[0].secret.template: must contain {value}']);
    expect(problems({ id: 'openai', header: 'authorization', template: 'Bearer {value}\r\nx-evil: 1' })[0]).toMatch(/^routes\[0\]\.secret\.template: must be printable ASCII/);
  });

  it('refuses a secret on a public route, where anyone could use it', () => {
    expect(problems({ id: 'openai', header: 'authorization' }, { auth: { required: false } })).toEqual([
      'routes[0].secret: needs auth.required: true (a public route would let anyone use the secret)',
    ]);
  });
});

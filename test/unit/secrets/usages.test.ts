/**
 * secrets/usages.ts: every place a validated config names a stored secret (a route's
 * injected secret, a webhook route's signing secrets), with the route and the config path —
 * and a guard that walks the config schema for every field validated as a secret id, so a
 * new kind of reference that usages.ts does not know fails here instead of letting
 * `DELETE /v1/secrets/{id}` remove a secret that is in use.
 */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { parseConfig } from '../../../src/config/load.ts';
import { configSchema, type Config, type RawConfig } from '../../../src/config/schema.ts';
import { SECRET_ID_PATTERN } from '../../../src/secrets/secret-store.ts';
import { describeUsage, describeUsages, secretReferences, secretUsages, SECRET_USAGE_KINDS, toPublicUsage } from '../../../src/secrets/usages.ts';

const config = (raw: RawConfig): Config => parseConfig(raw, 'test');

/** Every kind of reference, some ids named more than once, and routes that name none. */
const FULL = config({
  notifications: { webhooks: [{ url: 'https://hooks.example.com/keygate', secretEnv: 'openai' }] },
  routes: [
    { name: 'plain', pathPrefix: '/plain', upstream: 'http://127.0.0.1:1' },
    { name: 'llm', pathPrefix: '/llm', upstream: 'http://127.0.0.1:1', secret: { id: 'openai', header: 'authorization', template: 'Bearer {value}' } },
    { name: 'stripe', pathPrefix: '/hooks/stripe', upstream: 'http://127.0.0.1:1', auth: { required: false }, webhook: { scheme: 'stripe', secrets: ['stripe-old', 'stripe-new'] } },
    { name: 'llm-eu', pathPrefix: '/llm-eu', upstream: 'http://127.0.0.1:1', secret: { id: 'openai', header: 'x-upstream-token' } },
    { name: 'github-hook', pathPrefix: '/hooks/github', upstream: 'http://127.0.0.1:1', auth: { required: true }, secret: { id: 'gh-token', header: 'authorization' }, webhook: { scheme: 'github', secrets: ['gh-signing'] } },
  ],
});

describe('secretUsages', () => {
  it('finds a route secret (injected header) with its route name and config path', () => {
    expect(secretUsages(FULL, 'gh-token')).toEqual([{ kind: 'route_secret', route: 'github-hook', path: 'routes[4].secret.id' }]);
  });

  it('finds every route that injects the same secret, in config order', () => {
    expect(secretUsages(FULL, 'openai')).toEqual([
      { kind: 'route_secret', route: 'llm', path: 'routes[1].secret.id' },
      { kind: 'route_secret', route: 'llm-eu', path: 'routes[3].secret.id' },
    ]);
  });

  it('finds webhook verifier secrets by their position in webhook.secrets (both during a rotation)', () => {
    expect(secretUsages(FULL, 'stripe-old')).toEqual([{ kind: 'webhook_verifier', route: 'stripe', path: 'routes[2].webhook.secrets[0]' }]);
    expect(secretUsages(FULL, 'stripe-new')).toEqual([{ kind: 'webhook_verifier', route: 'stripe', path: 'routes[2].webhook.secrets[1]' }]);
    expect(secretUsages(FULL, 'gh-signing')).toEqual([{ kind: 'webhook_verifier', route: 'github-hook', path: 'routes[4].webhook.secrets[0]' }]);
  });

  it('lists a route that both injects and verifies with one secret twice, injection first', () => {
    const both = config({
      routes: [{ name: 'both', pathPrefix: '/b', upstream: 'http://127.0.0.1:1', secret: { id: 'shared', header: 'x-token' }, webhook: { scheme: 'hmac', secrets: ['other', 'shared'], hmac: { header: 'x-sig' } } }],
    });
    expect(secretUsages(both, 'shared')).toEqual([
      { kind: 'route_secret', route: 'both', path: 'routes[0].secret.id' },
      { kind: 'webhook_verifier', route: 'both', path: 'routes[0].webhook.secrets[1]' },
    ]);
  });

  it('is empty for an id nothing names, and for a config without routes', () => {
    expect(secretUsages(FULL, 'unused')).toEqual([]);
    expect(secretUsages(FULL, 'plain')).toEqual([]); // a route's name is not a secret id
    expect(secretUsages(config({}), 'openai')).toEqual([]);
  });

  it('does not count environment-variable names (notification secretEnv) as stored secrets', () => {
    // FULL's notification webhook names the variable "openai": only the two routes count.
    expect(secretUsages(FULL, 'openai').every((u) => u.kind === 'route_secret')).toBe(true);
    const onlyEnv = config({ notifications: { webhooks: [{ url: 'https://h.example.com/', secretEnv: 'hooks' }] } });
    expect(secretReferences(onlyEnv).size).toBe(0);
  });

  it('follows the config it is given: a changed config gives changed usages (no caching)', () => {
    const before = config({ routes: [{ name: 'llm', pathPrefix: '/llm', upstream: 'http://127.0.0.1:1', secret: { id: 'old', header: 'authorization' } }] });
    const after = config({ routes: [{ name: 'llm', pathPrefix: '/llm', upstream: 'http://127.0.0.1:1', secret: { id: 'new', header: 'authorization' } }] });
    expect(secretUsages(before, 'old')).toHaveLength(1);
    expect(secretUsages(after, 'old')).toEqual([]);
    expect(secretUsages(after, 'new')).toEqual([{ kind: 'route_secret', route: 'llm', path: 'routes[0].secret.id' }]);
  });
});

describe('secretReferences (the inverse: every id the config names)', () => {
  it('maps each named id to all its usages, and only named ids', () => {
    const refs = secretReferences(FULL);
    expect([...refs.keys()].sort()).toEqual(['gh-signing', 'gh-token', 'openai', 'stripe-new', 'stripe-old']);
    expect(refs.get('openai')).toHaveLength(2);
    for (const [id, usages] of refs) expect(usages).toEqual(secretUsages(FULL, id));
  });
});

describe('describing usages', () => {
  it('names the kind, the route and the path', () => {
    expect(describeUsage({ kind: 'route_secret', route: 'github-hook', path: 'routes[1].secret.id' })).toBe('route github-hook (routes[1].secret.id)');
    expect(describeUsage({ kind: 'webhook_verifier', route: 'stripe', path: 'routes[2].webhook.secrets[0]' })).toBe('webhook verifier of route stripe (routes[2].webhook.secrets[0])');
    expect(describeUsages(secretUsages(FULL, 'openai'))).toBe('route llm (routes[1].secret.id); route llm-eu (routes[3].secret.id)');
    expect(describeUsages([])).toBe('');
  });

  it('has a label for every kind', () => {
    for (const kind of SECRET_USAGE_KINDS) expect(describeUsage({ kind, route: 'r', path: 'p' })).not.toMatch(/undefined/);
  });

  it('the public shape carries kind, route and path only', () => {
    const extra = { kind: 'route_secret' as const, route: 'r', path: 'p', header: 'authorization', value: 'never' };
    expect(toPublicUsage(extra)).toEqual({ kind: 'route_secret', route: 'r', path: 'p' });
  });
});

describe('the config schema names secrets only where usages.ts looks', () => {
  /** Every field of the config's JSON Schema validated with SECRET_ID_PATTERN, as `routes[].secret.id`. */
  function secretIdFields(): string[] {
    const schema = z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' });
    const found = new Set<string>();
    const walk = (node: unknown, at: string, seen: Set<unknown>) => {
      if (node === null || typeof node !== 'object' || seen.has(node)) return;
      seen.add(node);
      const n = node as Record<string, any>;
      if (n.pattern === SECRET_ID_PATTERN.source) found.add(at);
      for (const [name, child] of Object.entries(n.properties ?? {})) walk(child, at ? `${at}.${name}` : name, seen);
      if (n.items) walk(n.items, `${at}[]`, seen);
      if (n.additionalProperties && typeof n.additionalProperties === 'object') walk(n.additionalProperties, `${at}.*`, seen);
      for (const key of ['anyOf', 'oneOf', 'allOf']) for (const child of n[key] ?? []) walk(child, at, seen);
      for (const child of Object.values(n.$defs ?? n.definitions ?? {})) walk(child, at, seen);
    };
    walk(schema, '', new Set());
    return [...found].sort();
  }

  it('finds the fields it knows (the walk itself works)', () => {
    expect(secretIdFields()).toContain('routes[].secret.id');
  });

  it('every secret-id field of the schema is one that usages.ts reports', () => {
    const reported = new Set([...secretReferences(FULL).values()].flat().map((u) => u.path.replace(/\[\d+\]/g, '[]')));
    expect(secretIdFields()).toEqual([...reported].sort());
  });
});

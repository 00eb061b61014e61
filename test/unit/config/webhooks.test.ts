/**
 * routes[].webhook in the config schema: defaults, and refusals that name the field and say
 * what to do (a webhook route must have a body limit; a configured tenant only without a key).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { configCommand } from '../../../src/cli/config-command.ts';
import { ConfigError, parseConfig } from '../../../src/config/load.ts';
import { loadKeyring } from '../../../src/secrets/crypto.ts';
import { SecretService } from '../../../src/secrets/service.ts';
import { CLI_CALLER } from '../../../src/keys/service.ts';
import { EmbeddedStore } from '../../../src/store/embedded/store.ts';
import { configProblems } from '../../helpers/config.ts';
import { TEST_PEPPER } from '../../helpers/pepper.ts';

const route = { name: 'hook', pathPrefix: '/hook', upstream: 'http://127.0.0.1:3000', auth: { required: false } };

const problems = configProblems;

describe('routes[].webhook', () => {
  it('fills the defaults', () => {
    const config = parseConfig({ routes: [{ ...route, webhook: { scheme: 'stripe', secrets: ['stripe-signing'] } }] }, 'test.yaml');
    expect(config.routes[0]!.webhook).toEqual({ scheme: 'stripe', secrets: ['stripe-signing'], toleranceSeconds: 300, replay: true });
    expect(config.headers.webhook).toBe('x-webhook-verified');
  });

  it('names the scheme, the secrets and the tolerance when they are wrong', () => {
    expect(problems({ routes: [{ ...route, webhook: { scheme: 'svix', secrets: ['a'] } }] })).toEqual(['routes[0].webhook.scheme: must be one of standard, stripe, github, slack, shopify, twilio, hmac']);
    expect(problems({ routes: [{ ...route, webhook: { scheme: 'github' } }] })[0]).toMatch(/^routes\[0\]\.webhook\.secrets: /);
    expect(problems({ routes: [{ ...route, webhook: { scheme: 'github', secrets: [] } }] })).toEqual(['routes[0].webhook.secrets: must name the stored signing secret']);
    expect(problems({ routes: [{ ...route, webhook: { scheme: 'github', secrets: ['a', 'b', 'c'] } }] })[0]).toMatch(/at most 2 secrets/);
    expect(problems({ routes: [{ ...route, webhook: { scheme: 'github', secrets: ['a', 'a'] } }] })).toEqual(['routes[0].webhook.secrets: must not name a secret twice']);
    expect(problems({ routes: [{ ...route, webhook: { scheme: 'github', secrets: ['Bad Id'] } }] })[0]).toMatch(/^routes\[0\]\.webhook\.secrets\[0\]: must be 1-64 lower-case/);
    expect(problems({ routes: [{ ...route, webhook: { scheme: 'github', secrets: ['a'], toleranceSeconds: 0 } }] })).toEqual(['routes[0].webhook.toleranceSeconds: must be greater than 0']);
    expect(problems({ routes: [{ ...route, webhook: { scheme: 'github', secrets: ['a'], toleranceSeconds: 10 ** 7 } }] })[0]).toMatch(/at most 604800/);
    expect(problems({ routes: [{ ...route, webhook: { scheme: 'github', secrets: ['a'], secret: 'whsec_x' } }] })).toEqual(['routes[0].webhook: unknown field "secret"']);
  });

  it('needs a body limit: the body is held in memory until it is verified', () => {
    expect(problems({ routes: [{ ...route, maxBodyBytes: 0, webhook: { scheme: 'github', secrets: ['a'] } }] })).toEqual([
      'routes[0].maxBodyBytes: must be greater than 0 on a webhook route (the body is held in memory until its signature is verified)',
    ]);
  });

  it('cannot be combined with websocket: an upgrade has no signed body', () => {
    expect(problems({ routes: [{ ...route, websocket: true, webhook: { scheme: 'github', secrets: ['a'] } }] })).toEqual([
      'routes[0].websocket: cannot be combined with webhook (an upgrade carries no signed body, so it would pass unverified)',
    ]);
  });

  it('takes a tenant only on a route without a key', () => {
    expect(problems({ routes: [{ ...route, auth: { required: true }, webhook: { scheme: 'github', secrets: ['a'], tenant: 'acme' } }] })).toEqual([
      "routes[0].webhook.tenant: needs auth.required: false (with a key, the key's tenant is sent)",
    ]);
    expect(problems({ routes: [{ ...route, webhook: { scheme: 'github', secrets: ['a'], tenant: 'Acme!' } }] })[0]).toMatch(/^routes\[0\]\.webhook\.tenant: /);
  });
});

describe('keygate config check', () => {
  it('refuses (exit 2) a new scheme configured wrong, naming the field', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'keygate-webhook-bad-'));
    try {
      const file = join(dir, 'keygate.yaml');
      writeFileSync(file, JSON.stringify({ routes: [{ ...route, webhook: { scheme: 'twilio', secrets: ['t'] } }, { ...route, name: 'h', pathPrefix: '/h', webhook: { scheme: 'hmac', secrets: ['h'], hmac: { header: 'x-sig', algorithm: 'md5' } } }] }));
      // main.ts turns a ConfigError into exit status 2, its message on stderr.
      const refused = configCommand(['check', '--config', file], { out: () => {}, err: () => {}, env: { KEYGATE_PEPPER: TEST_PEPPER }, stdin: Readable.from([]) });
      await expect(refused).rejects.toBeInstanceOf(ConfigError);
      await expect(refused).rejects.toThrow(/routes\[0\]\.webhook\.publicUrl: is required for scheme twilio/);
      await expect(refused).rejects.toThrow(/routes\[1\]\.webhook\.hmac\.algorithm: must be one of sha1, sha256, sha512/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("warns about webhook routes whose signing secrets are not stored, or that need the master key", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'keygate-webhook-check-'));
    try {
      const env = { KEYGATE_MASTER_KEY: randomBytes(32).toString('base64'), KEYGATE_PEPPER: TEST_PEPPER, KEYGATE_CONFIG: join(dir, 'keygate.yaml') };
      const db = join(dir, 'keygate.db');
      writeFileSync(
        env.KEYGATE_CONFIG,
        JSON.stringify({
          store: { path: db },
          routes: [
            { ...route, name: 'one', pathPrefix: '/one', webhook: { scheme: 'stripe', secrets: ['gone'] } },
            { ...route, name: 'two', pathPrefix: '/two', webhook: { scheme: 'standard', secrets: ['kept', 'next'] } },
          ],
        }),
      );
      const store = new EmbeddedStore({ path: db });
      await new SecretService(store, loadKeyring(env), null, 'system').add(CLI_CALLER, { id: 'kept', name: 'kept', value: `whsec_${randomBytes(24).toString('base64')}` });
      await store.close();
      const run = async (environment: NodeJS.ProcessEnv) => {
        const out: string[] = [];
        const code = await configCommand(['check'], { out: (t) => out.push(t), err: (t) => out.push(t), env: environment, stdin: Readable.from([]) });
        return { code, text: out.join('\n') };
      };
      const withKey = await run(env);
      expect(withKey.code).toBe(0);
      expect(withKey.text).toMatch(/^warning: routes\[0\] \(one\) verifies webhook signatures with secret "gone", which is not stored .*; the route answers 502 upstream_unavailable$/m);
      expect(withKey.text).toMatch(/^warning: routes\[1\] \(two\) verifies webhook signatures with secret "next", which is not stored .*; deliveries signed with it get 401 invalid_signature$/m);
      expect(withKey.text).not.toContain('"kept"');
      const { KEYGATE_MASTER_KEY: _, ...noKey } = env;
      expect((await run(noKey)).text).toMatch(/^warning: KEYGATE_MASTER_KEY is not set: routes\[0\] \(one\), routes\[1\] \(two\) verify webhook signatures with a stored secret and will answer 502 upstream_unavailable$/m);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

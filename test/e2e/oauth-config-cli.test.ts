/**
 * `keygate config check` on issue 21's options, as a user runs it: an introspection issuer
 * whose client secret is not in the environment, an SSE keep-alive that would never fire,
 * an introspection endpoint that would get the token in cleartext, and audiences on a route
 * that takes no tokens are each exit 2 naming the field; the same config with the secret set
 * is OK. The secret's value is never printed.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { runKeygate, tempDir, type TempDir } from '../helpers/process.ts';

let dir: TempDir;
const SECRET = 'e2e-introspection-secret-value';

function config(route: Record<string, unknown> = {}, introspection: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    store: { path: join(dir.path, 'keygate.db') },
    oauth: {
      issuers: [
        {
          name: 'opaque',
          issuer: 'https://as.example.com',
          tenant: 'acme',
          introspection: { endpoint: 'https://as.example.com/introspect', clientId: 'keygate', clientSecretEnv: 'KG_E2E_INTROSPECTION_SECRET', ...introspection },
        },
      ],
    },
    routes: [
      {
        name: 'mcp',
        pathPrefix: '/mcp',
        upstream: 'http://127.0.0.1:3000',
        mcp: { resource: 'https://mcp.example.com/mcp', audiences: ['https://mcp.internal.example/mcp'] },
        auth: { issuers: ['opaque'] },
        timeouts: { sseKeepAliveMs: 15_000 },
        ...route,
      },
    ],
  };
}

beforeAll(() => {
  dir = tempDir('keygate-oauth-cli-');
});

afterAll(() => dir?.remove());

it('config check: exit 2 naming the field for each bad option; OK once the secret is in the environment', async () => {
  const check = (name: string, data: Record<string, unknown>, env: NodeJS.ProcessEnv = {}) => runKeygate(['config', 'check', '--config', dir.writeYaml(name, data)], { env });
  // Every problem of a file is reported at once: one run for the three bad values.
  const bad = { ...config({ auth: {}, timeouts: { idleMs: 10_000, sseKeepAliveMs: 10_000 } }, { endpoint: 'http://as.example.com/introspect' }) };
  const [unset, good, refused] = await Promise.all([
    check('unset.yaml', config()),
    check('good.yaml', config(), { KG_E2E_INTROSPECTION_SECRET: SECRET }),
    check('bad.yaml', bad, { KG_E2E_INTROSPECTION_SECRET: SECRET }),
  ]);
  expect(unset.code, unset.stderr).toBe(2);
  expect(unset.stderr).toContain('oauth.issuers[0].introspection.clientSecretEnv: the environment variable KG_E2E_INTROSPECTION_SECRET is not set');
  expect(good.code, good.stderr).toBe(0);
  expect(good.stdout).toContain('OK');
  expect(refused.code).toBe(2);
  expect(refused.stderr).toContain('routes[0].timeouts.sseKeepAliveMs: must be less than timeouts.idleMs (10000)');
  expect(refused.stderr).toContain('oauth.issuers[0].introspection.endpoint: must be an https URL');
  expect(refused.stderr).toContain('routes[0].mcp.audiences: needs auth.issuers');
  for (const run of [unset, good, refused]) {
    expect(run.stdout + run.stderr).not.toContain(SECRET);
    expect(run.stderr).not.toMatch(/\n\s+at /);
  }
});

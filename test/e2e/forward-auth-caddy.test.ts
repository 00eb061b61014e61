/**
 * keygate's forward-auth behind the real Caddy (Debian's package, 2.6): the site block of
 * docs/forward-auth.md, run as written with the test's ports, in front of a real upstream
 * (scenarios: test/helpers/forward-auth-e2e.ts). Caddy returns keygate's refusals to the
 * client as they are.
 */
import { expect } from 'vitest';
import { docBlock, startCaddy, substitute } from '../helpers/front-proxy.ts';
import { forwardAuthScenarios } from '../helpers/forward-auth-e2e.ts';

forwardAuthScenarios({
  name: 'Caddy',
  start: ({ proxy, forwardAuth, upstream }) =>
    startCaddy(substitute(docBlock('caddy'), { 'api.example.com {': `http://api.example.com:${proxy} {\n\tbind 127.0.0.1`, '127.0.0.1:8082': `127.0.0.1:${forwardAuth}`, '127.0.0.1:3000': `127.0.0.1:${upstream}` }), proxy),
  unreachable(res) {
    // Caddy's own answer when the auth service cannot be reached: never the upstream's.
    expect(res.status).toBe(502);
  },
});

/**
 * keygate's forward-auth behind the real nginx (Debian's package): the server block of
 * docs/forward-auth.md, run as written with the test's ports, in front of a real upstream
 * (scenarios: test/helpers/forward-auth-e2e.ts). nginx accepts only 2xx, 401 and 403 from an
 * auth request; the doc's @keygate_refused location gives the client keygate's own status and
 * problem for the rest (429, 503, …).
 */
import { expect } from 'vitest';
import { expectProblem } from '../helpers/http.ts';
import { docBlock, startNginx, substitute } from '../helpers/front-proxy.ts';
import { forwardAuthScenarios } from '../helpers/forward-auth-e2e.ts';

forwardAuthScenarios({
  name: 'nginx',
  start: ({ proxy, forwardAuth, upstream }) =>
    startNginx(substitute(docBlock('nginx'), { 'listen 80;': `listen 127.0.0.1:${proxy};`, '127.0.0.1:8082': `127.0.0.1:${forwardAuth}`, '127.0.0.1:3000': `127.0.0.1:${upstream}` }), proxy),
  unreachable(res) {
    expectProblem(res, 503, 'auth_unavailable');
    expect(res.headers['cache-control']).toBe('no-store');
  },
});

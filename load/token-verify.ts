/**
 * What an OAuth access token costs keygate (auth/access-token.ts), per algorithm: the first
 * verification of a token (signature check against a JWKS already fetched) and a cache hit
 * (one SHA-256 and an LRU lookup). In-process, no HTTP; figures vary with machine load.
 *
 *   node load/token-verify.ts
 */
import { performance } from 'node:perf_hooks';
import { AccessTokens } from '../src/auth/access-token.ts';
import { parseConfig } from '../src/config/load.ts';
import { createLogger } from '../src/observability/logger.ts';
import { startTestIssuer } from '../test/helpers/oauth-issuer.ts';

const AUD = 'https://mcp.example.com/mcp';
for (const alg of ['ES256', 'RS256']) {
  const idp = await startTestIssuer(alg);
  const config = parseConfig(
    {
      oauth: { issuers: [{ name: 't', issuer: idp.issuer, jwksUri: idp.jwksUri, tenant: 'acme', algorithms: [alg as 'RS256'] }] },
      routes: [{ name: 'm', pathPrefix: '/m', upstream: 'http://127.0.0.1:1', mcp: { resource: AUD }, auth: { issuers: ['t'] } }],
    },
    'bench',
  );
  const tokens = new AccessTokens(config.oauth, { keyPrefix: 'kg', logger: createLogger({ level: 'silent' }) });
  const route = tokens.forRoute(config.routes[0]!)!;
  await route.verify(await idp.token(AUD)); // fetches the JWKS
  // Distinct tokens (RS256 signatures are deterministic: same claims, same token).
  const fresh = await Promise.all(Array.from({ length: 2000 }, (_, i) => idp.token(AUD, { claims: { jti: String(i) } })));
  let start = performance.now();
  for (const token of fresh) await route.verify(token);
  const first = (performance.now() - start) / fresh.length;
  const hits = 200_000;
  start = performance.now();
  for (let i = 0; i < hits; i++) route.verify(fresh[0]!);
  const hit = (performance.now() - start) / hits;
  console.log(`${alg}: first verification ${(first * 1000).toFixed(0)} µs/token, cache hit ${(hit * 1000).toFixed(2)} µs/request`);
  await idp.close();
}

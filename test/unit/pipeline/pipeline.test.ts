/**
 * The pipeline runner (src/pipeline/pipeline.ts) and each stage alone, over a real
 * IncomingMessage-shaped request and a real route table — no listener, no upstream.
 */
import { testDirectory } from '../../helpers/directory.ts';
import type { IncomingMessage } from 'node:http';
import { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import type { Refusal } from '../../../src/auth/refusals.ts';
import { credentialStage } from '../../../src/auth/admit.ts';
import { parseConfig } from '../../../src/config/load.ts';
import { bodyLimitStage } from '../../../src/pipeline/body-limit.ts';
import { upgradeOriginStage } from '../../../src/pipeline/cors.ts';
import { Current } from '../../../src/pipeline/current.ts';
import { Exchange } from '../../../src/pipeline/exchange.ts';
import { methodStage } from '../../../src/pipeline/method-guard.ts';
import { ANSWERED, Pipeline, type Stage, type StageResult } from '../../../src/pipeline/pipeline.ts';
import { createHeaderPolicy, rewriteStage } from '../../../src/pipeline/rewrite.ts';
import { secretStage } from '../../../src/pipeline/secret.ts';
import { matchRequest, matchStage, targetStage, upgradeMatch, upgradeStage } from '../../../src/routing/match.ts';
import { Router } from '../../../src/routing/router.ts';
import { toIdentity } from '../../../src/auth/identity.ts';
import type { KeyRecord } from '../../../src/keys/record.ts';

class TestExchange extends Exchange {
  closed = false;
  get gone(): boolean {
    return this.closed;
  }
}

function request(url: string, headers: Record<string, string> = {}, method = 'GET'): IncomingMessage {
  const rawHeaders = Object.entries({ host: 'gw', ...headers }).flat();
  const lower = Object.fromEntries(Object.entries({ host: 'gw', ...headers }).map(([k, v]) => [k.toLowerCase(), v]));
  return { url, method, headers: lower, rawHeaders, httpVersionMajor: 1, httpVersionMinor: 1, socket: new Socket() } as unknown as IncomingMessage;
}

const config = parseConfig(
  {
    routes: [
      { name: 'api', pathPrefix: '/api', upstream: 'http://127.0.0.1:1', maxBodyBytes: 10 },
      { name: 'public', pathPrefix: '/pub', upstream: 'http://127.0.0.1:1', auth: { required: false } },
      { name: 'ws', pathPrefix: '/ws', upstream: 'http://127.0.0.1:1', websocket: true, cors: { origins: ['https://app.example'] } },
      { name: 'secret', pathPrefix: '/s', upstream: 'http://127.0.0.1:1/base', stripPrefix: true, secret: { id: 'openai', header: 'authorization', template: 'Bearer {value}' } },
    ],
  },
  'test',
);
const current = new Current({ router: new Router(config.routes, () => ({}) as never), headers: createHeaderPolicy(config) });
const route = (name: string) => current.state.router.routes.find((r) => r.name === name)!;
const refusal = (code: string): Refusal => ({ code: code as Refusal['code'], outcome: 'forbidden', detail: code, headers: undefined });

function runner(front: Stage<TestExchange>[], routeStages: Stage<TestExchange>[]) {
  const refused: Refusal[] = [];
  const failed: unknown[] = [];
  const pipeline = new Pipeline(front, routeStages, { refuse: (_e, r) => refused.push(r), failed: (_e, error) => failed.push(error) });
  return { pipeline, refused, failed };
}

const setRoute = (name: string): Stage<TestExchange> => ({ name: 'set', run: (e) => void (e.route = route(name)) });
const trail = (log: string[], name: string, result?: () => StageResult, applies?: (r: ReturnType<typeof route>) => boolean): Stage<TestExchange> => ({
  name,
  run: () => {
    log.push(name);
    return result?.();
  },
  ...(applies ? { applies } : {}),
});

describe('Pipeline', () => {
  it('runs front stages, then the route stages that apply to the route, in order; a refusal stops it', () => {
    const log: string[] = [];
    const { pipeline, refused } = runner([trail(log, 'a'), setRoute('api')], [trail(log, 'b'), trail(log, 'skipped', undefined, (r) => r.name !== 'api'), trail(log, 'c', () => refusal('forbidden')), trail(log, 'd')]);
    pipeline.run(new TestExchange(request('/api'), 0));
    expect(log).toEqual(['a', 'b', 'c']);
    expect(refused.map((r) => r.code)).toEqual(['forbidden']);
    expect(pipeline.names).toEqual(['a', 'set', 'b', 'skipped', 'c', 'd']);
    expect(pipeline.stagesFor(route('api')).map((s) => s.name)).toEqual(['b', 'c', 'd']);
    expect(pipeline.stagesFor(route('public')).map((s) => s.name)).toEqual(['b', 'skipped', 'c', 'd']);
  });

  it('works out a route\'s stage list once', () => {
    let asked = 0;
    const { pipeline } = runner([setRoute('api')], [{ name: 'x', run: () => undefined, applies: () => (asked++, true) }]);
    for (let i = 0; i < 5; i++) pipeline.run(new TestExchange(request('/api'), 0));
    expect(asked).toBe(1);
  });

  it('waits for a Promise and goes on after the stage that returned it; ANSWERED ends quietly', async () => {
    const log: string[] = [];
    const { pipeline, refused } = runner([setRoute('api')], [trail(log, 'slow', () => Promise.resolve(undefined)), trail(log, 'next', () => ANSWERED), trail(log, 'never')]);
    pipeline.run(new TestExchange(request('/api'), 0));
    expect(log).toEqual(['slow']);
    await new Promise((resolve) => setImmediate(resolve));
    expect(log).toEqual(['slow', 'next']);
    expect(refused).toEqual([]);
  });

  it('a settled Promise refusal is answered; a client gone meanwhile is left alone; a throw or rejection is a failure', async () => {
    const { pipeline, refused, failed } = runner([setRoute('api')], [{ name: 'x', run: () => Promise.resolve(refusal('key_revoked')) }]);
    pipeline.run(new TestExchange(request('/api'), 0));
    const gone = new TestExchange(request('/api'), 0);
    pipeline.run(gone);
    gone.closed = true;
    await new Promise((resolve) => setImmediate(resolve));
    expect(refused.map((r) => r.code)).toEqual(['key_revoked']);
    const broken = runner([setRoute('api')], [{ name: 'boom', run: () => { throw new Error('bug'); } }]);
    broken.pipeline.run(new TestExchange(request('/api'), 0));
    const rejected = runner([setRoute('api')], [{ name: 'boom', run: () => Promise.reject(new Error('async bug')) }]);
    rejected.pipeline.run(new TestExchange(request('/api'), 0));
    await new Promise((resolve) => setImmediate(resolve));
    expect([...broken.failed, ...rejected.failed].map((e) => (e as Error).message)).toEqual(['bug', 'async bug']);
  });
});

describe('stages', () => {
  const exchange = (url: string, headers?: Record<string, string>, method?: string) => new TestExchange(request(url, headers, method), 0);

  it('method: TRACE and TRACK get 405, others go on', () => {
    expect((methodStage.run(exchange('/api', {}, 'TRACE')) as Refusal).code).toBe('method_not_allowed');
    expect((methodStage.run(exchange('/api', {}, 'TRACK')) as Refusal).detail).toMatch(/^TRACK/);
    expect(methodStage.run(exchange('/api', {}, 'DELETE'))).toBeUndefined();
  });

  it('target and match: the normalised path and host, then the route; refusals for a bad path, two hosts, no route', () => {
    const e = exchange('/x/../api/./y?q=1');
    expect(targetStage.run(e)).toBeUndefined();
    expect(e.target).toMatchObject({ path: '/api/y', query: '?q=1' });
    expect(matchStage(current).run(e)).toBeUndefined();
    expect(e.route?.name).toBe('api');
    expect((targetStage.run(exchange('/a%2fb')) as Refusal).code).toBe('bad_request');
    const none = exchange('/nothing');
    targetStage.run(none);
    expect((matchStage(current).run(none) as Refusal).code).toBe('no_route');
  });

  it('upgrades are matched once: shouldUpgrade keeps the match for the pipeline; only websocket routes upgrade', () => {
    const req = request('/ws/chat', { upgrade: 'websocket' });
    expect(upgradeMatch(req, current)).toBe(true);
    const e = new TestExchange(req, 0);
    // The route table could change meanwhile: the kept match is used, not a second one.
    req.url = '/api/changed';
    expect(upgradeStage(current).run(e)).toBeUndefined();
    expect(e.route?.name).toBe('ws');
    expect(upgradeMatch(request('/api/x'), current)).toBe(false);
    expect((upgradeStage(current).run(exchange('/api/x')) as Refusal).code).toBe('no_route');
    expect(matchRequest(request('/a%2fb'), current)).toMatchObject({ code: 'bad_request' });
  });

  it('origin (upgrades): a browser Origin the route does not list is refused; no Origin, or a listed one, passes', () => {
    const at = (origin?: string) => {
      const e = exchange('/ws', origin ? { origin } : {});
      e.route = route('ws');
      return upgradeOriginStage.run(e);
    };
    expect((at('https://evil.example') as Refusal).code).toBe('forbidden_origin');
    expect(at('https://app.example')).toBeUndefined();
    expect(at()).toBeUndefined();
    expect(upgradeOriginStage.applies!(route('api'))).toBe(false);
  });

  it('body limit: a declared length over maxBodyBytes is 413; routes with no limit skip the stage', () => {
    const e = exchange('/api', { 'content-length': '11' });
    e.route = route('api');
    expect((bodyLimitStage.run(e as never) as Refusal).code).toBe('payload_too_large');
    const ok = exchange('/api', { 'content-length': '10' });
    ok.route = route('api');
    expect(bodyLimitStage.run(ok as never)).toBeUndefined();
    expect(bodyLimitStage.applies!(route('public'))).toBe(true);
  });

  it('credential: missing and conflicting are refused, found goes on the exchange; public routes skip it', () => {
    const at = (headers: Record<string, string>) => {
      const e = exchange('/api', headers);
      e.route = route('api');
      return [credentialStage.run(e), e] as const;
    };
    expect((at({})[0] as Refusal).code).toBe('missing_credentials');
    expect((at({ 'x-api-key': 'kg_a_1', authorization: 'Bearer kg_a_2' })[0] as Refusal).code).toBe('conflicting_credentials');
    const [result, e] = at({ authorization: 'Bearer  kg_a_1' });
    expect(result).toBeUndefined();
    expect(e.credential).toMatchObject({ key: 'kg_a_1', inAuthorization: true });
    expect(credentialStage.applies!(route('public'))).toBe(false);
  });

  it('secret: the header joins the route headers; a missing secret is 502 naming it, with the outcome authentication gave', async () => {
    const found = exchange('/s');
    found.route = route('secret');
    expect(secretStage({ headerFor: () => ['authorization', 'Bearer sk'] }).run(found)).toBeUndefined();
    expect(found.routeHeaders).toEqual(['authorization', 'Bearer sk']);
    const missing = exchange('/s');
    missing.route = route('secret');
    missing.outcome = 'ok';
    const refused = (await secretStage({ headerFor: async () => 'not_found' as const }).run(missing)) as Refusal;
    expect(refused).toMatchObject({ code: 'upstream_unavailable', outcome: 'ok' });
    expect(refused.detail).toContain('"openai"');
    expect(((await secretStage(null).run(missing)) as Refusal).code).toBe('upstream_unavailable');
    expect(secretStage(null).applies!(route('api'))).toBe(false);
  });

  it('rewrite: identity headers set, the credential and client copies dropped, the route header in place of the client one', () => {
    const record = { id: 'key_1', tenant: 'acme', role: 'api-user', permissions: ['a'], group: null, user: null, client: null, status: 'active', prefix: 'kg_acme_…', createdAt: 0, expiresAt: null, revokedAt: null, revokesAt: null, lastUsedAt: null } as KeyRecord;
    const e = exchange('/s/x', { authorization: 'Bearer kg_acme_x', 'x-tenant-id': 'evil', 'x-other': 'kept' });
    targetStage.run(e);
    e.route = route('secret');
    e.identity = toIdentity(record, testDirectory({}));
    e.credential = { key: 'kg_acme_x', inApiKey: false, inAuthorization: true };
    e.routeHeaders = ['authorization', 'Bearer sk'];
    expect(rewriteStage(current, null).run(e)).toBeUndefined();
    const headers = e.headers!;
    const values = (name: string) => headers.filter((_, i) => i % 2 === 1 && headers[i - 1]!.toLowerCase() === name);
    expect(values('authorization')).toEqual(['Bearer sk']);
    expect(values('x-tenant-id')).toEqual(['acme']);
    expect(values('x-api-key-id')).toEqual(['key_1']);
    expect(values('x-other')).toEqual(['kept']);
  });
});

/**
 * Assembles a running keygate from a validated config: store → verifier (subscribed to
 * revocations) → route table → gateway on the proxy listener; operations on the admin
 * listener. `keygate serve` and the tests both start keygate through here.
 */
import cluster from 'node:cluster';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';
import type { Config } from './config/schema.ts';
import { adminAccess, createAdminServer } from './admin/server.ts';
import { AccessTokens } from './auth/access-token.ts';
import { Directory } from './users/directory.ts';
import { UserService } from './users/service.ts';
import { limitStage } from './limits/stage.ts';
import { mcpPolicyStage } from './mcp/policy-stage.ts';
import { Calendar } from './limits/quota.ts';
import { QuotaService } from './limits/quota-service.ts';
import { checkPepper } from './store/pepper-check.ts';
import { isKeygateError } from './http/problem.ts';
import { embeddedLimiter } from './cluster/limits-ipc.ts';
import { Verifier } from './auth/verify.ts';
import { FailureLimiter } from './auth/failure-limiter.ts';
import { Door } from './auth/admit.ts';
import { createKeyHasher } from './keys/hash.ts';
import { loadPepper } from './keys/pepper.ts';
import { IdentitySigner } from './auth/identity-signer.ts';
import { announceKnownKeys, receiveKnownKeys } from './cluster/known-keys-ipc.ts';
import type { Logger } from './observability/logger.ts';
import { createMetrics, observeRevocation, type KeygateMetrics } from './observability/metrics.ts';
import { RequestMetrics } from './observability/request-metrics.ts';
import { metricsSource } from './cluster/metrics-ipc.ts';
import { applyConfig, type LiveConfig, type ReloadResult } from './reload.ts';
import { createEchoUpstream } from './transports/echo-upstream.ts';
import { Gateway } from './transports/http.ts';
import { Current } from './pipeline/current.ts';
import type { StageParts } from './pipeline/stages.ts';
import { WebSockets } from './transports/websocket.ts';
import { createForwardAuthListener } from './transports/forward-auth.ts';
import { LiveExchanges } from './pipeline/live-exchanges.ts';
import { guardListener, listenerOptions, REJECTION_REASONS } from './transports/listener-limits.ts';
import { createHeaderPolicy } from './pipeline/rewrite.ts';
import { Router } from './routing/router.ts';
import { Upstreams } from './pipeline/upstreams.ts';
import { openStore, type Store } from './store/open.ts';
import { createAdminApi } from './admin/api.ts';
import { createKeyAuthenticator } from './admin/authenticate.ts';
import { createConsole } from './admin/console/console.ts';
import { EventSink, type Notify } from './events/event-sink.ts';
import { LastUsed } from './events/last-used.ts';
import { LifecycleJobs } from './events/lifecycle-jobs.ts';
import { Usage } from './events/usage.ts';
import { KeyService } from './keys/service.ts';
import { loadKeyring } from './secrets/crypto.ts';
import { SecretService } from './secrets/service.ts';
import { Vault } from './secrets/vault.ts';
import { WebhookVerifier } from './webhooks/delivery.ts';
import { WebhookMetrics } from './webhooks/metrics.ts';
import { createLeakReports } from './leaks/index.ts';

export interface Keygate {
  readonly config: Config;
  readonly store: Store;
  readonly verifier: Verifier;
  readonly service: KeyService;
  readonly secrets: SecretService;
  readonly vault: Vault;
  readonly jobs: LifecycleJobs;
  /** Per-key usage counters, written to the store in batches (events/usage.ts). */
  readonly usage: Usage;
  readonly gateway: Gateway;
  /** The route table and header policy in force. */
  readonly current: Current;
  readonly websockets: WebSockets;
  readonly metrics: KeygateMetrics;
  readonly proxyPort: number;
  readonly adminPort: number;
  readonly echoPort: number | null;
  /** The forward-auth listener's port (`forwardAuth:`), null when it is off. */
  readonly forwardAuthPort: number | null;
  /** The listeners themselves (tests watch their sockets). */
  readonly servers: { readonly proxy: Server; readonly admin: Server };
  /**
   * Re-reads the config (the `reloadConfig` given at start) and applies what can change
   * live. Throws (ConfigError) and keeps the old config if the new one is invalid.
   */
  reload(): ReloadResult;
  /** Stops accepting, lets in-flight requests finish for up to `graceMs`, then closes everything. */
  close(graceMs?: number): Promise<void>;
}

export interface StartOptions {
  config: Config;
  env: NodeJS.ProcessEnv;
  logger: Logger;
  /** The access log's logger (see createLoggers); a child of `logger` if not given. */
  accessLogger?: Logger;
  /** Where lifecycle notifications go (email, webhooks); none if not given. */
  notify?: Notify;
  /** Reads the config again for a reload (SIGHUP, POST /v1/reload); reload is refused without it. */
  reloadConfig?: () => Config;
}

/** One warning per 5 s with a count, not one per request, while the store is failing. */
/** A warning at most every 5 s for a failure that may repeat on every request, with how many were not logged. */
function throttledWarning(logger: Logger, message: string): (error: unknown) => void {
  let last = 0;
  let suppressed = 0;
  return (error) => {
    const now = Date.now();
    if (now - last < 5000) {
      suppressed++;
      return;
    }
    logger.warn({ err: { message: (error as Error).message }, failuresSinceLast: suppressed }, message);
    last = now;
    suppressed = 0;
  };
}

const storeErrorLog = (logger: Logger) => throttledWarning(logger, 'key store lookup failed');
const limitErrorLog = (logger: Logger) => throttledWarning(logger, "rate-limit decision failed; the route's onStoreError applies");

async function listen(server: Server, host: string, port: number): Promise<number> {
  // Workers each bind their own socket (SO_REUSEPORT) and the kernel spreads connections:
  // no hand-off through the primary, which leaves a connection hanging if the worker it was
  // passed to dies before accepting it.
  if (cluster.isWorker && port !== 0) server.listen({ port, host, exclusive: true, reusePort: true });
  else server.listen(port, host);
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

async function closeServer(server: Server, graceMs: number, atGraceEnd?: () => void): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  const timer = setTimeout(() => {
    atGraceEnd?.();
    // Let the ended streams' last bytes go out before the sockets are cut.
    setTimeout(() => server.closeAllConnections(), 50).unref();
  }, graceMs);
  await closed;
  clearTimeout(timer);
}

export async function startKeygate({ config: initial, env, logger, accessLogger, notify, reloadConfig }: StartOptions): Promise<Keygate> {
  let config = initial;
  const pepper = loadPepper(config, env);
  // A malformed master key stops start-up (exit 2); a missing one only disables secrets.
  const keyring = loadKeyring(env);
  // admin.hosts and the /metrics token (its variable unset or too short stops start-up, exit 2).
  const access = adminAccess(config.admin, env);
  // Redis unreachable at start: serve degraded (readyz 503, unknown keys 503) and recover.
  const store = await openStore(config, { allowUnavailable: true, logger });
  // A pepper other than the one the store's keys were made with refuses every key: stop (exit 2).
  try {
    await checkPepper(store, pepper);
  } catch (error) {
    if (!isKeygateError(error, 'auth_unavailable')) {
      await store.close();
      throw error;
    }
    logger.warn('the store cannot be reached to check that this pepper is the one its keys were made with; starting without that check');
  }
  const metrics = createMetrics({}, () => verifier);
  const storeOk = metrics.storeLatency.labels('ok');
  const storeError = metrics.storeLatency.labels('error');
  const hasher = createKeyHasher(pepper);
  const verifier = new Verifier({
    store,
    hasher,
    prefix: config.keys.prefix,
    // Filled from the store when the verifier subscribes below, kept current by its feed.
    directory: new Directory(config.permissionGroups),
    ...config.cache,
    onStoreError: storeErrorLog(logger),
    onStoreLookup: (seconds, ok) => (ok ? storeOk : storeError).observe(seconds),
    onKnown: announceKnownKeys(),
  });
  receiveKnownKeys(verifier);
  const vault = new Vault({ store, keyring, logger, lastUsedFlushMs: config.lifecycle.lastUsedFlushMs });
  store.subscribeSecrets(vault);
  await store.subscribe(verifier);
  const events = new EventSink(store, notify ?? null, logger);
  const live: LiveConfig = { keys: config.keys, tenants: config.tenants, permissionGroups: config.permissionGroups };
  const service = new KeyService(store, hasher, live, events);
  const users = new UserService(store, live, events);
  const quotas = new QuotaService(store, config.limits.quotaTimeZone, events);
  // `config` is what is in force: a secret its routes name is not removed unless forced (follows reloads).
  const secrets = new SecretService(store, keyring, events, config.tenants.system, Date.now, () => config);
  const lastUsed = new LastUsed();
  const jobs = new LifecycleJobs({ store, events, lastUsed, logger, sweepMs: config.lifecycle.sweepMs, lastUsedFlushMs: config.lifecycle.lastUsedFlushMs });
  const upstreams = new Upstreams();
  const usage = new Usage({ store, logger, flushMs: config.lifecycle.usageFlushMs, maxCounters: config.lifecycle.usageMaxCounters });
  const requestMetrics = new RequestMetrics(metrics, config.routes.map((route) => route.name), usage);
  // Issuers (and their JWKS caches) live as long as keygate; reloads keep the unchanged ones.
  const accessTokens = new AccessTokens(config.oauth, { keyPrefix: config.keys.prefix, logger, env });
  const accessLog = config.log.access ? (accessLogger ?? logger.child({ log: 'access' })) : null;
  const webhooks = new WebhookVerifier({ secrets: vault, replay: store, metrics: new WebhookMetrics(metrics.registry), logger });
  webhooks.prepare(config.routes);
  const door = new Door(verifier, FailureLimiter.create(config.limits.failedAuth));
  // Keys derived from the pepper: every instance signs and publishes the same ones.
  const signer = new IdentitySigner(pepper, config.identitySigning);
  // WebSockets, event streams and responses still streaming: ended when their key or token stops working.
  const liveExchanges = new LiveExchanges({ verifier, recheckMs: config.cache.maxAgeMs });
  // The route table and header policy in force, replaced as one by a reload.
  const current = new Current({ router: new Router(config.routes, upstreams.poolFor, accessTokens), headers: createHeaderPolicy(config) });
  // What every transport's pipeline is made of (pipeline/stages.ts).
  // Rate limits: Redis decides for every instance; the embedded store in this machine's memory.
  const limit = limitStage({
    limiter: store.limiter ?? embeddedLimiter(),
    current,
    metrics,
    onStoreError: limitErrorLog(logger),
    quotas: {
      store,
      calendar: new Calendar(config.limits.quotaTimeZone),
      onLow: (record, spec, used, remaining) => events.quotaLow(record, spec.scope, spec.quota.text, used, remaining),
    },
  });
  const mcpPolicy = mcpPolicyStage({ events, calls: metrics.mcpCalls });
  const parts: StageParts = { current, door, lastUsed, secrets: vault, signer, limit, mcpPolicy };
  const gateway = new Gateway({ ...parts, webhooks, live: liveExchanges, hooks: requestMetrics, accessLog, logger });
  const websockets = new WebSockets({ ...parts, verifier, live: liveExchanges, logger, accessLog, hooks: requestMetrics });
  // Set in the same synchronous stretch as the subscription above resolved, so no event is
  // delivered before: open WebSockets, event streams and long responses of a revoked key end
  // with it, a pushed rotation re-arms their deadlines, and after a resync (revocations may
  // have been missed) every one's key is verified again.
  verifier.onRevocationApplied = (event, appliedAt) => {
    observeRevocation(metrics, event.at, appliedAt);
    liveExchanges.revoked(event.ids);
  };
  verifier.onChanged = (hashes) => liveExchanges.changed(hashes);
  verifier.onResync = () => liveExchanges.recheck();
  // optimizeEmptyRequests: a request without a body starts with its body stream already ended,
  // so node:http schedules no stream events for the (usual) bodyless GET.
  const proxy = createServer({ keepAliveTimeout: 65_000, ...listenerOptions(config.limits), noDelay: true, optimizeEmptyRequests: true, shouldUpgradeCallback: websockets.shouldUpgrade });
  const rejected = new Map(REJECTION_REASONS.map((reason) => [reason, metrics.listenerRejections.labels(reason)]));
  guardListener(proxy, config.limits, (reason) => rejected.get(reason)!.inc());
  // Leaked-key reports from secret scanners (leaks/): one string comparison ahead of the gateway, none when not configured.
  const leaks = createLeakReports({ config: config.leakReports, keyPrefix: config.keys.prefix, store, hasher, events, logger });
  if (leaks === null) proxy.on('request', (req, res) => gateway.handle(req, res));
  else proxy.on('request', (req, res) => (req.url === leaks.path ? leaks.handle(req, res) : gateway.handle(req, res)));
  proxy.on('upgrade', websockets.handle);
  // keygate as the auth service of a proxy in front (transports/forward-auth.ts): its own listener, its own trust.
  const forwardAuth =
    config.forwardAuth === undefined
      ? null
      : createForwardAuthListener({
          ...parts,
          config: config.forwardAuth,
          limits: config.limits,
          logger,
          accessLog,
          // Counted like a request of the route it was about (and as the key's usage).
          hooks: { onCheckDone: (route, status, outcome, ms, exchange) => requestMetrics.onUpgradeDone(route, status, outcome, ms, exchange) },
          onRejected: (reason) => rejected.get(reason)!.inc(),
        }).server;
  proxy.on('checkContinue', (req, res) => (leaks !== null && req.url === leaks.path ? leaks.handle(req, res, true) : gateway.handle(req, res, true)));
  let closing: Promise<void> | null = null;
  const keyAuth = createKeyAuthenticator({ verifier, events, systemTenant: config.tenants.system, failures: FailureLimiter.create(config.limits.failedAuth) });
  const webConsole = config.admin.console.enabled
    ? createConsole({ config: config.admin.console, pepper, store, directory: verifier.directory, systemTenant: config.tenants.system, keyPrefix: config.keys.prefix, keyAuth, events, secrets, logger })
    : null;
  const admin = createAdminServer({
    store,
    draining: () => closing !== null,
    metrics: metricsSource(metrics.registry),
    console: webConsole?.handle,
    access,
    jwks: () => signer.jwks(),
    api: createAdminApi({ service, users, quotas, usage: store, secrets, verifier, events, systemTenant: config.tenants.system, logger, reload: reloadConfig ? () => reload() : undefined, authenticate: webConsole?.authenticate ?? keyAuth }),
  });
  const echo = config.echo ? createEchoUpstream() : null;

  let proxyPort: number;
  let adminPort: number;
  let echoPort: number | null = null;
  let forwardAuthPort: number | null = null;
  try {
    if (echo && config.echo) echoPort = await listen(echo, config.echo.host, config.echo.port);
    proxyPort = await listen(proxy, config.listen.host, config.listen.port);
    adminPort = await listen(admin, config.admin.host, config.admin.port);
    if (forwardAuth !== null && config.forwardAuth) forwardAuthPort = await listen(forwardAuth, config.forwardAuth.host, config.forwardAuth.port);
  } catch (error) {
    for (const server of [echo, proxy, admin, forwardAuth]) server?.close();
    await store.close();
    throw error;
  }
  jobs.start();
  usage.start();
  vault.start();
  liveExchanges.start();
  accessTokens.warm(config.routes);
  const needSecrets = config.routes.filter((r) => r.secret || r.webhook).map((r) => r.name);
  if (keyring === null && needSecrets.length) logger.warn({ routes: needSecrets }, 'KEYGATE_MASTER_KEY is not set: these routes inject an upstream secret or verify webhook signatures with one, and will answer 502');
  logger.info(
    { proxy: `${config.listen.host}:${proxyPort}`, admin: `${config.admin.host}:${adminPort}`, forwardAuth: config.forwardAuth ? `${config.forwardAuth.host}:${forwardAuthPort}` : undefined, store: config.store.kind, routes: config.routes.map((r) => r.name) },
    'keygate listening',
  );

  const reload = (): ReloadResult => {
    if (!reloadConfig) throw new Error('this keygate was started without a config file to reload');
    const next = reloadConfig();
    const result = applyConfig({ current, verifier, requestMetrics, dispatcherFor: upstreams.poolFor, live, accessTokens }, config, next);
    // Sections that need a restart keep their running values, so `config` is what is in force.
    config = { ...config, routes: next.routes, permissionGroups: next.permissionGroups, headers: next.headers, forwarded: next.forwarded, oauth: next.oauth };
    logger.info({ ...result, routes: next.routes.map((r) => r.name) }, 'configuration reloaded');
    if (result.restartNeeded.length) logger.warn({ sections: result.restartNeeded }, 'these config changes take effect only after a restart');
    return result;
  };

  return {
    get config() {
      return config;
    },
    reload,
    store,
    verifier,
    service,
    secrets,
    vault,
    jobs,
    usage,
    gateway,
    current,
    websockets,
    metrics,
    proxyPort,
    adminPort,
    echoPort,
    forwardAuthPort,
    servers: { proxy, admin },
    close(graceMs = 10_000) {
      closing ??= (async () => {
        // Behind a load balancer: keep serving while /readyz already says 503, so the balancer
        // stops sending before the listener closes.
        const delay = config.shutdown.drainDelayMs;
        if (delay > 0) {
          logger.info({ drainDelayMs: delay }, 'draining: /readyz answers 503; still serving');
          await new Promise((resolve) => setTimeout(resolve, delay));
        }
        liveExchanges.stop();
        await closeServer(proxy, graceMs, () => {
          const closed = websockets.closeAll();
          if (closed) logger.info({ websockets: closed }, 'grace period over: closed open WebSockets');
          const ended = gateway.endStreams();
          if (ended) logger.info({ streams: ended }, 'grace period over: ended open event streams');
        });
        await Promise.all([closeServer(admin, 1000), echo ? closeServer(echo, 1000) : undefined, forwardAuth ? closeServer(forwardAuth, 1000) : undefined]);
        await jobs.stop();
        await usage.stop();
        await vault.stop();
        upstreams.destroy();
        await accessTokens.close();
        await store.close();
      })();
      return closing;
    },
  };
}

/**
 * Leaked-key reports from secret scanners (README "Leaked keys"): built from the
 * `leakReports:` config section, served on the proxy listener at the configured path,
 * ahead of route matching (server.ts compares the request target with `path`, nothing
 * more). Null when the section is absent.
 *
 * @example
 *   const leakReports = createLeakReports({ config: config.leakReports, keyPrefix: config.keys.prefix, store, hasher, events, logger });
 *   proxy.on('request', (req, res) => (req.url === leakReports?.path ? leakReports.handle(req, res) : gateway.handle(req, res)));
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { LeakReportsConfig } from '../config/leak-reports.ts';
import type { EventSink } from '../events/event-sink.ts';
import type { KeyHasher } from '../keys/hash.ts';
import type { Logger } from '../observability/logger.ts';
import type { KeyStore } from '../store/key-store.ts';
import type { ReplayStore } from '../store/replay-store.ts';
import { GITHUB_ACTOR, GitHubLeakHandler } from './github.ts';
import { LeakedKeys } from './leaked-keys.ts';
import { PublicKeys } from './public-keys.ts';

export { scannerPattern, scannerRegExp } from './pattern.ts';

export interface LeakReportsOptions {
  config: LeakReportsConfig | undefined;
  keyPrefix: string;
  store: KeyStore & ReplayStore;
  hasher: KeyHasher;
  events: EventSink;
  logger: Logger;
  /** For the public keys; global fetch if not given. */
  fetch?: typeof fetch;
}

export interface LeakReports {
  /** The request target (path, no query) reports are POSTed to. */
  readonly path: string;
  /** Answers the request; `expectContinue` for a request that sent `Expect: 100-continue`. */
  handle(req: IncomingMessage, res: ServerResponse, expectContinue?: boolean): void;
}

export function createLeakReports(options: LeakReportsOptions): LeakReports | null {
  const github = options.config?.github;
  if (github === undefined) return null;
  const logger = options.logger.child({ leakReports: 'github' });
  const handler = new GitHubLeakHandler({
    config: github,
    keys: new PublicKeys({ url: github.keysUrl, cooldownMs: github.refetchCooldownMs, logger, fetch: options.fetch }),
    leaked: new LeakedKeys({ store: options.store, hasher: options.hasher, prefix: options.keyPrefix, events: options.events, action: github.action, actor: GITHUB_ACTOR }),
    logger,
  });
  logger.info({ path: github.path, action: github.action }, 'accepting GitHub secret scanning reports on the proxy listener');
  return { path: github.path, handle: (req, res, expectContinue) => handler.handle(req, res, expectContinue) };
}

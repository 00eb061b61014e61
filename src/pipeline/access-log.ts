/**
 * One access-log line per exchange, the same fields for plain requests and WebSocket
 * upgrades (pino, asynchronous; null switches the log off). Never the query string: it is
 * where careless clients put credentials.
 */
import type { Logger } from '../observability/logger.ts';
import type { Exchange } from './exchange.ts';

/** The request target without its query string. */
export function pathOf(url: string | undefined): string {
  const target = url ?? '';
  const q = target.indexOf('?');
  return q === -1 ? target : target.slice(0, q);
}

export function logExchange(log: Logger, exchange: Exchange, path: string, status: number, ms: number, upgrade?: 'websocket'): void {
  const { req, route, identity } = exchange;
  const line: Record<string, unknown> = {
    msg: 'request',
    method: req.method,
    path,
    route: route?.name ?? null,
    status,
    ms: Math.round(ms * 100) / 100,
    outcome: exchange.outcome,
    code: exchange.error,
    keyId: identity?.record.id || null,
    issuer: identity?.issuer,
    tenant: identity?.record.tenant ?? null,
    // live or sandbox: which upstream the key was for (null without one).
    environment: identity?.record.environment ?? null,
  };
  if (upgrade !== undefined) line.upgrade = upgrade;
  log.info(line);
}

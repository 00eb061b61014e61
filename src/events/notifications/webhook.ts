/**
 * Webhook delivery, signed per Standard Webhooks (https://www.standardwebhooks.com/):
 * a JSON POST with `webhook-id` (the event id, the same on every retry, so receivers can
 * drop duplicates), `webhook-timestamp` (unix seconds of this attempt) and
 * `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, keyed with the
 * base64-decoded part of the `whsec_…` secret. Receivers verify with any Standard Webhooks
 * library, e.g. `new Webhook(secret).verify(body, headers)`.
 */
import { createHmac } from 'node:crypto';
import type { KeygateEvent, KeygateEventType } from '../types.ts';
import type { WebhookConfig } from '../../config/notifications.ts';
import { describeError, type Destination, type Outcome } from './destination.ts';
import { webhookBody } from './format.ts';

export const WEBHOOK_SECRET_PREFIX = 'whsec_';
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * The signing key inside a `whsec_<base64>` secret, or a problem (which never quotes the
 * secret). The spec asks for 24 to 64 random bytes.
 */
export function parseWebhookSecret(value: string): { key: Buffer } | { problem: string } {
  const secret = value.trim();
  const expected = `must hold a Standard Webhooks secret "whsec_<base64 of 24-64 random bytes>" (e.g. "whsec_$(openssl rand -base64 32)")`;
  if (!secret.startsWith(WEBHOOK_SECRET_PREFIX)) return { problem: `${expected}; it does not start with "whsec_"` };
  const encoded = secret.slice(WEBHOOK_SECRET_PREFIX.length);
  if (encoded === '' || !BASE64.test(encoded)) return { problem: `${expected}; the part after "whsec_" is not standard base64` };
  const key = Buffer.from(encoded, 'base64');
  if (key.length < 24 || key.length > 64) return { problem: `${expected}; it decodes to ${key.length} bytes` };
  return { key };
}

/** `v1,<base64 signature>` of one attempt. */
export function signWebhook(key: Buffer, id: string, timestampSeconds: number, body: string): string {
  return `v1,${createHmac('sha256', key).update(`${id}.${timestampSeconds}.${body}`).digest('base64')}`;
}

/** Milliseconds from a `Retry-After` header (seconds or an HTTP date), if it holds one. */
export function parseRetryAfter(value: string | null, now: number): number | undefined {
  if (value === null) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

export interface WebhookDestinationOptions {
  config: WebhookConfig;
  key: Buffer;
  events: ReadonlySet<KeygateEventType>;
  fetch: typeof fetch;
  userAgent: string;
  now?: () => number;
}

export function createWebhookDestination({ config, key, events, fetch, userAgent, now = Date.now }: WebhookDestinationOptions): Destination {
  const host = new URL(config.url).host;
  return {
    kind: 'webhook',
    host,
    events,
    async deliver(event: KeygateEvent, signal: AbortSignal): Promise<Outcome> {
      if (signal.aborted) return { ok: false, retry: false, reason: 'aborted: notifier closed' };
      const body = webhookBody(event);
      const timestamp = Math.floor(now() / 1000);
      // One controller per attempt, tied to the notifier's (close) and to a timeout, and
      // untied afterwards: nothing accumulates on the long-lived signal.
      const attempt = new AbortController();
      let timedOut = false;
      const onClose = () => attempt.abort(signal.reason);
      signal.addEventListener('abort', onClose, { once: true });
      const timer = setTimeout(() => {
        timedOut = true;
        attempt.abort(new DOMException(`timed out after ${config.timeoutMs} ms`, 'TimeoutError'));
      }, config.timeoutMs);
      let response: Response;
      try {
        response = await fetch(config.url, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            'user-agent': userAgent,
            'webhook-id': event.id,
            'webhook-timestamp': String(timestamp),
            'webhook-signature': signWebhook(key, event.id, timestamp, body),
          },
          body,
          redirect: 'manual',
          signal: attempt.signal,
        });
      } catch (error) {
        if (signal.aborted) return { ok: false, retry: false, reason: 'aborted: notifier closed' };
        if (timedOut) return { ok: false, retry: true, reason: `timed out after ${config.timeoutMs} ms` };
        return { ok: false, retry: true, reason: describeError(error) };
      } finally {
        clearTimeout(timer);
        signal.removeEventListener('abort', onClose);
      }
      // The answer's body is not needed; release the connection.
      response.body?.cancel().catch(() => {});
      if (response.status >= 200 && response.status < 300) return { ok: true };
      const reason = response.status >= 300 && response.status < 400 ? `HTTP ${response.status} (redirects are not followed)` : `HTTP ${response.status}`;
      const retryAfterMs = parseRetryAfter(response.headers.get('retry-after'), now());
      return { ok: false, retry: isRetryableStatus(response.status), reason, ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) };
    },
    async close(): Promise<void> {},
  };
}

/**
 * Tells admins about key (and secret) events by email and signed webhook, without ever
 * holding up the operation that caused them.
 *
 * `notify` only copies the event's known fields into a bounded in-memory queue and returns;
 * deliveries run in the background, a few at a time, each retried with exponential back-off
 * and jitter while the failure may be temporary (network errors, timeouts, HTTP 408/429/5xx,
 * SMTP 4xx). When the queue is full a delivery is dropped and logged, never blocked on.
 * Failures are logged with the event id and type and the destination's host: never a URL
 * path, a secret or anything from the event beyond its id and type.
 *
 * The queue is per process and not persisted: what is still pending at shutdown after
 * `flush` is logged as not delivered. The audit log remains the record of what happened.
 *
 * @example
 *   const notifier = createNotifier({ config: config.notifications, env: process.env, logger });
 *   const keygate = await startKeygate({ config, env, logger, notify: notifier.notify });
 *   // at shutdown:
 *   await notifier.flush(5000);
 *   await notifier.close();
 */
import { setMaxListeners } from 'node:events';
import { ConfigError } from '../../config/load.ts';
import type { Logger } from '../../observability/logger.ts';
import type { KeygateEvent, KeygateEventType } from '../types.ts';
import type { NotificationsConfig } from '../../config/notifications.ts';
import { describeError, type Destination, type Outcome } from './destination.ts';
import { createEmailDestination } from './email.ts';
import { publicEvent } from './format.ts';
import { createWebhookDestination, parseWebhookSecret } from './webhook.ts';

export interface NotifierOptions {
  /** The validated `notifications:` section. */
  config: NotificationsConfig;
  /** Where `passwordEnv` and `secretEnv` are looked up (process.env in production). */
  env: NodeJS.ProcessEnv;
  logger: Logger;
  /** For webhooks; global fetch if not given. */
  fetch?: typeof fetch;
  /** Jitter source, [0, 1); Math.random if not given. */
  random?: () => number;
}

export interface Notifier {
  /** Queues the event for every destination that wants its type. Returns at once; never throws. */
  notify(event: KeygateEvent): void;
  /** Resolves when nothing is queued, in flight or waiting to retry, or after `timeoutMs`. */
  flush(timeoutMs: number): Promise<void>;
  /** Drops what is still queued (logged), aborts webhook requests in flight, closes the SMTP pool. */
  close(): Promise<void>;
  /** Deliveries queued, in flight or waiting to retry. */
  readonly pending: number;
}

interface Delivery {
  readonly event: KeygateEvent;
  readonly destination: Destination;
  /** Attempts made so far. */
  attempts: number;
}

export interface RetryPolicy {
  attempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

/**
 * The wait before the next attempt, after `attempt` attempts have failed: base × 2^(attempt-1),
 * ±25% jitter, capped at maxDelayMs; at least what a `Retry-After` asked for (also capped).
 */
export function retryDelay(policy: RetryPolicy, attempt: number, random: () => number, retryAfterMs?: number): number {
  const nominal = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
  let delay = Math.min(policy.maxDelayMs, Math.round(nominal * (0.75 + random() * 0.5)));
  if (retryAfterMs !== undefined) delay = Math.max(delay, Math.min(retryAfterMs, policy.maxDelayMs));
  return delay;
}

/**
 * Reads the secrets the config names from the environment and builds the destinations.
 * Every missing or malformed secret is reported at once, as a ConfigError naming the field
 * and the variable (never its value).
 */
function createDestinations({ config, env, fetch: fetchImpl }: NotifierOptions): Destination[] {
  const problems: string[] = [];
  const wanted = (own: readonly KeygateEventType[] | undefined) => new Set<KeygateEventType>(own ?? config.events);
  const read = (name: string): string | undefined => {
    const value = env[name];
    return value === undefined || value === '' ? undefined : value;
  };

  let password: string | undefined;
  const email = config.email;
  if (email?.smtp.passwordEnv !== undefined) {
    password = read(email.smtp.passwordEnv);
    if (password === undefined) problems.push(`notifications.email.smtp.passwordEnv: the environment variable ${email.smtp.passwordEnv} is not set (it must hold the SMTP password)`);
  }

  const keys: Buffer[] = [];
  config.webhooks.forEach((webhook, i) => {
    const field = `notifications.webhooks[${i}].secretEnv`;
    const secret = read(webhook.secretEnv);
    if (secret === undefined) {
      problems.push(`${field}: the environment variable ${webhook.secretEnv} is not set (it must hold the webhook signing secret, "whsec_<base64>")`);
      return;
    }
    const parsed = parseWebhookSecret(secret);
    if ('problem' in parsed) problems.push(`${field}: the environment variable ${webhook.secretEnv} ${parsed.problem}`);
    else keys[i] = parsed.key;
  });

  if (problems.length > 0) throw new ConfigError('the environment', problems);

  const destinations: Destination[] = [];
  if (email) destinations.push(createEmailDestination({ config: email, password, events: wanted(email.events) }));
  config.webhooks.forEach((webhook, i) => {
    destinations.push(
      createWebhookDestination({ config: webhook, key: keys[i]!, events: wanted(webhook.events), fetch: fetchImpl ?? globalThis.fetch, userAgent: 'keygate-notifications' }),
    );
  });
  return destinations;
}

/** Builds the notifier; throws a ConfigError if a secret the config names is missing or malformed. */
export function createNotifier(options: NotifierOptions): Notifier {
  const { config, logger } = options;
  const random = options.random ?? Math.random;
  const destinations = createDestinations(options);
  const { max, concurrency } = config.queue;

  const ready: Delivery[] = [];
  const waiting = new Map<NodeJS.Timeout, Delivery>();
  const inFlight = new Set<Promise<void>>();
  let idleWaiters: (() => void)[] = [];
  const controller = new AbortController();
  // Each delivery in flight listens for close(); up to `concurrency` at once.
  setMaxListeners(concurrency + 10, controller.signal);
  let pumpScheduled = false;
  let closed = false;
  let closing: Promise<void> | null = null;

  const held = () => ready.length + waiting.size + inFlight.size;
  const fields = (d: Delivery) => ({ event: d.event.id, eventType: d.event.type, destination: d.destination.kind, host: d.destination.host });

  function checkIdle(): void {
    if (held() > 0 || idleWaiters.length === 0) return;
    const waiters = idleWaiters;
    idleWaiters = [];
    for (const resolve of waiters) resolve();
  }

  function settle(delivery: Delivery, outcome: Outcome): void {
    if (outcome.ok) {
      logger.debug({ ...fields(delivery), attempts: delivery.attempts }, 'notification delivered');
      return;
    }
    if (closed) return; // counted and logged by close()
    const { attempts } = config.retry;
    if (outcome.retry && delivery.attempts < attempts) {
      const retryInMs = retryDelay(config.retry, delivery.attempts, random, outcome.retryAfterMs);
      logger.warn({ ...fields(delivery), attempt: delivery.attempts, attempts, reason: outcome.reason, retryInMs }, 'notification delivery failed; will retry');
      const timer = setTimeout(() => {
        waiting.delete(timer);
        ready.push(delivery);
        pump();
      }, retryInMs);
      timer.unref();
      waiting.set(timer, delivery);
      return;
    }
    logger.warn(
      { ...fields(delivery), attempt: delivery.attempts, attempts, reason: outcome.reason },
      outcome.retry ? 'notification not delivered: giving up after the last attempt' : 'notification not delivered: the destination refused it (not retried)',
    );
  }

  function start(delivery: Delivery): void {
    delivery.attempts++;
    const running: Promise<void> = delivery.destination
      .deliver(delivery.event, controller.signal)
      .catch((error: unknown): Outcome => ({ ok: false, retry: true, reason: describeError(error) }))
      .then((outcome) => settle(delivery, outcome))
      .catch((error: unknown) => logger.error({ ...fields(delivery), reason: describeError(error) }, 'notification delivery crashed'))
      .finally(() => {
        inFlight.delete(running);
        pump();
        checkIdle();
      });
    inFlight.add(running);
  }

  function pump(): void {
    while (!closed && inFlight.size < concurrency && ready.length > 0) start(ready.shift()!);
  }

  /** Deliveries start on a later turn of the event loop, never inside the caller's. */
  function schedulePump(): void {
    if (pumpScheduled) return;
    pumpScheduled = true;
    setImmediate(() => {
      pumpScheduled = false;
      pump();
    });
  }

  function notify(event: KeygateEvent): void {
    try {
      if (destinations.length === 0) return;
      const safe = publicEvent(event);
      if (closed) {
        logger.warn({ event: safe.id, eventType: safe.type }, 'notification dropped: the notifier is closed');
        return;
      }
      let queued = false;
      for (const destination of destinations) {
        if (!destination.events.has(safe.type)) continue;
        const delivery: Delivery = { event: safe, destination, attempts: 0 };
        if (held() >= max) {
          logger.warn({ ...fields(delivery), queueMax: max }, 'notification dropped: the delivery queue is full');
          continue;
        }
        ready.push(delivery);
        queued = true;
      }
      if (queued) schedulePump();
    } catch (error) {
      try {
        logger.error({ reason: describeError(error) }, 'notification could not be queued');
      } catch {
        // nothing left to do: notify never throws
      }
    }
  }

  function flush(timeoutMs: number): Promise<void> {
    if (held() === 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        idleWaiters = idleWaiters.filter((w) => w !== done);
        resolve();
      }, timeoutMs);
      idleWaiters.push(done);
    });
  }

  async function shutDown(): Promise<void> {
    const dropped = [...ready, ...waiting.values()];
    const interrupted = inFlight.size;
    for (const timer of waiting.keys()) clearTimeout(timer);
    waiting.clear();
    ready.length = 0;
    controller.abort();
    // Webhook requests end on the abort; an SMTP send cannot be interrupted, so give it a moment.
    let grace: NodeJS.Timeout | undefined;
    await Promise.race([Promise.allSettled([...inFlight]), new Promise<void>((resolve) => (grace = setTimeout(resolve, 1000).unref()))]);
    clearTimeout(grace);
    await Promise.allSettled(destinations.map((d) => d.close()));
    if (dropped.length + interrupted > 0) {
      logger.warn(
        { dropped: dropped.length, interrupted, events: [...new Set(dropped.map((d) => d.event.id))].slice(0, 50) },
        'notifications not delivered: the notifier was closed with deliveries pending',
      );
    }
    const waiters = idleWaiters;
    idleWaiters = [];
    for (const resolve of waiters) resolve();
  }

  if (destinations.length > 0) {
    logger.info(
      {
        email: config.email ? { host: `${config.email.smtp.host}:${config.email.smtp.port}`, recipients: config.email.to.length } : null,
        webhooks: config.webhooks.map((w) => new URL(w.url).host),
      },
      'notifications enabled',
    );
  }

  return {
    notify,
    flush,
    close: () => {
      closed = true;
      return (closing ??= shutDown());
    },
    get pending() {
      return held();
    },
  };
}

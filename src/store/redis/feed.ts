/**
 * The Redis store's revocation feed (docs/redis.md, "Staleness rules"). Long-running
 * processes `subscribe`: a dedicated connection listens on the revocation channel (a shard
 * channel, SSUBSCRIBE, on the prefix's shard in Cluster mode) and on the secrets channel.
 * `healthy` is true only while it is subscribed and caught up: when it comes back after a
 * disconnect it first confirms the SUBSCRIBE, then replays the revocation log from the last
 * event this process applied, so every instance applies every revocation, in order, and
 * nothing cached has to be dropped. Only when the log cannot cover the gap (trimmed past
 * it, or rewritten by a failover that lost writes) is the feed told to `resync`: cached
 * answers are re-checked, still served meanwhile only if Redis cannot answer. A PING on
 * that connection every `heartbeatMs` catches a connection that died silently.
 */
import type { Redis } from 'ioredis';
import { StoreUnavailableError, type StoreFeed } from '../key-store.ts';
import { errorMessage, type Commands } from './commands.ts';
import { createSubscriberConnection, keySlot, parseNodeAddress, slotOwner, type NodeAddress } from './connection.ts';
import { logEntries, parseKeyMessage, position, type KeyChannelMessage, type LogEntry } from './messages.ts';
import { strings } from './record-codec.ts';

/** Who hears the secrets channel (secrets.ts): its messages, and when to drop everything. */
export interface SecretsListener {
  message(message: string): void;
  resync(): void;
}

export class RevocationFeed {
  readonly #redis: Commands;
  readonly #heartbeatMs: number;
  readonly #secrets: SecretsListener;
  #feed: StoreFeed | null = null;
  #sub: Redis | null = null;
  #subAttempt = 0;
  /** Bumped on every subscriber (re)connect and disconnect: stale SUBSCRIBE replies are ignored. */
  #subEpoch = 0;
  #subscribed = false;
  #heartbeat: NodeJS.Timeout | null = null;
  #beating = false;
  #firstSubscription: { resolve: () => void } | null = null;
  /** Cluster: where the next subscriber connects (a MOVED reply named it), if known. */
  #subTarget: NodeAddress | null = null;
  /**
   * The revocation log position: every event numbered up to #applied has been applied by
   * this process (-1: not known yet; set when the feed first subscribes), #appliedId is that
   * event's log id. Events applied out of order (a local revocation overtaking a message,
   * or messages during a replay) wait in #ahead until the numbers below them are in, so an
   * event is applied, and counted, once: whichever of the local copy, the channel's copy
   * and the log's copy comes first.
   */
  #applied = -1;
  #appliedId = '0-0';
  readonly #ahead = new Map<number, string>();
  #catchingUp: Promise<void> | null = null;
  #catchUpTimer: NodeJS.Timeout | null = null;
  #catchUpAttempt = 0;

  constructor(redis: Commands, heartbeatMs: number, secrets: SecretsListener) {
    this.#redis = redis;
    this.#heartbeatMs = heartbeatMs;
    this.#secrets = secrets;
  }

  get healthy(): boolean {
    return this.#subscribed;
  }

  /** The revocation log position this process has applied up to (-1: none yet). */
  get position(): number {
    return this.#applied;
  }

  get #closed(): boolean {
    return this.#redis.closed;
  }

  /**
   * A revocation script's {at, ids, hashes, seq, logId}: applied to this process's feed at
   * once, so the revoking instance refuses the key as soon as the call returns, even before
   * the message comes back over the channel. Returns the revoked ids.
   */
  applyLocally(reply: unknown): string[] {
    if (!Array.isArray(reply)) return [];
    const ids = strings(reply[1]);
    const hashes = strings(reply[2]);
    const at = Number(reply[0]);
    if (ids.length) this.deliver({ revoked: { ids, hashes, at }, ...position(reply[3], reply[4]) });
    return ids;
  }

  /**
   * Applies one key event to the feed, unless this process has applied it already (by its
   * log number). Events without a number (a writer older than the log) are applied as they come.
   */
  deliver(event: KeyChannelMessage): void {
    const feed = this.#feed;
    if (!feed) return;
    const { seq, id } = event;
    if (seq !== undefined && id !== undefined && this.#applied >= 0) {
      if (seq <= this.#applied || this.#ahead.has(seq)) return;
      this.#ahead.set(seq, id);
      while (this.#ahead.has(this.#applied + 1)) {
        this.#applied++;
        this.#appliedId = this.#ahead.get(this.#applied)!;
        this.#ahead.delete(this.#applied);
      }
      // A number was skipped: its message may still be on its way (a local revocation can
      // overtake another instance's message); if it is not there shortly, read the log.
      if (this.#ahead.size > 0 && this.#subscribed) this.#scheduleCatchUp(25);
    }
    if ('changed' in event) feed.changed(event.changed);
    else if ('directory' in event) feed.directoryChanged(event.directory);
    else feed.revoked(event.revoked);
  }

  #onMessage(message: string): void {
    const feed = this.#feed;
    if (!feed) return;
    const parsed = parseKeyMessage(message);
    if (parsed === null) {
      // Something unreadable on our channel may have been a revocation: trust nothing cached.
      this.#redis.logger?.warn({ channel: this.#redis.keys.channel }, 'unreadable revocation message; re-checking every cached key');
      feed.resync();
      return;
    }
    this.deliver(parsed);
  }

  /** The last entry of the revocation log, or null if it is empty. */
  async #logTail(): Promise<LogEntry | null> {
    return logEntries(await this.#redis.call('XREVRANGE', this.#redis.keys.log, '+', '-', 'COUNT', 1))[0] ?? null;
  }

  #rebase(tail: LogEntry | null): void {
    this.#applied = tail?.n ?? 0;
    this.#appliedId = tail?.id ?? '0-0';
    this.#ahead.clear();
  }

  /**
   * Applies, in order, every logged event after the last one this process applied. The
   * first time (no position yet) it only takes the log's end as its position, and has the
   * feed re-check what it may have cached before. If the log no longer holds that last
   * event (trimmed past it, or rewritten: a failover that lost writes, a deleted log), the
   * gap cannot be covered: the feed is told to resync and the position moves to the log's end.
   */
  #catchUp(): Promise<void> {
    this.#catchingUp ??= this.#replay().finally(() => (this.#catchingUp = null));
    return this.#catchingUp;
  }

  async #replay(): Promise<void> {
    const log = this.#redis.keys.log;
    if (this.#applied < 0) {
      this.#rebase(await this.#logTail());
      this.#feed?.resync();
      return;
    }
    if (this.#appliedId !== '0-0') {
      const here = logEntries(await this.#redis.call('XRANGE', log, this.#appliedId, this.#appliedId));
      if (here[0]?.n !== this.#applied) {
        this.#redis.logger?.warn({ log }, 'the revocation log no longer holds the last event this instance applied; re-checking every cached key');
        this.#rebase(await this.#logTail());
        this.#feed?.resync();
        return;
      }
    }
    let from = this.#appliedId === '0-0' ? '-' : `(${this.#appliedId}`;
    let first = true;
    for (;;) {
      const page = logEntries(await this.#redis.call('XRANGE', log, from, '+', 'COUNT', 500));
      for (const entry of page) {
        if (first && entry.n > this.#applied + 1 && !this.#ahead.has(this.#applied + 1)) {
          this.#redis.logger?.warn({ log }, 'revocation log entries are missing; re-checking every cached key');
          this.#applied = entry.n - 1;
          this.#appliedId = entry.id;
          this.#feed?.resync();
        }
        first = false;
        if (entry.event) this.deliver(entry.event);
        else if (entry.n > this.#applied) {
          // An entry that cannot be read may have been a revocation.
          this.#redis.logger?.warn({ log }, 'unreadable revocation log entry; re-checking every cached key');
          this.deliver({ changed: [], seq: entry.n, id: entry.id });
          this.#feed?.resync();
        }
      }
      if (page.length < 500) break;
      from = `(${page[page.length - 1]!.id}`;
    }
  }

  /** Catches up after `delayMs` (once, however often asked), retrying while Redis does not answer. */
  #scheduleCatchUp(delayMs: number): void {
    if (this.#catchUpTimer || this.#closed) return;
    this.#catchUpTimer = setTimeout(() => {
      this.#catchUpTimer = null;
      if (this.#closed || this.#ahead.size === 0) return;
      this.#catchUp().then(
        () => (this.#catchUpAttempt = 0),
        (error: unknown) => {
          this.#redis.logger?.debug({ err: { message: errorMessage(error) } }, 'revocation log replay failed; retrying');
          this.#scheduleCatchUp(Math.min(1000, 50 * 2 ** Math.min(this.#catchUpAttempt++, 5)));
        },
      );
    }, delayMs);
    this.#catchUpTimer.unref();
  }

  async subscribe(feed: StoreFeed): Promise<void> {
    if (this.#closed) throw new StoreUnavailableError('the Redis store is closed');
    this.#feed = feed;
    if (this.#sub) return;
    const first = new Promise<void>((resolve) => (this.#firstSubscription = { resolve }));
    this.#openSubscriber();
    this.#heartbeat = setInterval(() => this.#beat(), this.#heartbeatMs);
    this.#heartbeat.unref();
    // Start with a working feed when Redis is up; never hold up a degraded start.
    if (this.#redis.client.status === 'ready') {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([first, new Promise<void>((resolve) => (timer = setTimeout(resolve, 2000)))]);
      clearTimeout(timer);
    }
  }

  /** Cluster: the node the subscriber should use, the primary of the prefix's slot if known. */
  #subscriberNode(): NodeAddress | null {
    if (!this.#redis.cluster) return null;
    return this.#subTarget ?? slotOwner(this.#redis.client, keySlot(this.#redis.keys.channel));
  }

  /** Cluster: drops the subscriber connection and opens one to `target` (or the slot's owner). */
  #moveSubscriber(target: NodeAddress | null): void {
    const old = this.#sub;
    if (!old || this.#closed) return;
    this.#subTarget = target;
    this.#feedLost();
    this.#openSubscriber();
    old.disconnect();
  }

  #openSubscriber(): void {
    const { config, client, cluster, keys, logger } = this.#redis;
    const sub = createSubscriberConnection(config, client, this.#subAttempt++, this.#subscriberNode());
    this.#sub = sub;
    sub.on('error', (error: Error) => logger?.debug({ err: { message: error.message } }, 'redis subscriber connection error'));
    const onMessage = (channel: string, message: string) => {
      if (this.#sub !== sub) return;
      if (channel === keys.channel) this.#onMessage(message);
      else if (channel === keys.secretsChannel) this.#secrets.message(message);
    };
    // Cluster: shard channels, delivered by the node that ran the script (no bus relay).
    sub.on(cluster ? 'smessage' : 'message', onMessage);
    // The slot moved to another node (Redis unsubscribes us): follow it. Deferred, so that
    // a MOVED reply to our own SSUBSCRIBE is followed to the node it names (below) instead.
    if (cluster) sub.on('moved', () => setImmediate(() => this.#sub === sub && this.#moveSubscriber(null)));
    sub.on('ready', () => {
      if (this.#sub !== sub) return;
      const epoch = ++this.#subEpoch;
      const channels = [keys.channel, keys.secretsChannel];
      (cluster ? sub.ssubscribe(...channels) : sub.subscribe(...channels)).then(
        () => {
          if (this.#sub !== sub || epoch !== this.#subEpoch || this.#closed) return;
          // Subscribed first, then caught up from the log: a revocation written during the
          // gap is either in the log (replayed) or arrives as a message.
          this.#secrets.resync();
          this.#afterSubscribe(sub, epoch, 0);
        },
        (error: unknown) => {
          if (this.#sub !== sub || epoch !== this.#subEpoch || this.#closed) return;
          const moved = /^MOVED \d+ (\S+)/.exec(errorMessage(error));
          if (moved && cluster) {
            this.#moveSubscriber(parseNodeAddress(moved[1]!));
            return;
          }
          logger?.warn({ err: { message: errorMessage(error) } }, 'revocation feed: SUBSCRIBE failed; reconnecting');
          sub.disconnect(true);
        },
      );
    });
    sub.on('close', () => {
      if (this.#sub === sub) this.#feedLost();
    });
    sub.on('end', () => {
      // Gave up reconnecting (Cluster: this node); try the slot's owner, or the next node.
      if (this.#sub === sub && !this.#closed) {
        this.#subTarget = null;
        this.#openSubscriber();
      }
    });
  }

  /**
   * Subscribed: replays the log, then reports the feed healthy. Until the replay succeeds
   * (the command connection may come back after the subscriber) the feed stays unhealthy,
   * and cached answers are not dropped: requests go to Redis and, while it cannot answer,
   * fall back to recent cached answers (docs/redis.md, "Staleness rules").
   */
  #afterSubscribe(sub: Redis, epoch: number, attempt: number): void {
    const current = () => this.#sub === sub && epoch === this.#subEpoch && !this.#closed;
    this.#catchUp().then(
      () => {
        if (!current()) return;
        this.#subscribed = true;
        this.#redis.logger?.info({ channel: this.#redis.keys.channel }, 'revocation feed subscribed');
        this.#firstSubscription?.resolve();
        this.#firstSubscription = null;
      },
      (error: unknown) => {
        if (!current()) return;
        this.#redis.logger?.debug({ err: { message: errorMessage(error) } }, 'revocation log replay failed; retrying');
        const timer = setTimeout(() => current() && this.#afterSubscribe(sub, epoch, attempt + 1), Math.min(1000, 25 * 2 ** Math.min(attempt, 6)));
        timer.unref();
      },
    );
  }

  #feedLost(): void {
    this.#subEpoch++;
    if (!this.#subscribed) return;
    this.#subscribed = false;
    if (!this.#closed) this.#redis.logger?.warn({ channel: this.#redis.keys.channel }, 'revocation feed disconnected; verifying every request in Redis until it is back');
  }

  /** A subscriber that stops answering PING is treated as gone, and reconnected. */
  #beat(): void {
    const sub = this.#sub;
    if (!sub || !this.#subscribed || this.#beating) return;
    this.#beating = true;
    const epoch = this.#subEpoch;
    sub
      .ping()
      .then(
        () => {},
        () => {
          if (this.#sub !== sub || epoch !== this.#subEpoch || this.#closed) return;
          this.#feedLost();
          sub.disconnect(true);
        },
      )
      .finally(() => (this.#beating = false));
  }

  /** Stops delivering and drops the subscriber connection (the store is closing). */
  close(): void {
    if (this.#heartbeat) clearInterval(this.#heartbeat);
    if (this.#catchUpTimer) clearTimeout(this.#catchUpTimer);
    this.#feed = null;
    this.#subscribed = false;
    this.#firstSubscription?.resolve();
    const sub = this.#sub;
    this.#sub = null;
    sub?.disconnect();
  }
}

/** A role whose writes are key events (keys.ts, lifecycle.ts): the connection, and the feed that applies them here at once. */
export abstract class KeyEventWriter {
  protected readonly redis: Commands;
  protected readonly feed: RevocationFeed;

  constructor(redis: Commands, feed: RevocationFeed) {
    this.redis = redis;
    this.feed = feed;
  }
}

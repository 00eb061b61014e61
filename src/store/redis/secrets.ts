/**
 * SecretStore on Redis: upstream secrets (encrypted envelopes only), one hash each, listed
 * in a sorted set by creation time. Every change publishes the ids on the secrets channel,
 * which the feed's subscriber connection listens on (feed.ts), so every instance drops its
 * cached value; a resync flushes that cache too.
 */
import { envelopeText, parseEnvelope, type Envelope } from '../../secrets/crypto.ts';
import { DuplicateSecretError, type SecretFeed, type SecretMeta, type StoredSecret } from '../../secrets/secret-store.ts';
import type { Commands } from './commands.ts';
import type { SecretsListener } from './feed.ts';
import { parseSecretChange } from './messages.ts';
import { newestFirst, num, pairs } from './record-codec.ts';
import * as scripts from './scripts.ts';

/** [id, name, createdAt, lastUsedAt, keyVersion] (an HMGET reply) as metadata, or null. */
function secretMeta(reply: unknown): SecretMeta | null {
  if (!Array.isArray(reply) || reply[0] === null || reply[0] === undefined) return null;
  const [id, name, createdAt, lastUsedAt, keyVersion] = reply.map((v) => (v === null || v === undefined ? undefined : String(v)));
  return { id: id!, name: name ?? '', createdAt: num(createdAt) ?? 0, lastUsedAt: num(lastUsedAt), keyVersion: keyVersion ?? '' };
}

export class RedisSecrets implements SecretsListener {
  readonly #redis: Commands;
  #feed: SecretFeed | null = null;

  constructor(redis: Commands) {
    this.#redis = redis;
  }

  subscribeSecrets(feed: SecretFeed | null): void {
    this.#feed = feed;
  }

  /** A secrets-channel message (feed.ts). */
  message(message: string): void {
    const feed = this.#feed;
    if (!feed) return;
    const ids = parseSecretChange(message);
    if (ids === null) {
      this.#redis.logger?.warn({ channel: this.#redis.keys.secretsChannel }, 'unreadable secrets message; flushing the secret cache');
      feed.secretsResync();
    } else feed.secretsChanged(ids);
  }

  /** The feed (re)subscribed: changes may have been missed. */
  resync(): void {
    this.#feed?.secretsResync();
  }

  #changed(ids: string[]): void {
    this.#feed?.secretsChanged(ids);
  }

  async addSecret(secret: StoredSecret): Promise<void> {
    const k = this.#redis.keys;
    const text = envelopeText(secret.envelope);
    const fields = ['id', secret.id, 'name', secret.name, 'createdAt', String(secret.createdAt), 'keyVersion', secret.envelope.v, 'envelope', text];
    if (secret.lastUsedAt !== null) fields.push('lastUsedAt', String(secret.lastUsedAt));
    const added = await this.#redis.script(scripts.SECRET_ADD, [k.secret(secret.id), k.secrets], [secret.id, String(secret.createdAt), k.secretsChannel, text, this.#redis.publish, ...fields]);
    if (Number(added) !== 1) throw new DuplicateSecretError(`a secret with id "${secret.id}" exists`);
    this.#changed([secret.id]);
  }

  async listSecrets(): Promise<SecretMeta[]> {
    const reply = await this.#redis.script(scripts.SECRET_LIST, [this.#redis.keys.secrets], [this.#redis.keys.prefix]);
    const out: SecretMeta[] = [];
    if (Array.isArray(reply)) {
      for (const item of reply) {
        const meta = secretMeta(item);
        if (meta) out.push(meta);
      }
    }
    return out.sort(newestFirst);
  }

  async getSecret(id: string): Promise<StoredSecret | null> {
    const f = pairs(await this.#redis.call('HGETALL', this.#redis.keys.secret(id)));
    if (f.id === undefined) return null;
    const meta = secretMeta([f.id, f.name, f.createdAt, f.lastUsedAt, f.keyVersion])!;
    // An unreadable envelope is kept as one that can never decrypt: refused, not skipped.
    return { ...meta, envelope: parseEnvelope(f.envelope ?? '') ?? { v: meta.keyVersion, nonce: '', ct: '', tag: '' } };
  }

  async renameSecret(id: string, name: string): Promise<SecretMeta | null> {
    const k = this.#redis.keys;
    const meta = secretMeta(await this.#redis.script(scripts.SECRET_RENAME, [k.secret(id)], [id, name, k.secretsChannel, this.#redis.publish]));
    if (meta) this.#changed([id]);
    return meta;
  }

  async moveSecret(from: string, to: string, name: string, envelope: Envelope): Promise<SecretMeta | null> {
    const k = this.#redis.keys;
    const reply = await this.#redis.script(scripts.SECRET_MOVE, [k.secret(from), k.secret(to), k.secrets], [from, to, name, envelope.v, envelopeText(envelope), k.secretsChannel, this.#redis.publish]);
    if (typeof reply === 'number' || reply === '0') throw new DuplicateSecretError(`a secret with id "${to}" exists`);
    const meta = secretMeta(reply);
    if (meta) this.#changed([from, to]);
    return meta;
  }

  async replaceEnvelope(id: string, expected: Envelope, next: Envelope): Promise<boolean> {
    return Number(await this.#redis.script(scripts.SECRET_REPLACE, [this.#redis.keys.secret(id)], [envelopeText(expected), envelopeText(next), next.v])) === 1;
  }

  async removeSecret(id: string): Promise<SecretMeta | null> {
    const k = this.#redis.keys;
    const meta = secretMeta(await this.#redis.script(scripts.SECRET_REMOVE, [k.secret(id), k.secrets], [id, k.secretsChannel, this.#redis.publish]));
    if (meta) this.#changed([id]);
    return meta;
  }

  async touchSecrets(lastUsed: ReadonlyMap<string, number>): Promise<void> {
    await this.#redis.touchBatches(scripts.SECRET_TOUCH, this.#redis.keys.secrets, lastUsed);
  }
}

/**
 * Keys are stored and looked up only as HMAC-SHA-256(pepper, key). Without the pepper a
 * leaked store cannot be used to confirm guessed keys offline.
 */
import { createHmac } from 'node:crypto';

export type KeyHasher = (key: string) => string;

export function createKeyHasher(pepper: string): KeyHasher {
  if (pepper.length < 16) throw new Error('the pepper must be at least 16 characters');
  return (key) => createHmac('sha256', pepper).update(key).digest('base64url');
}

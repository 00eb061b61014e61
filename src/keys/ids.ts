import { randomBytes } from 'node:crypto';

/** Key ids are public handles (shown in logs and listings), unrelated to the key itself. */
export function newKeyId(): string {
  return `key_${randomBytes(10).toString('hex')}`;
}

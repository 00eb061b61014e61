/**
 * Master keys for the secrets tests: two random keys (A and B) and the keyrings keygate
 * builds from them — A alone, B alone, and B current with A still decrypting (a rotation
 * in progress).
 */
import { randomBytes } from 'node:crypto';
import { loadKeyring, type Keyring } from '../../src/secrets/crypto.ts';

export function testKeyrings(): { keyA: string; keyB: string; ringA: Keyring; ringB: Keyring; rotating: Keyring } {
  const keyA = randomBytes(32).toString('base64');
  const keyB = randomBytes(32).toString('base64');
  return {
    keyA,
    keyB,
    ringA: loadKeyring({ KEYGATE_MASTER_KEY: keyA })!,
    ringB: loadKeyring({ KEYGATE_MASTER_KEY: keyB })!,
    rotating: loadKeyring({ KEYGATE_MASTER_KEY: keyB, KEYGATE_MASTER_KEY_PREVIOUS: keyA })!,
  };
}

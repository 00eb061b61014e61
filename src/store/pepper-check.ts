/**
 * Every process that hashes keys — `serve`, each worker, each instance, the CLI — must hold
 * the pepper the store's keys were made with, or it refuses every key and mints keys nobody
 * else accepts. The first process to use a store records its pepper's fingerprint there
 * (keys/pepper.ts: one-way, never the pepper); every later one compares and stops with a
 * message naming both fingerprints when they differ (exit 2).
 */
import { KeygateError } from '../http/problem.ts';
import { pepperFingerprint } from '../keys/pepper.ts';

export interface PepperFingerprintStore {
  /** Records `fingerprint` if the store has none yet; answers the one it holds afterwards. */
  claimPepperFingerprint(fingerprint: string): Promise<string>;
}

export async function checkPepper(store: PepperFingerprintStore, pepper: string): Promise<void> {
  const mine = pepperFingerprint(pepper);
  const stored = await store.claimPepperFingerprint(mine);
  if (stored === mine) return;
  throw new KeygateError(
    'validation_failed',
    `the pepper in use (KEYGATE_PEPPER, or the data directory's pepper file) is not the one this store's keys were made with: its fingerprint is ${mine}, the store's is ${stored}. Every instance, worker and CLI command must use the same pepper; keys made with another one would be refused everywhere else`,
    { field: 'KEYGATE_PEPPER' },
  );
}

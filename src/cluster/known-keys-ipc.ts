/**
 * `workers: N`: what one worker learns about which keys exist, every worker knows. The
 * failed-auth limit serves a blocked address only the keys its process has seen work
 * (auth/failure-limiter.ts); connections from one client land on any worker, so a key seen by
 * one worker alone would be refused by the others while its address is blocked. A worker
 * that gets a key's record from the store for the first time tells the primary, which tells
 * the other workers: one message per key, never per request. The message carries the
 * key's SHA-256 and its lookup HMAC (both one-way; never the key), between processes of one
 * machine only. Instances on other machines still learn each key for themselves.
 */
import cluster from 'node:cluster';
import type { Verifier } from '../auth/verify.ts';

const KNOWN = 'keygate:known-key';

interface KnownMessage {
  type: typeof KNOWN;
  id: string;
  hash: string;
}

const isKnown = (message: unknown): message is KnownMessage => (message as KnownMessage | null)?.type === KNOWN;

/** In a worker: the Verifier's `onKnown`, telling the primary (undefined outside a worker). */
export function announceKnownKeys(): ((id: string, hash: string) => void) | undefined {
  if (!cluster.isWorker) return undefined;
  return (id, hash) => process.send?.({ type: KNOWN, id, hash } satisfies KnownMessage);
}

/** In a worker: keys the other workers learned become known here too. */
export function receiveKnownKeys(verifier: Verifier): void {
  if (!cluster.isWorker) return;
  process.on('message', (message: unknown) => {
    if (isKnown(message)) verifier.learn(message.id, message.hash);
  });
}

/** In the primary: every announcement goes to the other workers. */
export function relayKnownKeys(): void {
  cluster.on('message', (from, message: unknown) => {
    if (!isKnown(message)) return;
    for (const worker of Object.values(cluster.workers ?? {})) if (worker !== undefined && worker !== from && worker.isConnected()) worker.send(message);
  });
}

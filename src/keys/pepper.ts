/**
 * The pepper mixed into every key hash. From `KEYGATE_PEPPER`; on the embedded store, if
 * unset, generated once into the data directory (mode 0600) so a single-machine install
 * needs no setup. Redis deployments share one pepper across instances, so it must be given.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Config } from '../config/schema.ts';
import { KeygateError } from '../http/problem.ts';

/** A pepper that is missing, too short or damaged: validation_failed naming the variable or file (exit 2). */
function pepperError(field: string, message: string): KeygateError {
  return new KeygateError('validation_failed', message, { field });
}

export function pepperFilePath(config: Config): string {
  return join(dirname(config.store.path), 'pepper');
}

/**
 * KEYGATE_PEPPER as the environment gives it, checked: the pepper, or undefined when the
 * embedded store's file is to be used. Creates nothing (`config check` runs it too).
 */
export function pepperFromEnv(config: Config, env: NodeJS.ProcessEnv): string | undefined {
  const fromEnv = env.KEYGATE_PEPPER;
  if (fromEnv !== undefined && fromEnv !== '') {
    if (fromEnv.length < 16) throw pepperError('KEYGATE_PEPPER', 'KEYGATE_PEPPER: must be at least 16 characters (e.g. `openssl rand -base64 32`)');
    return fromEnv;
  }
  if (config.store.kind === 'redis') {
    throw pepperError('KEYGATE_PEPPER', 'KEYGATE_PEPPER: is required with the Redis store (every instance must hash keys with the same pepper); generate one with `openssl rand -base64 32`');
  }
  return undefined;
}

export function loadPepper(config: Config, env: NodeJS.ProcessEnv): string {
  const fromEnv = pepperFromEnv(config, env);
  if (fromEnv !== undefined) return fromEnv;
  const file = pepperFilePath(config);
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  try {
    writeFileSync(file, randomBytes(32).toString('base64url'), { mode: 0o600, flag: 'wx' });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  if ((statSync(file).mode & 0o077) !== 0) chmodSync(file, 0o600);
  const pepper = readFileSync(file, 'utf8').trim();
  if (pepper.length < 16) throw pepperError(file, `${file}: the pepper file is damaged (shorter than 16 characters)`);
  return pepper;
}

/**
 * What identifies a pepper without revealing it: 16 characters of HMAC-SHA-256(pepper, a
 * fixed label). Stored beside the keys (store/pepper-check.ts) so that a process holding
 * another pepper — a second instance, the CLI with a different KEYGATE_PEPPER — is stopped
 * with a message instead of silently minting keys nobody else can verify.
 */
export function pepperFingerprint(pepper: string): string {
  return createHmac('sha256', pepper).update('keygate pepper fingerprint v1').digest('base64url').slice(0, 16);
}

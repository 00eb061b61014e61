/**
 * Envelope encryption of upstream secrets: AES-256-GCM under a master key from
 * `KEYGATE_MASTER_KEY` (base64 of 32 random bytes), a fresh 12-byte random nonce per
 * encryption, and the secret's id and the key version as associated data, so a ciphertext
 * copied onto another secret id (or relabelled with another key version) fails to decrypt
 * instead of injecting the wrong credential.
 *
 * Rotation: `KEYGATE_MASTER_KEY` is the current key (every new encryption) and
 * `KEYGATE_MASTER_KEY_PREVIOUS` an older one kept for decryption only. Each envelope
 * records its key's version — the first 8 hex digits of a SHA-256 of the key — so
 * decryption picks the right key, and `keygate secrets rewrap` re-encrypts whatever is not
 * under the current one.
 *
 * Usage:
 *   const keyring = loadKeyring(process.env);            // null when KEYGATE_MASTER_KEY is unset
 *   const envelope = encryptSecret(keyring, 'openai', value);
 *   decryptSecret(keyring, 'openai', envelope) === value;
 */
import { jsonObject } from '../http/json.ts';
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { KeygateError } from '../http/problem.ts';

export const MASTER_KEY_ENV = 'KEYGATE_MASTER_KEY';
export const PREVIOUS_MASTER_KEY_ENV = 'KEYGATE_MASTER_KEY_PREVIOUS';

const ALGORITHM = 'aes-256-gcm';
const NONCE_BYTES = 12;
const TAG_BYTES = 16;

/** What the store keeps for a secret's value. All binary fields are base64. */
export interface Envelope {
  /** Version (fingerprint) of the master key that encrypted it. */
  v: string;
  nonce: string;
  ct: string;
  tag: string;
}

/** A master key variable is malformed: validation_failed (exit 2), naming the variable, never its content. */
export function masterKeyError(variable: string, message: string): KeygateError {
  return new KeygateError('validation_failed', message, { field: variable });
}

/**
 * A ciphertext was refused — tampered with, moved to another id, or under an unknown key:
 * upstream_unavailable (the route that needs it answers 502; the secret service reports it
 * as a conflict). decryptSecret throws nothing else.
 */
export function secretDecryptError(message: string): KeygateError {
  return new KeygateError('upstream_unavailable', message);
}

export interface MasterKey {
  readonly version: string;
  readonly key: Buffer;
}

export interface Keyring {
  /** Encrypts every new value. */
  readonly current: MasterKey;
  /** Decrypts only (rotation in progress). */
  readonly previous: MasterKey | null;
}

/** The key's version: 8 hex digits of SHA-256 over a label and the key. Says nothing usable about the key. */
export function keyVersion(key: Buffer): string {
  return createHash('sha256').update('keygate master key version\0').update(key).digest('hex').slice(0, 8);
}

/** base64 or base64url, padded or not. */
const BASE64 = /^[A-Za-z0-9+/_-]+={0,2}$/;

export function parseMasterKey(variable: string, text: string): MasterKey {
  const trimmed = text.trim();
  if (!BASE64.test(trimmed)) {
    throw masterKeyError(variable, `${variable}: must be the base64 encoding of 32 random bytes (generate one with \`openssl rand -base64 32\`)`);
  }
  // Node's base64 decoder reads both alphabets.
  const key = Buffer.from(trimmed, 'base64');
  if (key.length !== 32) {
    throw masterKeyError(variable, `${variable}: must decode to 32 bytes, got ${key.length} (generate one with \`openssl rand -base64 32\`)`);
  }
  return { version: keyVersion(key), key };
}

/**
 * The master keys from the environment: null when `KEYGATE_MASTER_KEY` is not set (keygate
 * still runs; routes that need a secret answer 502). Throws masterKeyError for a malformed
 * value, or a previous key without a current one.
 */
export function loadKeyring(env: NodeJS.ProcessEnv): Keyring | null {
  const current = env[MASTER_KEY_ENV];
  const previous = env[PREVIOUS_MASTER_KEY_ENV];
  const hasPrevious = previous !== undefined && previous !== '';
  if (current === undefined || current === '') {
    if (hasPrevious) throw masterKeyError(PREVIOUS_MASTER_KEY_ENV, `${PREVIOUS_MASTER_KEY_ENV}: is set but ${MASTER_KEY_ENV} is not; the previous key is only used next to a current one`);
    return null;
  }
  const keyring = { current: parseMasterKey(MASTER_KEY_ENV, current), previous: hasPrevious ? parseMasterKey(PREVIOUS_MASTER_KEY_ENV, previous) : null };
  if (keyring.previous !== null && keyring.previous.version === keyring.current.version) keyring.previous = null;
  return keyring;
}

function associatedData(id: string, version: string): Buffer {
  return Buffer.from(`keygate-secret\0${version}\0${id}`, 'utf8');
}

export function encryptSecret(keyring: Keyring, id: string, value: string): Envelope {
  const { key, version } = keyring.current;
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv(ALGORITHM, key, nonce, { authTagLength: TAG_BYTES });
  cipher.setAAD(associatedData(id, version));
  const ct = Buffer.concat([cipher.update(value, 'utf8'), cipher.final()]);
  return { v: version, nonce: nonce.toString('base64'), ct: ct.toString('base64'), tag: cipher.getAuthTag().toString('base64') };
}

/** The master key an envelope needs, if this keyring has it. */
export function keyFor(keyring: Keyring, version: string): MasterKey | null {
  if (keyring.current.version === version) return keyring.current;
  if (keyring.previous !== null && keyring.previous.version === version) return keyring.previous;
  return null;
}

/**
 * The value, or a secretDecryptError (upstream_unavailable): GCM checks the tag over the
 * ciphertext and the
 * associated data (id and version) before anything is returned, so a modified byte anywhere
 * is refused, never decrypted into garbage.
 */
export function decryptSecret(keyring: Keyring, id: string, envelope: Envelope): string {
  const master = keyFor(keyring, envelope.v);
  if (master === null) {
    const known = [keyring.current.version, keyring.previous?.version].filter(Boolean).join(', ');
    throw secretDecryptError(`encrypted under master key version ${envelope.v}, which is not loaded (loaded: ${known}); set ${PREVIOUS_MASTER_KEY_ENV} to the old key`);
  }
  const nonce = Buffer.from(envelope.nonce, 'base64');
  const tag = Buffer.from(envelope.tag, 'base64');
  if (nonce.length !== NONCE_BYTES || tag.length !== TAG_BYTES) throw secretDecryptError('the stored ciphertext is malformed');
  try {
    const decipher = createDecipheriv(ALGORITHM, master.key, nonce, { authTagLength: TAG_BYTES });
    decipher.setAAD(associatedData(id, envelope.v));
    decipher.setAuthTag(tag);
    return Buffer.concat([decipher.update(Buffer.from(envelope.ct, 'base64')), decipher.final()]).toString('utf8');
  } catch {
    throw secretDecryptError('the stored ciphertext failed authentication (tampered with, or stored under another id)');
  }
}

/** An envelope as stored (JSON text), or null if it is not one. */
export function parseEnvelope(text: string): Envelope | null {
  const value = jsonObject(text);
  if (value === null) return null;
  const { v, nonce, ct, tag } = value;
  if (typeof v !== 'string' || typeof nonce !== 'string' || typeof ct !== 'string' || typeof tag !== 'string') return null;
  return { v, nonce, ct, tag };
}

/** The envelope as stored: JSON with its fields in one fixed order, so two copies compare equal as text. */
export function envelopeText(e: Envelope): string {
  return JSON.stringify({ v: e.v, nonce: e.nonce, ct: e.ct, tag: e.tag });
}

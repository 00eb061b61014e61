/**
 * Envelope encryption of upstream secrets: AES-256-GCM with a fresh nonce, the secret id
 * and key version as associated data, and master-key rotation. A tampered envelope must be
 * refused — never decrypted into something else.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  decryptSecret,
  encryptSecret,
  envelopeText,
  keyVersion,
  loadKeyring,
  parseEnvelope,
  type Envelope,
  type Keyring,
} from '../../../src/secrets/crypto.ts';
import { KeygateError } from '../../../src/http/problem.ts';
import { testKeyrings } from '../../helpers/keyrings.ts';

const VALUE = 'sk-live-0123456789abcdefTOPSECRET';
/** A, B, and a rotation in progress (B current, A still decrypts). */
const { keyA, keyB, ringA, ringB, rotating } = testKeyrings();

/** Flips one bit of a base64 field. */
function flip(field: string, byte = 0): string {
  const buffer = Buffer.from(field, 'base64');
  buffer[byte] = buffer[byte]! ^ 0x01;
  return buffer.toString('base64');
}

function refused(keyring: Keyring, id: string, envelope: Envelope): KeygateError {
  let result: unknown;
  try {
    result = decryptSecret(keyring, id, envelope);
  } catch (error) {
    expect(error).toBeInstanceOf(KeygateError);
    expect((error as KeygateError).code).toBe('upstream_unavailable');
    expect((error as Error).message).not.toContain(VALUE);
    return error as KeygateError;
  }
  throw new Error(`decrypted instead of refusing: ${String(result).length} characters`);
}

describe('encryptSecret / decryptSecret', () => {
  it('round-trips under the current key, tagging the envelope with its version', () => {
    const envelope = encryptSecret(ringA, 'openai', VALUE);
    expect(envelope.v).toBe(ringA.current.version);
    expect(envelope.v).toMatch(/^[0-9a-f]{8}$/);
    expect(Buffer.from(envelope.nonce, 'base64')).toHaveLength(12);
    expect(Buffer.from(envelope.tag, 'base64')).toHaveLength(16);
    expect(decryptSecret(ringA, 'openai', envelope)).toBe(VALUE);
    // Nothing of the value in what is stored.
    expect(envelopeText(envelope)).not.toContain(VALUE);
    expect(Buffer.from(envelope.ct, 'base64').toString('utf8')).not.toContain(VALUE.slice(0, 8));
  });

  it('uses a fresh nonce for every encryption', () => {
    const envelopes = Array.from({ length: 50 }, () => encryptSecret(ringA, 'openai', VALUE));
    expect(new Set(envelopes.map((e) => e.nonce)).size).toBe(50);
    expect(new Set(envelopes.map((e) => e.ct)).size).toBe(50);
  });

  it('refuses a flipped bit in the ciphertext, the tag or the nonce', () => {
    const envelope = encryptSecret(ringA, 'openai', VALUE);
    for (const byte of [0, 5, VALUE.length - 1]) refused(ringA, 'openai', { ...envelope, ct: flip(envelope.ct, byte) });
    refused(ringA, 'openai', { ...envelope, tag: flip(envelope.tag, 15) });
    refused(ringA, 'openai', { ...envelope, nonce: flip(envelope.nonce, 3) });
    // A truncated ciphertext, an empty tag, a missing nonce.
    refused(ringA, 'openai', { ...envelope, ct: Buffer.from(envelope.ct, 'base64').subarray(1).toString('base64') });
    refused(ringA, 'openai', { ...envelope, tag: '' });
    refused(ringA, 'openai', { ...envelope, nonce: '' });
  });

  it('binds the ciphertext to the secret id: copied onto another id it is refused', () => {
    const envelope = encryptSecret(ringA, 'openai', VALUE);
    expect(refused(ringA, 'anthropic', envelope).message).toMatch(/failed authentication/);
  });

  it('binds the key version: relabelling an envelope with another loaded version is refused', () => {
    const envelope = encryptSecret(ringA, 'openai', VALUE);
    refused(rotating, 'openai', { ...envelope, v: rotating.current.version });
  });

  it('refuses an envelope under a key it does not have, naming the variable to set', () => {
    const envelope = encryptSecret(ringA, 'openai', VALUE);
    const error = refused(ringB, 'openai', envelope);
    expect(error.message).toContain(ringA.current.version);
    expect(error.message).toContain('KEYGATE_MASTER_KEY_PREVIOUS');
  });

  it('decrypts with the previous key during a rotation and encrypts with the new one', () => {
    const old = encryptSecret(ringA, 'openai', VALUE);
    expect(decryptSecret(rotating, 'openai', old)).toBe(VALUE);
    const fresh = encryptSecret(rotating, 'openai', VALUE);
    expect(fresh.v).toBe(ringB.current.version);
    expect(decryptSecret(ringB, 'openai', fresh)).toBe(VALUE);
  });

  it('stores envelopes as JSON in one field order and reads them back', () => {
    const envelope = encryptSecret(ringA, 'openai', VALUE);
    const reordered = JSON.stringify({ tag: envelope.tag, ct: envelope.ct, nonce: envelope.nonce, v: envelope.v });
    expect(envelopeText(parseEnvelope(reordered)!)).toBe(envelopeText(envelope));
    expect(parseEnvelope('not json')).toBeNull();
    expect(parseEnvelope('{"v":"x"}')).toBeNull();
  });
});

describe('loadKeyring (KEYGATE_MASTER_KEY, KEYGATE_MASTER_KEY_PREVIOUS)', () => {
  const problem = (env: NodeJS.ProcessEnv): string => {
    try {
      loadKeyring(env);
    } catch (error) {
      expect(error).toBeInstanceOf(KeygateError);
      expect((error as KeygateError).code).toBe('validation_failed');
      return (error as Error).message;
    }
    throw new Error('accepted');
  };

  it('is null without a master key (keygate runs; secrets are unavailable)', () => {
    expect(loadKeyring({})).toBeNull();
    expect(loadKeyring({ KEYGATE_MASTER_KEY: '' })).toBeNull();
  });

  it('accepts base64 and base64url of 32 bytes; the version is a fingerprint, not the key', () => {
    const raw = randomBytes(32);
    const a = loadKeyring({ KEYGATE_MASTER_KEY: raw.toString('base64') })!;
    const b = loadKeyring({ KEYGATE_MASTER_KEY: raw.toString('base64url') })!;
    expect(a.current.key.equals(raw)).toBe(true);
    expect(b.current.key.equals(raw)).toBe(true);
    expect(a.current.version).toBe(keyVersion(raw));
    expect(raw.toString('hex')).not.toContain(a.current.version);
    expect(a.previous).toBeNull();
  });

  it('refuses a key of the wrong length or not base64, naming the variable and never echoing the value', () => {
    const short = randomBytes(16).toString('base64');
    const message = problem({ KEYGATE_MASTER_KEY: short });
    expect(message).toMatch(/^KEYGATE_MASTER_KEY: must decode to 32 bytes, got 16/);
    expect(message).not.toContain(short);
    expect(problem({ KEYGATE_MASTER_KEY: 'correct horse battery staple!!' })).toMatch(/^KEYGATE_MASTER_KEY: must be the base64 encoding of 32 random bytes/);
    expect(problem({ KEYGATE_MASTER_KEY: keyA, KEYGATE_MASTER_KEY_PREVIOUS: 'abcd' })).toMatch(/^KEYGATE_MASTER_KEY_PREVIOUS: /);
  });

  it('refuses a previous key without a current one', () => {
    expect(problem({ KEYGATE_MASTER_KEY_PREVIOUS: keyA })).toMatch(/KEYGATE_MASTER_KEY_PREVIOUS: is set but KEYGATE_MASTER_KEY is not/);
  });

  it('keeps the previous key for decryption only', () => {
    expect(rotating.current.version).toBe(ringB.current.version);
    expect(rotating.previous?.version).toBe(ringA.current.version);
  });
});

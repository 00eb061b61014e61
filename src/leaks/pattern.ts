/**
 * The regular expression a secret scanner uses to find this deployment's keys (README
 * "Leaked keys"): the key format of keys/format.ts, bounded by word boundaries so that a
 * longer run of hex, or a key glued to other word characters, is not taken for a key.
 * Scanners then send what they found to keygate, which checks the CRC32 (parseKey) and the
 * store before believing it.
 *
 * @example
 *   scannerPattern('kg')   // \bkg_(?:sandbox_)?[a-z0-9][a-z0-9-]{0,62}_[0-9a-f]{64}\b
 */
import { PREFIX_PATTERN } from '../keys/format.ts';

export function scannerPattern(prefix: string): string {
  if (!PREFIX_PATTERN.test(prefix)) throw new Error(`invalid key prefix: ${prefix}`);
  return `\\b${prefix}_(?:sandbox_)?[a-z0-9][a-z0-9-]{0,62}_[0-9a-f]{64}\\b`;
}

/** The pattern as a JavaScript RegExp (`g`: every key in a text). */
export function scannerRegExp(prefix: string): RegExp {
  return new RegExp(scannerPattern(prefix), 'g');
}

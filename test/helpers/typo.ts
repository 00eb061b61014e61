/** `key` with its last character changed: well-formed, but never the key itself (a wrong checksum). */
export function typo(key: string): string {
  return key.slice(0, -1) + (key.endsWith('0') ? '1' : '0');
}

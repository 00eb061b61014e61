/**
 * The API key format: `<prefix>_<tenant>_<56 hex random><8 hex CRC32>` for a live key, and
 * `<prefix>_sandbox_<tenant>_…` for a sandbox one: the environment is in the key itself, so a
 * person or a secret scanner tells them apart. A tenant name has no `_`, so the two shapes
 * cannot be mistaken for each other (a tenant may even be called `sandbox`).
 *
 * The checksum covers everything before it (prefix, tenant and random part), so a
 * mistyped or truncated key — or one whose tenant was edited — is rejected without
 * touching the cache or the store. The fixed shape also lets secret scanners match keys.
 *
 * @example
 *   const key = generateKey('kg', 'acme');      // kg_acme_3f9a…
 *   parseKey(key, 'kg')?.tenant === 'acme';
 */
import { randomBytes } from 'node:crypto';
import { crc32 } from 'node:zlib';

export const TENANT_PATTERN = /^[a-z0-9][a-z0-9-]{0,62}$/;
export const PREFIX_PATTERN = /^[a-z][a-z0-9]{0,15}$/;
const RANDOM_HEX = 56;
const CHECKSUM_HEX = 8;
const BODY_HEX = RANDOM_HEX + CHECKSUM_HEX;
const SANDBOX = 'sandbox';
const MAX_KEY_LENGTH = 16 + 1 + SANDBOX.length + 1 + 63 + 1 + BODY_HEX;

/** Where a key may be used: `live` upstreams, or a route's `sandbox` upstream only. */
export type Environment = 'live' | 'sandbox';
export const ENVIRONMENTS: readonly Environment[] = ['live', 'sandbox'];

export interface ParsedKey {
  prefix: string;
  tenant: string;
  environment: Environment;
}

function checksum(text: string): string {
  return crc32(text).toString(16).padStart(CHECKSUM_HEX, '0');
}

export function generateKey(prefix: string, tenant: string, environment: Environment = 'live'): string {
  if (!PREFIX_PATTERN.test(prefix)) throw new Error(`invalid key prefix: ${prefix}`);
  if (!TENANT_PATTERN.test(tenant)) throw new Error(`invalid tenant id: ${tenant}`);
  const segment = environment === 'sandbox' ? `${SANDBOX}_` : '';
  const head = `${prefix}_${segment}${tenant}_${randomBytes(RANDOM_HEX / 2).toString('hex')}`;
  return head + checksum(head);
}

function isLowerHex(text: string, from: number): boolean {
  for (let i = from; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102))) return false;
  }
  return true;
}

/**
 * Checks shape and checksum with no I/O. Returns null for anything that is not a
 * well-formed key of this deployment's prefix.
 */
export function parseKey(key: string, prefix: string): ParsedKey | null {
  if (key.length > MAX_KEY_LENGTH || key.length < prefix.length + 3 + BODY_HEX) return null;
  if (!key.startsWith(prefix) || key.charCodeAt(prefix.length) !== 95 /* _ */) return null;
  const bodyStart = key.length - BODY_HEX;
  if (key.charCodeAt(bodyStart - 1) !== 95) return null;
  let tenantStart = prefix.length + 1;
  let environment: Environment = 'live';
  if (key.startsWith(SANDBOX, tenantStart) && key.charCodeAt(tenantStart + SANDBOX.length) === 95 && tenantStart + SANDBOX.length + 1 < bodyStart - 1) {
    environment = 'sandbox';
    tenantStart += SANDBOX.length + 1;
  }
  const tenant = key.slice(tenantStart, bodyStart - 1);
  if (!TENANT_PATTERN.test(tenant) || !isLowerHex(key, bodyStart)) return null;
  const checksumStart = key.length - CHECKSUM_HEX;
  if (checksum(key.slice(0, checksumStart)) !== key.slice(checksumStart)) return null;
  return { prefix, tenant, environment };
}

/** What listings show instead of the key: enough to recognise it, useless to an attacker. */
export function displayPrefix(key: string): string {
  return `${key.slice(0, key.length - BODY_HEX + 4)}…`;
}

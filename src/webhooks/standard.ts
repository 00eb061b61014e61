/**
 * Standard Webhooks (https://www.standardwebhooks.com/, the scheme Svix and many senders use):
 *
 *   webhook-id: msg_2Lx…            webhook-timestamp: 1700000000
 *   webhook-signature: v1,<base64 HMAC-SHA-256 of "id.timestamp.body"> [v1,<…> …]
 *
 * Several space-separated signatures (a sender rotating its secret signs with both); any v1
 * one may match, other versions (e.g. `v1a`, asymmetric) are ignored. The secret is
 * `whsec_<base64>` and the HMAC key is the decoded bytes. Svix's own header names
 * (`svix-id`, `svix-timestamp`, `svix-signature`, sent by e.g. Clerk and Resend) are read
 * when no `webhook-*` header is present — all three from the same family, never mixed.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { parseSeconds, single, type HeaderProblem, type Scheme, type SignedParts } from './scheme.ts';

const FAMILIES = [
  { id: 'webhook-id', timestamp: 'webhook-timestamp', signature: 'webhook-signature' },
  { id: 'svix-id', timestamp: 'svix-timestamp', signature: 'svix-signature' },
] as const;

/** Visible ASCII: the id is part of the signed text, so nothing that a proxy could rewrite. */
const ID = /^[\x21-\x7e]{1,256}$/;
/** The standard base64 of 32 bytes. */
const V1 = /^[A-Za-z0-9+/]{43}=$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function parse(headers: IncomingHttpHeaders): SignedParts | HeaderProblem {
  const family = FAMILIES.find((f) => headers[f.id] !== undefined || headers[f.timestamp] !== undefined || headers[f.signature] !== undefined) ?? FAMILIES[0];
  const id = single(headers, family.id);
  const timestampText = single(headers, family.timestamp);
  const signature = single(headers, family.signature);
  const absent = [id === undefined && family.id, timestampText === undefined && family.timestamp, signature === undefined && family.signature].filter((n) => n !== false);
  if (absent.length) return { problem: 'missing_signature', detail: `the delivery has no ${absent.join(', ')} header (Standard Webhooks signature)` };
  if (!ID.test(id!)) return { problem: 'invalid_signature', detail: `${family.id} must be 1-256 visible ASCII characters` };
  const timestamp = parseSeconds(timestampText!);
  if (timestamp === null) return { problem: 'invalid_signature', detail: `${family.timestamp} must be whole seconds since the epoch` };
  const signatures: Buffer[] = [];
  let entries = 0;
  for (const entry of signature!.split(' ')) {
    if (entry === '') continue;
    entries++;
    const comma = entry.indexOf(',');
    if (comma === -1) continue;
    if (entry.slice(0, comma) !== 'v1') continue;
    const value = entry.slice(comma + 1);
    if (V1.test(value)) signatures.push(Buffer.from(value, 'base64'));
  }
  if (signatures.length === 0) {
    return { problem: 'invalid_signature', detail: entries ? `${family.signature} holds no well-formed v1 signature ("v1,<base64>"; other versions are not supported)` : `${family.signature} is empty` };
  }
  return { prefix: `${id}.${timestamp}.`, timestamp, signatures };
}

/** `whsec_<base64>` (the prefix is optional, as in the reference libraries): the decoded bytes. */
function key(value: string): Buffer | null {
  const encoded = value.startsWith('whsec_') ? value.slice(6) : value;
  if (encoded === '' || !BASE64.test(encoded)) return null;
  return Buffer.from(encoded, 'base64');
}

export const standard: Scheme = { name: 'standard', parse, key };

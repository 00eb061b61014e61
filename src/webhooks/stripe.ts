/**
 * Stripe (https://docs.stripe.com/webhooks#verify-manually):
 *
 *   Stripe-Signature: t=1700000000,v1=<hex HMAC-SHA-256 of "t.body">[,v1=<…>][,v0=<…>]
 *
 * Several `v1` values appear while a secret is being rolled in the Stripe dashboard; any one
 * may match; other schemes (`v0`, test-mode only) are ignored. The key is the `whsec_…`
 * secret as it is (its UTF-8 bytes — unlike Standard Webhooks, it is not base64-decoded).
 * Stripe generates a new timestamp and signature for every retry of an event.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { hexDigest, literalKey, parseSeconds, single, type HeaderProblem, type Scheme, type SignedParts } from './scheme.ts';

function parse(headers: IncomingHttpHeaders): SignedParts | HeaderProblem {
  const header = single(headers, 'stripe-signature');
  if (header === undefined) return { problem: 'missing_signature', detail: 'the delivery has no Stripe-Signature header' };
  let timestampText: string | null = null;
  let timestamps = 0;
  const signatures: Buffer[] = [];
  for (const item of header.split(',')) {
    const part = item.trim();
    const eq = part.indexOf('=');
    if (eq === -1) continue;
    const name = part.slice(0, eq);
    if (name === 't') {
      timestamps++;
      timestampText = part.slice(eq + 1);
    } else if (name === 'v1') {
      const digest = hexDigest(part.slice(eq + 1));
      if (digest !== null) signatures.push(digest);
    }
  }
  // Two timestamps would leave it open which one was signed.
  if (timestamps !== 1) return { problem: 'invalid_signature', detail: 'Stripe-Signature must carry exactly one t=<timestamp>' };
  const timestamp = parseSeconds(timestampText!);
  if (timestamp === null) return { problem: 'invalid_signature', detail: 'the t= of Stripe-Signature must be whole seconds since the epoch' };
  if (signatures.length === 0) return { problem: 'invalid_signature', detail: 'Stripe-Signature holds no well-formed v1=<64 hex> signature' };
  return { prefix: `${timestamp}.`, timestamp, signatures };
}

export const stripe: Scheme = { name: 'stripe', parse, key: literalKey };

/**
 * Shopify (https://shopify.dev/docs/apps/build/webhooks/subscribe/https#step-5-verify-the-webhook):
 *
 *   X-Shopify-Hmac-Sha256: <base64 HMAC-SHA-256 of the body>
 *   X-Shopify-Webhook-Id: b54557e4-bdd9-4b37-8a5f-bf7d70bcd043
 *
 * (or the same without `X-` — `Shopify-Hmac-Sha256`, `Shopify-Webhook-Id` — on Shopify's newer
 * event deliveries, read when that HMAC header is present, as @shopify/shopify-api does). The
 * key is the app's client secret (or the store's webhook signing secret) as it is.
 *
 * Shopify signs no timestamp and no id: the HMAC covers the body only. Replay protection
 * (`replay: true`) claims the webhook id together with the body for `toleranceSeconds`: an
 * exact resend is refused, as is Shopify's own retry of the same webhook within that time
 * (retries keep the id and body); two different webhooks with identical bodies (one order,
 * two topics) have different ids and both pass. Since the id is not signed, someone who
 * captured a delivery can resend it under a new id: receivers must still de-duplicate.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { base64Digest, DELIVERY_ID, literalKey, single, type HeaderProblem, type Scheme, type SignedParts } from './scheme.ts';

const FAMILIES = [
  { hmac: 'shopify-hmac-sha256', id: 'shopify-webhook-id', hmacName: 'Shopify-Hmac-Sha256', idName: 'Shopify-Webhook-Id' },
  { hmac: 'x-shopify-hmac-sha256', id: 'x-shopify-webhook-id', hmacName: 'X-Shopify-Hmac-Sha256', idName: 'X-Shopify-Webhook-Id' },
] as const;

export function shopifyScheme(options: { replay: boolean }): Scheme {
  function parse(headers: IncomingHttpHeaders): SignedParts | HeaderProblem {
    const family = FAMILIES.find((f) => headers[f.hmac] !== undefined) ?? FAMILIES[1];
    const header = single(headers, family.hmac);
    if (header === undefined) return { problem: 'missing_signature', detail: `the delivery has no ${family.hmacName} header (Shopify signature)` };
    const digest = base64Digest(header, 32);
    if (digest === null) return { problem: 'invalid_signature', detail: `${family.hmacName} must be the base64 of a 32-byte HMAC-SHA-256` };
    if (!options.replay) return { prefix: '', timestamp: null, signatures: [digest] };
    const id = single(headers, family.id);
    if (id === undefined) return { problem: 'missing_signature', detail: `the delivery has no ${family.idName} header (replay protection claims it)` };
    if (!DELIVERY_ID.test(id)) return { problem: 'invalid_signature', detail: `${family.idName} must be 1-256 visible ASCII characters` };
    return { prefix: '', timestamp: null, signatures: [digest], deliveryId: id };
  }
  return { name: 'shopify', parse, key: literalKey };
}

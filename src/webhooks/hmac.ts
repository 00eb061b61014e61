/**
 * Generic HMAC (`scheme: hmac`), for senders with none of the named schemes: the route says
 * how its sender signs (webhook.hmac):
 *
 *   header: x-acme-signature          the signature: <prefix><hex or base64 HMAC>
 *   algorithm: sha256                 sha1 | sha256 | sha512
 *   encoding: hex                     hex | base64 (standard alphabet, padded)
 *   prefix: "sha256="                 text before the signature, if any
 *   timestampHeader: x-acme-timestamp whole seconds; checked against toleranceSeconds
 *   idHeader: x-acme-delivery         delivery id, part of the replay claim
 *   payload: "{timestamp}.{body}"     what was signed; {timestamp} and {id} as sent
 *
 * One signature per delivery; the key is the stored secret as it is (its UTF-8 bytes).
 * Replay: with a signed timestamp, the claim lasts until it leaves the window (as for
 * Stripe); without one, `toleranceSeconds` (as for GitHub). An idHeader makes the id part
 * of the claim — signed when the payload has {id}, otherwise it only tells apart distinct
 * deliveries with the same body (as for Shopify).
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { HmacConfig } from '../config/webhooks.ts';
import { base64Digest, DELIVERY_ID, DIGEST_BYTES, hexBytes, literalKey, parseSeconds, single, type HeaderProblem, type Scheme, type SignedParts } from './scheme.ts';

export function hmacScheme(config: HmacConfig, options: { replay: boolean }): Scheme {
  const bytes = DIGEST_BYTES[config.algorithm];
  const at = config.payload.indexOf('{body}');
  const before = config.payload.slice(0, at);
  const after = config.payload.slice(at + '{body}'.length);
  const needsId = config.idHeader !== undefined && (options.replay || config.payload.includes('{id}'));
  const format = `${config.prefix}<${config.encoding} HMAC-${config.algorithm.toUpperCase()}>`;

  function parse(headers: IncomingHttpHeaders): SignedParts | HeaderProblem {
    const header = single(headers, config.header);
    const timestampText = config.timestampHeader === undefined ? undefined : single(headers, config.timestampHeader);
    const id = config.idHeader === undefined ? undefined : single(headers, config.idHeader);
    const absent = [
      header === undefined && config.header,
      config.timestampHeader !== undefined && timestampText === undefined && config.timestampHeader,
      needsId && id === undefined && config.idHeader,
    ].filter((n): n is string => typeof n === 'string');
    if (absent.length) return { problem: 'missing_signature', detail: `the delivery has no ${absent.join(', ')} header` };
    const encoded = header!.startsWith(config.prefix) ? header!.slice(config.prefix.length) : null;
    const digest = encoded === null ? null : config.encoding === 'hex' ? hexBytes(encoded, bytes) : base64Digest(encoded, bytes);
    if (digest === null) return { problem: 'invalid_signature', detail: `${config.header} must be ${format}` };
    let timestamp: number | null = null;
    if (timestampText !== undefined) {
      timestamp = parseSeconds(timestampText);
      if (timestamp === null) return { problem: 'invalid_signature', detail: `${config.timestampHeader} must be whole seconds since the epoch` };
    }
    if (needsId && !DELIVERY_ID.test(id!)) return { problem: 'invalid_signature', detail: `${config.idHeader} must be 1-256 visible ASCII characters` };
    const fill = (text: string) => text.replaceAll('{timestamp}', timestampText ?? '').replaceAll('{id}', id ?? '');
    return {
      prefix: fill(before),
      suffix: fill(after),
      algorithm: config.algorithm,
      timestamp,
      signatures: [digest],
      ...(needsId && options.replay ? { deliveryId: id! } : {}),
    };
  }

  return { name: 'hmac', parse, key: literalKey };
}

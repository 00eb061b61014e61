/**
 * Twilio (https://www.twilio.com/docs/usage/webhooks/webhooks-security):
 *
 *   X-Twilio-Signature: <base64 HMAC-SHA-1 of URL + sorted form parameters>
 *
 * Twilio signs the full URL it called (scheme, host, path and query) followed, for an
 * application/x-www-form-urlencoded POST, by every parameter sorted by name, each as
 * name + value (a repeated name: its distinct values sorted, each as name + value) — the
 * parameters, not the bytes: their order in the body is not covered. A JSON body is signed
 * through the URL instead: Twilio adds `bodySHA256=<hex SHA-256 of the body>` to the query
 * and signs the URL alone, and the body must hash to that value. Exactly what the twilio
 * package's validateRequest / validateRequestWithBody check (including that the URL may
 * have been signed with or without its default port, :443 or :80); its fall-back to a
 * re-encoded URL is not done — the URL is used as received.
 *
 * keygate sees only the path it was called with, so the route knows its public URL:
 * `webhook.publicUrl` is where the sender reaches the route's pathPrefix, and the signed
 * URL is publicUrl + the rest of the request path + its query string, exactly as received.
 * Webhooks signed with a SharedKey (`X-Twilio-Webhooks-Signature-Settings:
 * key=…,algorithm=HMAC_SHA256`) are HMAC-SHA-256; the stored secret is then the SharedKey
 * secret, otherwise the account's Auth Token. Neither has a timestamp or a signed id, so
 * replay protection claims the signed text for `toleranceSeconds`, as for GitHub.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { HmacAlgorithm } from '../config/webhooks.ts';
import { base64Digest, DIGEST_BYTES, literalKey, single, type Derived, type HeaderProblem, type Scheme, type SignedParts } from './scheme.ts';

export interface TwilioOptions {
  /** webhook.publicUrl, without a trailing "/". */
  readonly publicUrl: string;
  /** The route's pathPrefix. */
  readonly pathPrefix: string;
}

/** "https://host/x" with the scheme's default port added, and without any port: Twilio may have signed either. */
function portVariants(url: string): string[] {
  const match = /^([a-z][a-z0-9+.-]*:\/\/)([^/?#]*)(.*)$/is.exec(url);
  if (match === null) return [url];
  const [, scheme, authority, rest] = match as unknown as [string, string, string, string];
  const at = authority.lastIndexOf('@');
  const hostPort = authority.slice(at + 1);
  const colon = hostPort.indexOf(':', hostPort.lastIndexOf(']') + 1);
  const host = authority.slice(0, at + 1) + (colon === -1 ? hostPort : hostPort.slice(0, colon));
  const withPort = colon === -1 ? `${host}${scheme.toLowerCase() === 'https://' ? ':443' : ':80'}` : authority;
  const variants = [scheme + host + rest, scheme + withPort + rest];
  return variants[0] === variants[1] ? [variants[0]!] : variants;
}

/** The parameters as the twilio package concatenates them: names sorted, a name's distinct values sorted. */
export function twilioParams(form: URLSearchParams): string {
  const byName = new Map<string, string[]>();
  for (const [name, value] of form) {
    const values = byName.get(name);
    if (values === undefined) byName.set(name, [value]);
    else values.push(value);
  }
  let data = '';
  for (const name of [...byName.keys()].sort()) {
    const values = byName.get(name)!;
    if (values.length === 1) data += name + values[0]!;
    else for (const value of [...new Set(values)].sort()) data += name + value;
  }
  return data;
}

function isForm(contentType: string | undefined): boolean {
  return contentType !== undefined && /^application\/x-www-form-urlencoded\s*(;|$)/i.test(contentType);
}

export function twilioScheme(options: TwilioOptions): Scheme {
  const prefix = options.pathPrefix === '/' ? '' : options.pathPrefix;

  function parse(headers: IncomingHttpHeaders, target = '/'): SignedParts | HeaderProblem {
    const header = single(headers, 'x-twilio-signature');
    if (header === undefined) return { problem: 'missing_signature', detail: 'the delivery has no X-Twilio-Signature header' };
    let algorithm: HmacAlgorithm = 'sha1';
    const settings = single(headers, 'x-twilio-webhooks-signature-settings');
    const named = settings === undefined ? undefined : /(?:^|,)\s*algorithm\s*=\s*([^,\s]*)/i.exec(settings)?.[1];
    if (named !== undefined && named !== '') {
      if (named.toUpperCase() === 'HMAC_SHA256') algorithm = 'sha256';
      else if (named.toUpperCase() !== 'HMAC_SHA1') return { problem: 'invalid_signature', detail: 'X-Twilio-Webhooks-Signature-Settings names an algorithm other than HMAC_SHA1 or HMAC_SHA256' };
    }
    const digest = base64Digest(header, DIGEST_BYTES[algorithm]);
    if (digest === null) return { problem: 'invalid_signature', detail: `X-Twilio-Signature must be the base64 of a ${DIGEST_BYTES[algorithm]}-byte HMAC-${algorithm === 'sha1' ? 'SHA-1' : 'SHA-256'}` };

    const q = target.indexOf('?');
    const path = q === -1 ? target : target.slice(0, q);
    const query = q === -1 ? '' : target.slice(q);
    if (!(path === prefix || path.startsWith(`${prefix}/`))) {
      return { problem: 'invalid_signature', detail: "the request path does not start with the route's pathPrefix as written (Twilio signs the URL exactly as it called it)" };
    }
    const urls = portVariants(options.publicUrl + path.slice(prefix.length) + query);
    const bodySha = query === '' ? null : new URLSearchParams(query.slice(1)).get('bodySHA256');
    const contentType = single(headers, 'content-type');

    let derive: (body: Buffer) => Derived | string;
    if (bodySha !== null) {
      if (!/^[0-9a-f]{64}$/i.test(bodySha)) return { problem: 'invalid_signature', detail: 'the bodySHA256 query parameter must be 64 hex digits' };
      const expected = Buffer.from(bodySha.toLowerCase(), 'utf8');
      derive = (body) => {
        const actual = Buffer.from(createHash('sha256').update(body).digest('hex'), 'utf8');
        if (!timingSafeEqual(actual, expected)) return 'the body does not hash to the bodySHA256 of the signed URL';
        return { messages: urls, replay: urls[0]! };
      };
    } else {
      derive = (body) => {
        if (body.length > 0 && !isForm(contentType)) {
          return 'Twilio signs only form parameters (application/x-www-form-urlencoded); any other body must be covered by a bodySHA256 query parameter';
        }
        const data = body.length === 0 ? '' : twilioParams(new URLSearchParams(body.toString('utf8')));
        return { messages: urls.map((url) => url + data), replay: `${urls[0]!}\n${data}` };
      };
    }
    return { prefix: '', timestamp: null, algorithm, signatures: [digest], derive };
  }

  return { name: 'twilio', parse, key: literalKey };
}

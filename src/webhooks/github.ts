/**
 * GitHub (https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries):
 *
 *   X-Hub-Signature-256: sha256=<hex HMAC-SHA-256 of the body>
 *
 * One signature, over the body only: GitHub signs no timestamp and no delivery id
 * (`X-GitHub-Delivery` is not covered by the signature, so a replayer can change it). The
 * legacy SHA-1 `X-Hub-Signature` is not accepted. The key is the secret as it is.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { hexDigest, literalKey, single, type HeaderProblem, type Scheme, type SignedParts } from './scheme.ts';

function parse(headers: IncomingHttpHeaders): SignedParts | HeaderProblem {
  const header = single(headers, 'x-hub-signature-256');
  if (header === undefined) {
    const legacy = headers['x-hub-signature'] !== undefined ? ' (the SHA-1 X-Hub-Signature is not accepted)' : '';
    return { problem: 'missing_signature', detail: `the delivery has no X-Hub-Signature-256 header${legacy}` };
  }
  const digest = header.startsWith('sha256=') ? hexDigest(header.slice(7)) : null;
  if (digest === null) return { problem: 'invalid_signature', detail: 'X-Hub-Signature-256 must be sha256=<64 hex>' };
  return { prefix: '', timestamp: null, signatures: [digest] };
}

export const github: Scheme = { name: 'github', parse, key: literalKey };

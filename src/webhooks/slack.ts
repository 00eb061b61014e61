/**
 * Slack (https://api.slack.com/authentication/verifying-requests-from-slack):
 *
 *   X-Slack-Request-Timestamp: 1700000000
 *   X-Slack-Signature: v0=<hex HMAC-SHA-256 of "v0:timestamp:body">
 *
 * One signature; other versions than `v0` are refused. The key is the app's signing secret
 * as it is (its UTF-8 bytes). Slack signs every retry (X-Slack-Retry-Num) again with a new
 * timestamp, so a retry is a new delivery for the replay check. The timestamp text is signed
 * as sent (like @slack/bolt's verifySlackRequest, which checks only the past: keygate checks
 * both directions).
 */
import type { IncomingHttpHeaders } from 'node:http';
import { hexDigest, literalKey, parseSeconds, single, type HeaderProblem, type Scheme, type SignedParts } from './scheme.ts';

function parse(headers: IncomingHttpHeaders): SignedParts | HeaderProblem {
  const signature = single(headers, 'x-slack-signature');
  const timestampText = single(headers, 'x-slack-request-timestamp');
  const absent = [timestampText === undefined && 'X-Slack-Request-Timestamp', signature === undefined && 'X-Slack-Signature'].filter((n) => n !== false);
  if (absent.length) return { problem: 'missing_signature', detail: `the delivery has no ${absent.join(', ')} header (Slack signature)` };
  const timestamp = parseSeconds(timestampText!);
  if (timestamp === null) return { problem: 'invalid_signature', detail: 'X-Slack-Request-Timestamp must be whole seconds since the epoch' };
  const digest = signature!.startsWith('v0=') ? hexDigest(signature!.slice(3)) : null;
  if (digest === null) return { problem: 'invalid_signature', detail: 'X-Slack-Signature must be v0=<64 hex> (other versions are not supported)' };
  return { prefix: `v0:${timestampText}:`, timestamp, signatures: [digest] };
}

export const slack: Scheme = { name: 'slack', parse, key: literalKey };

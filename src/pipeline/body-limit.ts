/**
 * The body-limit stage: a request that declares a body over the route's `maxBodyBytes`
 * (Content-Length) is refused with 413 before anything of it is read. A chunked body has no
 * length to check here; the forward stage counts it as it streams (http/body-limit.ts).
 */
import type { Refusal } from '../auth/refusals.ts';
import type { HttpExchange } from './exchange.ts';
import type { Stage } from './pipeline.ts';

export const bodyLimitStage: Stage<HttpExchange> = {
  name: 'body limit',
  applies: (route) => route.config.maxBodyBytes > 0,
  run(exchange): Refusal | undefined {
    const max = exchange.route!.config.maxBodyBytes;
    const length = exchange.req.headers['content-length'];
    if (length === undefined || Number(length) <= max) return undefined;
    return { code: 'payload_too_large', outcome: 'public', detail: `the request body is larger than ${max} bytes`, headers: undefined };
  },
};

/** The store's role for rate limits (limits/limiter.ts): one decision per request, shared by every instance of the store. */
export type { Bucket, LimitDecision, RateLimiter as LimitStore } from '../limits/limiter.ts';

/**
 * The scheme registry: which Scheme verifies a route's deliveries. The fixed ones are shared
 * objects; Shopify, Twilio and hmac are built from the route's webhook section (and Twilio
 * from its pathPrefix: the public URL it signs is publicUrl + the rest of the path).
 */
import type { WebhookConfig } from '../config/webhooks.ts';
import { github } from './github.ts';
import { hmacScheme } from './hmac.ts';
import type { Scheme } from './scheme.ts';
import { shopifyScheme } from './shopify.ts';
import { slack } from './slack.ts';
import { standard } from './standard.ts';
import { stripe } from './stripe.ts';
import { twilioScheme } from './twilio.ts';

export function schemeFor(config: WebhookConfig, pathPrefix: string): Scheme {
  switch (config.scheme) {
    case 'standard':
      return standard;
    case 'stripe':
      return stripe;
    case 'github':
      return github;
    case 'slack':
      return slack;
    case 'shopify':
      return shopifyScheme({ replay: config.replay });
    case 'twilio':
      // The config schema refuses a twilio section without publicUrl.
      return twilioScheme({ publicUrl: config.publicUrl!, pathPrefix });
    case 'hmac':
      return hmacScheme(config.hmac!, { replay: config.replay });
  }
}

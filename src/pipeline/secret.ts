/**
 * The secret stage (routes with `secret`): the stored upstream secret's header joins the
 * headers the route sets, replacing any client copy. No secret, no request upstream: 502,
 * naming the secret and never anything of its value (the reason is in the log, vault.ts).
 */
import type { Refusal } from '../auth/refusals.ts';
import type { HeaderResult, SecretSpec } from '../secrets/vault.ts';
import type { Exchange } from './exchange.ts';
import { settle, type Stage, type StageOutcome } from './pipeline.ts';

export interface SecretSource {
  /** `[header, value]` to set upstream, why there is none, or a Promise of either. */
  headerFor(spec: SecretSpec): HeaderResult | Promise<HeaderResult>;
}

function withSecret(exchange: Exchange, id: string, result: HeaderResult): StageOutcome {
  if (typeof result !== 'string') {
    exchange.routeHeaders = result;
    return undefined;
  }
  // The outcome stays what authentication made it: the key was fine, the secret is missing.
  return { code: 'upstream_unavailable', outcome: exchange.outcome, detail: `the upstream secret "${id}" that this route injects is not available`, headers: undefined } satisfies Refusal;
}

/** @param secrets null: no master key, so routes that name a secret answer 502. */
export function secretStage(secrets: SecretSource | null): Stage<Exchange> {
  return {
    name: 'secret',
    applies: (route) => route.config.secret !== undefined,
    run(exchange) {
      const spec = exchange.route!.config.secret!;
      // The vault answers store_unavailable itself when the store fails; a rejection is a bug (500).
      return settle(secrets === null ? 'no_master_key' : secrets.headerFor(spec), (result) => withSecret(exchange, spec.id, result));
    },
  };
}

/**
 * The pipeline's stages in order, for each transport — the one place that says what a request
 * goes through (README, "How a request is handled", lists the same names in the same order):
 *
 *   HTTP:      method → target → metadata → match → origin → body limit → credential → admit
 *              → mcp policy → limit → webhook signature → secret → rewrite → forward
 *   WebSocket:          target+match (once, in shouldUpgrade) → origin → credential → admit
 *              → limit → secret → rewrite → connect
 *   Forward-auth: method → target → match (of the original request the proxy describes)
 *              → body check → credential → admit → environment → limit → answer
 *
 * Stages marked by `applies` (origin, body limit, credential, admit, webhook signature,
 * secret) are left out of the routes they have nothing to do on, once per route.
 */
import { admitStage, credentialStage, type Door } from '../auth/admit.ts';
import type { IdentitySigner } from '../auth/identity-signer.ts';
import type { LastUsed } from '../events/last-used.ts';
import { metadataStage } from '../mcp/resource-metadata.ts';
import { matchStage, targetStage, upgradeStage } from '../routing/match.ts';
import { webhookStage, type WebhookVerifier } from '../webhooks/delivery.ts';
import { bodyLimitStage } from './body-limit.ts';
import { originStage, upgradeOriginStage } from './cors.ts';
import type { Current } from './current.ts';
import type { Exchange, HttpExchange } from './exchange.ts';
import { forwardStage, type ForwardHooks } from './forward.ts';
import { methodStage } from './method-guard.ts';
import type { Stage } from './pipeline.ts';
import { rewriteStage } from './rewrite.ts';
import { secretStage, type SecretSource } from './secret.ts';
import { answerStage, bodyCheckStage, environmentStage, type ForwardAuthExchange } from './forward-auth-stages.ts';

/** What the stages need, shared by both transports. */
export interface StageParts {
  current: Current;
  /** Who gets in (auth/admit.ts): the key verifier and the failed-auth limit. */
  door: Door;
  /** Notes each key's use; written to the store in batches, never per request. */
  lastUsed: LastUsed | null;
  /** Upstream secrets for routes that name one (secrets/vault.ts); null: such routes answer 502. */
  secrets: SecretSource | null;
  /** Signs the caller's identity on routes with `signedIdentity` (auth/identity-signer.ts). */
  signer: IdentitySigner | null;
  /** Rate limits (limits/stage.ts); null: none are counted. */
  limit: Stage<Exchange> | null;
  /** Per-tool MCP authorization (mcp/policy-stage.ts) on routes with `mcp.policy`; null: never. */
  mcpPolicy?: Stage<HttpExchange> | null;
}

const limitOf = <E extends Exchange>(parts: StageParts): Stage<E>[] => (parts.limit === null ? [] : [parts.limit as Stage<E>]);

export type StageLists<E extends Exchange> = [front: Stage<E>[], route: Stage<E>[]];

export function httpStages(parts: StageParts, webhooks: WebhookVerifier | null, hooks: ForwardHooks): StageLists<HttpExchange> {
  const { current } = parts;
  return [
    [methodStage, targetStage, metadataStage(current), matchStage(current)],
    [
      originStage,
      bodyLimitStage,
      credentialStage,
      admitStage(parts.door, current, parts.lastUsed),
      ...(parts.mcpPolicy ? [parts.mcpPolicy] : []),
      ...limitOf<HttpExchange>(parts),
      webhookStage(webhooks),
      secretStage(parts.secrets),
      rewriteStage(current, parts.signer),
      forwardStage(current, hooks),
    ],
  ];
}

/** @param connect the WebSocket transport's last stage: the upgrade handed to the upstream. */
export function upgradeStages<E extends Exchange>(parts: StageParts, connect: Stage<E>): StageLists<E> {
  const { current } = parts;
  return [
    [upgradeStage(current)],
    [upgradeOriginStage, credentialStage, admitStage(parts.door, current, parts.lastUsed), ...limitOf<E>(parts), secretStage(parts.secrets), rewriteStage(current, parts.signer), connect],
  ];
}

/**
 * The forward-auth transport (transports/forward-auth.ts): the original request a proxy asks
 * about is matched and admitted like any other, then answered 200 with the identity headers
 * (the proxy forwards it itself). No body is ever seen: routes that judge bodies are refused.
 */
export function forwardAuthStages(parts: StageParts): StageLists<ForwardAuthExchange> {
  const { current } = parts;
  return [
    [methodStage, targetStage, matchStage(current)],
    [bodyCheckStage, credentialStage, admitStage(parts.door, current, parts.lastUsed), environmentStage, ...limitOf<ForwardAuthExchange>(parts), answerStage(current)],
  ];
}

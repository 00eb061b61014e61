/**
 * Where the configuration names a stored secret: what would break if the secret were removed,
 * and what still has to be repointed before an old secret can go (issue 19: "check where the
 * old token was used").
 *
 * The configuration names stored secrets by id in exactly these places (a secret id is any
 * field validated with SECRET_ID_PATTERN; test/unit/secrets/usages.test.ts walks the config
 * schema and fails when a new one appears that this file does not know):
 *
 *  - `routes[i].secret.id`: injected into every upstream request of the route (kind
 *    `route_secret`);
 *  - `routes[i].webhook.secrets[j]`: verifies the route's webhook signatures (kind
 *    `webhook_verifier`).
 *
 * Other credentials in the config are not stored secrets and are not listed: notification
 * webhooks and SMTP (`secretEnv`, `passwordEnv`) and `admin.metricsTokenEnv` name
 * environment variables; signed identity derives its keys from the pepper.
 *
 * @example
 *   secretUsages(config, 'openai');
 *   // [{ kind: 'route_secret', route: 'llm', path: 'routes[0].secret.id' }]
 *   describeUsage(usages[0]); // 'route llm (routes[0].secret.id)'
 */
import type { Config } from '../config/schema.ts';

export const SECRET_USAGE_KINDS = ['route_secret', 'webhook_verifier'] as const;
export type SecretUsageKind = (typeof SECRET_USAGE_KINDS)[number];

/** One place in the configuration that names a secret. */
export interface SecretUsage {
  kind: SecretUsageKind;
  /** The name of the route that uses it. */
  route: string;
  /** Where in the configuration: `routes[2].secret.id`, `routes[1].webhook.secrets[0]`. */
  path: string;
}

/** The configuration sections that can name secrets (a whole Config will do). */
export type SecretReferencingConfig = Pick<Config, 'routes'>;

/**
 * Every secret id the configuration names, each with its usages in the order they appear
 * in the file. An id is in the map only if it is named somewhere.
 */
export function secretReferences(config: SecretReferencingConfig): Map<string, SecretUsage[]> {
  const references = new Map<string, SecretUsage[]>();
  const add = (id: string, usage: SecretUsage) => {
    const list = references.get(id);
    if (list === undefined) references.set(id, [usage]);
    else list.push(usage);
  };
  config.routes.forEach((route, i) => {
    if (route.secret !== undefined) add(route.secret.id, { kind: 'route_secret', route: route.name, path: `routes[${i}].secret.id` });
    route.webhook?.secrets.forEach((id, j) => add(id, { kind: 'webhook_verifier', route: route.name, path: `routes[${i}].webhook.secrets[${j}]` }));
  });
  return references;
}

/** Where the configuration names secret `id`; empty when nothing does. */
export function secretUsages(config: SecretReferencingConfig, id: string): SecretUsage[] {
  return secretReferences(config).get(id) ?? [];
}

const LABELS: Record<SecretUsageKind, string> = {
  route_secret: 'route',
  webhook_verifier: 'webhook verifier of route',
};

/** `route llm (routes[0].secret.id)`, `webhook verifier of route stripe (routes[3].webhook.secrets[0])`. */
export function describeUsage(usage: SecretUsage): string {
  return `${LABELS[usage.kind]} ${usage.route} (${usage.path})`;
}

/** Every usage described, `; `-separated: for a problem's detail, an audit entry, a CLI line. */
export function describeUsages(usages: readonly SecretUsage[]): string {
  return usages.map(describeUsage).join('; ');
}

/** The JSON shape of a usage (API and CLI), field by field. */
export function toPublicUsage(usage: SecretUsage): SecretUsage {
  return { kind: usage.kind, route: usage.route, path: usage.path };
}

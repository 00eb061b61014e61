/**
 * rewrite: the headers the upstream receives. Everything the client sent, minus the
 * credential, hop-by-hop headers (RFC 9110 §7.6.1, and whatever `Connection` lists) and
 * every client-sent copy of a header keygate owns; plus the identity headers set from the
 * verified key and X-Forwarded-*. Built as a flat [name, value, …] array straight from
 * `rawHeaders`, which undici takes as is.
 */
import type { IncomingMessage } from 'node:http';
import type { Config } from '../config/schema.ts';
import type { Identity } from '../auth/identity.ts';

const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-authorization', 'proxy-authenticate'];
const FORWARDED = ['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'forwarded'];

export interface HeaderPolicy {
  /** Lower-case names never forwarded from the client. */
  readonly drop: ReadonlySet<string>;
  /** `Bearer <prefix>_`: an Authorization header that looks like one of our keys is never forwarded. */
  readonly keyBearer: string;
  readonly names: Config['headers'];
  readonly trustForwarded: boolean;
}

export function createHeaderPolicy(config: Pick<Config, 'headers' | 'forwarded' | 'keys'>): HeaderPolicy {
  // X-Forwarded-* are always rebuilt below (from the connection, or appended to when the
  // client is trusted), so the client's copies never go through as they are.
  const drop = new Set<string>([...HOP_BY_HOP, ...FORWARDED, 'host', 'expect', 'x-api-key', ...Object.values(config.headers)]);
  if (config.forwarded.trustClient) drop.delete('forwarded');
  return { drop, keyBearer: `bearer ${config.keys.prefix}_`, names: config.headers, trustForwarded: config.forwarded.trustClient };
}

/** Response headers that must not be relayed to the client. */
export const RESPONSE_HOP_BY_HOP: ReadonlySet<string> = new Set(HOP_BY_HOP);

function connectionTokens(value: string | undefined): Set<string> | null {
  if (value === undefined) return null;
  const tokens = new Set<string>();
  for (const token of value.split(',')) {
    const t = token.trim().toLowerCase();
    if (t) tokens.add(t);
  }
  return tokens.size ? tokens : null;
}

/**
 * @param dropAuthorization the `Authorization` header carried the key (Bearer) and goes too.
 * @param extra headers set by the route (e.g. an injected secret) that replace any client copy.
 */
export function upstreamHeaders(
  req: IncomingMessage,
  policy: HeaderPolicy,
  identity: Identity | null,
  dropAuthorization: boolean,
  extra: readonly string[] | null = null,
): string[] {
  const raw = req.rawHeaders;
  const listed = connectionTokens(req.headers.connection);
  const out: string[] = [];
  let extraNames: Set<string> | null = null;
  if (extra !== null) {
    extraNames = new Set();
    for (let i = 0; i < extra.length; i += 2) extraNames.add(extra[i]!);
  }
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (policy.drop.has(name)) continue;
    // CGI-style upstreams (WSGI, Rack, PHP) see `X_Tenant_Id` and `X-Tenant-Id` as one
    // variable, so a client's underscore spelling could stand in for a header keygate owns.
    if (name.includes('_')) {
      const dashed = name.replaceAll('_', '-');
      if (policy.drop.has(dashed) || extraNames?.has(dashed)) continue;
    }
    // Every copy: node:http keeps only the first Authorization in req.headers, so a key in a
    // second copy would otherwise slip through.
    if (name === 'authorization' && (dropAuthorization || raw[i + 1]!.trimStart().toLowerCase().startsWith(policy.keyBearer))) continue;
    if (listed !== null && listed.has(name)) continue;
    if (extraNames !== null && extraNames.has(name)) continue;
    out.push(raw[i]!, raw[i + 1]!);
  }
  if (identity !== null) {
    const r = identity.record;
    const n = policy.names;
    out.push(n.tenant, r.tenant, n.role, r.role);
    // An OAuth access token has no key id (auth/access-token.ts).
    if (r.id !== '') out.push(n.keyId, r.id);
    if (identity.permissionsHeader !== '') out.push(n.permissions, identity.permissionsHeader);
    if (r.user !== null && r.user !== '') out.push(n.user, r.user);
    if (r.client !== null && r.client !== '') out.push(n.client, r.client);
  }
  const remote = req.socket.remoteAddress ?? '';
  const h = req.headers;
  if (policy.trustForwarded) {
    const xff = h['x-forwarded-for'];
    out.push('x-forwarded-for', xff ? `${xff}, ${remote}` : remote);
    out.push('x-forwarded-proto', (h['x-forwarded-proto'] as string | undefined) ?? protocolOf(req));
    out.push('x-forwarded-host', (h['x-forwarded-host'] as string | undefined) ?? h.host ?? '');
  } else {
    out.push('x-forwarded-for', remote, 'x-forwarded-proto', protocolOf(req));
    if (h.host !== undefined) out.push('x-forwarded-host', h.host);
  }
  if (extra !== null) for (let i = 0; i < extra.length; i++) out.push(extra[i]!);
  return out;
}

function protocolOf(req: IncomingMessage): string {
  return (req.socket as { encrypted?: boolean }).encrypted ? 'https' : 'http';
}

/**
 * What an MCP message needs, and whether a caller holds it (docs/mcp-policy.md).
 *
 *   tools/call     {name}  → mcp:tools/call:<name>
 *   prompts/get    {name}  → mcp:prompts/get:<name>
 *   resources/read {uri}   → mcp:resources/read:<uri>
 *   any other method      → mcp:<method>   (only with `policy.methods: all`; initialize, ping
 *                                           and notifications are never checked)
 *
 * A held permission covers a needed one when it is the same, or a prefix of it that ends
 * where a segment ends (`:` or `/`) — `mcp` covers everything, `mcp:tools` every tool
 * method, `mcp:tools/call` every tool — or when it matches with `*` standing for any run of
 * characters (`mcp:tools/call:search_*`). Token scopes are permissions too, so an access
 * token's scope `mcp:tools` covers every tool: the MCP authorization spec asks that scope
 * hierarchies be honoured.
 */
import type { Identity } from '../auth/identity.ts';

/** The list method whose answer lists what a named method acts on, and the field of each entry that names it. */
export const LISTS: Readonly<Record<string, { call: string; items: string; key: 'name' | 'uri' }>> = {
  'tools/list': { call: 'tools/call', items: 'tools', key: 'name' },
  'prompts/list': { call: 'prompts/get', items: 'prompts', key: 'name' },
  'resources/list': { call: 'resources/read', items: 'resources', key: 'uri' },
};

/** Methods that name what they act on, and the params field that names it. */
export const NAMED: Readonly<Record<string, 'name' | 'uri'>> = { 'tools/call': 'name', 'prompts/get': 'name', 'resources/read': 'uri' };

/** Never checked: the session's own plumbing. */
const OPEN = new Set(['initialize', 'ping']);

/** The permission a request needs, or null when it needs none. */
export function requiredPermission(method: string, name: string | undefined, methods: 'named' | 'all'): string | null {
  if (Object.hasOwn(NAMED, method)) return name === undefined ? `mcp:${method}` : `mcp:${method}:${name}`;
  if (methods === 'named' || OPEN.has(method) || method.startsWith('notifications/')) return null;
  return `mcp:${method}`;
}

/** Wildcard permissions of an identity, compiled once per identity (identities are cached). */
const wildcards = new WeakMap<Identity, readonly RegExp[]>();

function wildcardsOf(identity: Identity): readonly RegExp[] {
  let compiled = wildcards.get(identity);
  if (compiled === undefined) {
    compiled = identity.permissions
      .filter((p) => p.includes('*'))
      .map((p) => new RegExp(`^${p.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`, 's'));
    wildcards.set(identity, compiled);
  }
  return compiled;
}

/** Whether `identity` holds `needed` itself, an ancestor of it, or a wildcard that matches it. */
export function covers(identity: Identity, needed: string): boolean {
  const held = identity.permissionSet;
  if (held.has(needed)) return true;
  // Ancestors: every prefix that ends just before a ':' or '/'.
  for (let i = needed.length - 1; i > 0; i--) {
    const c = needed.charCodeAt(i);
    if ((c === 58 /* : */ || c === 47) /* / */ && held.has(needed.slice(0, i))) return true;
  }
  for (const pattern of wildcardsOf(identity)) if (pattern.test(needed)) return true;
  return false;
}

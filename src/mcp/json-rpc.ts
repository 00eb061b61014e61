/**
 * The JSON-RPC messages of an MCP POST, as far as the policy needs them: each message's
 * method, id and the name it acts on, and the answers keygate gives in the client's protocol.
 */
import { NAMED } from './permissions.ts';

export interface RpcMessage {
  /** The message as parsed (forwarded as is when allowed). */
  readonly raw: Record<string, unknown>;
  /** Undefined for a response the client sends back (to a server request). */
  readonly method: string | undefined;
  /** Undefined for a notification. */
  readonly id: string | number | null | undefined;
  /** What a named method acts on (`params.name` or `params.uri`). */
  readonly name: string | undefined;
}

/** JSON-RPC error codes keygate answers with (docs/mcp-policy.md). */
export const RPC_PARSE_ERROR = -32700;
export const RPC_INVALID_REQUEST = -32600;
/** In the implementation-defined server-error range: the caller may not make this call. */
export const RPC_FORBIDDEN = -32003;

/** The messages of a body, or why it is not JSON-RPC; `batch` when the body was an array. */
export function parseMessages(body: Buffer): { messages: RpcMessage[]; batch: boolean } | { error: number; message: string } {
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch {
    return { error: RPC_PARSE_ERROR, message: 'the body is not valid JSON' };
  }
  const batch = Array.isArray(value);
  const list = batch ? (value as unknown[]) : [value];
  if (list.length === 0) return { error: RPC_INVALID_REQUEST, message: 'an empty batch' };
  const messages: RpcMessage[] = [];
  for (const item of list) {
    if (item === null || typeof item !== 'object' || Array.isArray(item)) return { error: RPC_INVALID_REQUEST, message: 'a message is not a JSON object' };
    const raw = item as Record<string, unknown>;
    const method = raw.method;
    if (method !== undefined && typeof method !== 'string') return { error: RPC_INVALID_REQUEST, message: 'a method is not a string' };
    const id = raw.id as RpcMessage['id'];
    if (id !== undefined && id !== null && typeof id !== 'string' && typeof id !== 'number') return { error: RPC_INVALID_REQUEST, message: 'an id is neither a string nor a number' };
    let name: string | undefined;
    if (method !== undefined && Object.hasOwn(NAMED, method)) {
      const params = raw.params;
      const field = NAMED[method]!;
      const value = params !== null && typeof params === 'object' ? (params as Record<string, unknown>)[field] : undefined;
      // A named call without a name is refused by the upstream anyway; keygate cannot judge it.
      if (typeof value !== 'string') return { error: RPC_INVALID_REQUEST, message: `${method} without params.${field}` };
      name = value;
    }
    messages.push({ raw, method, id, name });
  }
  return { messages, batch };
}

export function rpcError(id: RpcMessage['id'], code: number, message: string): Record<string, unknown> {
  return { jsonrpc: '2.0', id: id ?? null, error: { code, message } };
}

/**
 * The MCP policy stage (routes with `mcp.policy`, after admit): reads the JSON-RPC messages a
 * client POSTs — bounded by `policy.maxBodyBytes`, batches included — and lets through only
 * the calls the caller holds the permission for (mcp/permissions.ts). A refused call gets the
 * answer an MCP client understands: a JSON-RPC error for that request id, in a 200 response
 * (the Streamable HTTP transport answers a request with its JSON-RPC response); in a batch,
 * the allowed messages go on to the upstream and the refused ones' errors are added to its
 * answer. `tools/list`, `prompts/list` and `resources/list` answers are filtered on their way
 * back (mcp/list-filter.ts).
 *
 * The 2026-07-28 transport's `Mcp-Method` and `Mcp-Name` headers, when sent, must say what
 * the body says (400 otherwise): an intermediary that decides on them must not be lied to.
 *
 * Every decision is counted (keygate_mcp_calls_total by route, method, tool and decision);
 * refusals are audited (`mcp.refused`: key, tool) within a budget, so a flood of refused
 * calls cannot flood the audit log (the metric still counts every one).
 */
import type { Refusal } from '../auth/refusals.ts';
import type { EventSink } from '../events/event-sink.ts';
import { PayloadTooLargeError } from '../http/body-limit.ts';
import { readBody } from '../http/read-body.ts';
import type { HttpExchange } from '../pipeline/exchange.ts';
import { ANSWERED, type Stage, type StageOutcome } from '../pipeline/pipeline.ts';
import type { Counter } from 'prom-client';
import { parseMessages, RPC_FORBIDDEN, rpcError, type RpcMessage } from './json-rpc.ts';
import { McpListFilter } from './list-filter.ts';
import { covers, LISTS, requiredPermission } from './permissions.ts';

export interface McpPolicyOptions {
  events?: EventSink | null;
  /** keygate_mcp_calls_total{route, method, tool, decision}. */
  calls?: Counter<'route' | 'method' | 'tool' | 'decision'>;
  /** Refusals audited per second at most (the rest are counted only). */
  auditPerSecond?: number;
}

/** Distinct method and tool labels per route in the metric; past it, `other` (a client cannot grow the metric). */
const MAX_TOOL_LABELS = 200;

function badRequest(detail: string): Refusal {
  return { code: 'bad_request', outcome: 'bad_request', detail, headers: undefined };
}

/** Writes keygate's own JSON-RPC answer (a single message or a batch's array). */
function answer(exchange: HttpExchange, body: unknown): typeof ANSWERED {
  const res = exchange.res;
  exchange.outcome = 'forbidden';
  exchange.error = 'forbidden_permission';
  const text = JSON.stringify(body);
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
  return ANSWERED;
}

export function mcpPolicyStage(options: McpPolicyOptions = {}): Stage<HttpExchange> {
  const labels = new Map<string, Set<string>>();
  const budget = { second: 0, used: 0 };
  const perSecond = options.auditPerSecond ?? 10;

  /** A label value the client chose (a method, a tool name), bounded per route and kind. */
  const label = (route: string, kind: 'method' | 'tool', value: string | undefined): string => {
    if (value === undefined) return '';
    const name = value.slice(0, 128);
    const key = `${kind} ${route}`;
    let seen = labels.get(key);
    if (seen === undefined) labels.set(key, (seen = new Set()));
    if (seen.has(name)) return name;
    if (seen.size >= MAX_TOOL_LABELS) return 'other';
    seen.add(name);
    return name;
  };

  const audit = (exchange: HttpExchange, message: RpcMessage, needed: string): void => {
    const now = Math.floor(Date.now() / 1000);
    if (budget.second !== now) {
      budget.second = now;
      budget.used = 0;
    }
    if (budget.used++ >= perSecond) return;
    const record = exchange.identity!.record;
    void options.events
      ?.audit('mcp.refused', record.id || null, record.tenant, `${message.method}:${message.name ?? ''}`.slice(0, 300), { route: exchange.route!.name, needed: needed.slice(0, 300), decision: 'refused' })
      .catch(() => {});
  };

  const judge = (exchange: HttpExchange, body: Buffer): StageOutcome => {
    const route = exchange.route!;
    const policy = route.config.mcp!.policy!;
    const identity = exchange.identity!;
    const parsed = parseMessages(body);
    if ('error' in parsed) return answer(exchange, rpcError(null, parsed.error, parsed.message));
    const { messages, batch } = parsed;
    // The new transport's routing headers must agree with the body they describe.
    const methodHeader = exchange.req.headers['mcp-method'];
    const nameHeader = exchange.req.headers['mcp-name'];
    if (methodHeader !== undefined || nameHeader !== undefined) {
      const only = messages.length === 1 ? messages[0]! : undefined;
      if (only === undefined) return badRequest('Mcp-Method and Mcp-Name describe one message; this body is a batch');
      if (methodHeader !== undefined && methodHeader !== only.method) return badRequest(`the Mcp-Method header (${String(methodHeader).slice(0, 100)}) is not the body's method`);
      if (nameHeader !== undefined && nameHeader !== only.name) return badRequest(`the Mcp-Name header is not the name the body's ${only.method ?? 'message'} acts on`);
    }
    const allowed: RpcMessage[] = [];
    const errors: Record<string, unknown>[] = [];
    const lists = new Map<string, string>();
    for (const message of messages) {
      const needed = message.method === undefined ? null : requiredPermission(message.method, message.name, policy.methods);
      const ok = needed === null || covers(identity, needed);
      if (message.method !== undefined) options.calls?.labels(route.name, label(route.name, 'method', message.method), label(route.name, 'tool', message.name), ok ? 'allowed' : 'refused').inc();
      if (ok) {
        allowed.push(message);
        if (message.method !== undefined && Object.hasOwn(LISTS, message.method) && message.id !== undefined) lists.set(JSON.stringify(message.id), message.method);
        continue;
      }
      audit(exchange, message, needed!);
      // A refused notification has no answer; a refused request gets its error.
      if (message.id !== undefined) errors.push(rpcError(message.id, RPC_FORBIDDEN, `forbidden: this key lacks ${needed}`));
    }
    const single = allowed.length === 1 ? allowed[0]! : null;
    exchange.mcp = single !== null && single.method !== undefined ? { method: single.method, name: single.name } : null;
    if (allowed.length === 0) return errors.length === 0 ? answer(exchange, []) : answer(exchange, batch ? errors : errors[0]);
    // Forward exactly what was sent when all of it is allowed; the allowed part of a batch otherwise.
    exchange.body = allowed.length === messages.length ? body : Buffer.from(JSON.stringify(batch ? allowed.map((m) => m.raw) : allowed[0]!.raw));
    if (lists.size > 0 || errors.length > 0) exchange.responseFilter = new McpListFilter(identity, lists, errors, policy.maxListBytes);
    return undefined;
  };

  return {
    name: 'mcp policy',
    applies: (route) => route.config.mcp?.policy !== undefined && route.authRequired,
    run(exchange) {
      const req = exchange.req;
      // GET opens the server's event stream, DELETE ends the session: no client message to judge.
      if (req.method !== 'POST') return undefined;
      const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
      if (type !== 'application/json') return { code: 'unsupported_media_type', outcome: 'bad_request', detail: 'an MCP message is POSTed as application/json', headers: undefined };
      const policy = exchange.route!.config.mcp!.policy!;
      if (exchange.expectContinue) exchange.res.writeContinue();
      return readBody(req, policy.maxBodyBytes, exchange.route!.config.timeouts.idleMs, () => {}).then(
        (body) => judge(exchange, body),
        (error: unknown): StageOutcome => {
          if (error instanceof PayloadTooLargeError) return { code: 'payload_too_large', outcome: 'bad_request', detail: `${error.message} (mcp.policy.maxBodyBytes)`, headers: undefined };
          return { code: 'bad_request', outcome: 'bad_request', detail: 'the request body did not arrive', headers: undefined };
        },
      );
    },
  };
}

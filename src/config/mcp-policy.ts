/**
 * `routes[].mcp.policy`: per-tool authorization on an MCP route (docs/mcp-policy.md). keygate
 * reads each JSON-RPC message the client POSTs (up to `maxBodyBytes`, batches included) and
 * requires, for a call that names what it acts on, the permission `mcp:<method>:<name>`
 * (`mcp:tools/call:search_candidates`, `mcp:prompts/get:summary`,
 * `mcp:resources/read:file:///reports/q3.pdf`), with wildcards and a hierarchy (`mcp:tools`
 * covers every tool call); `tools/list`, `resources/list` and `prompts/list` answers are
 * filtered to what the caller may use.
 *
 *   mcp:
 *     resource: https://mcp.example.com/mcp
 *     policy:
 *       maxBodyBytes: 1048576       # a larger POST body is refused (413) rather than forwarded unread
 *       maxListBytes: 8388608       # a list answer larger than this is refused (502), never passed unfiltered
 *       methods: named              # named: only calls that name a tool, prompt or resource need a permission;
 *                                   # all: every other request method needs mcp:<method> too (initialize and ping excepted)
 */
import { z } from 'zod';

const bytes = (max: number) => z.number({ error: 'must be a number of bytes' }).int('must be a whole number').min(1024, 'must be at least 1024').max(max, `must be at most ${max}`);

export const mcpPolicySchema = z.strictObject({
  maxBodyBytes: bytes(16 * 1024 * 1024).default(1024 * 1024),
  maxListBytes: bytes(64 * 1024 * 1024).default(8 * 1024 * 1024),
  methods: z.enum(['named', 'all'], { error: 'must be "named" or "all"' }).default('named'),
});

export type McpPolicyConfig = z.output<typeof mcpPolicySchema>;

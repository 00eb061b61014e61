import { describe, expect, it } from 'vitest';
import { toIdentity } from '../../../src/auth/identity.ts';
import type { KeyRecord } from '../../../src/keys/record.ts';
import { covers, requiredPermission } from '../../../src/mcp/permissions.ts';
import { parseMessages } from '../../../src/mcp/json-rpc.ts';
import { McpListFilter } from '../../../src/mcp/list-filter.ts';
import { testDirectory } from '../../helpers/directory.ts';

const identity = (permissions: string[]) =>
  toIdentity({ id: 'key_1', tenant: 'acme', permissions, group: null, user: null, permissionsFrom: 'key', rateLimits: [], quota: null } as unknown as KeyRecord, testDirectory());

describe('MCP permissions', () => {
  it('names what a message needs; methods: all adds the other methods, never initialize, ping or notifications', () => {
    expect(requiredPermission('tools/call', 'search', 'named')).toBe('mcp:tools/call:search');
    expect(requiredPermission('resources/read', 'file:///a/b', 'named')).toBe('mcp:resources/read:file:///a/b');
    expect(requiredPermission('tools/list', undefined, 'named')).toBeNull();
    expect(requiredPermission('tools/list', undefined, 'all')).toBe('mcp:tools/list');
    for (const open of ['initialize', 'ping', 'notifications/initialized']) expect(requiredPermission(open, undefined, 'all')).toBeNull();
  });

  it('covers by equality, by ancestors ending at a segment, and by wildcards — never by a bare prefix', () => {
    const needed = 'mcp:tools/call:search_candidates';
    for (const held of [needed, 'mcp:tools/call', 'mcp:tools', 'mcp', 'mcp:tools/call:search_*', 'mcp:*', '*']) expect(covers(identity([held]), needed), held).toBe(true);
    for (const held of ['mcp:tool', 'mcp:tools/cal', 'mcp:tools/call:search', 'mcp:tools/call:search_candidates_v2', 'mcp:prompts', 'mcp:tools/call:s?arch*', 'other']) expect(covers(identity([held]), needed), held).toBe(false);
    // Regular-expression characters in a held permission are plain characters.
    expect(covers(identity(['mcp:resources/read:file:///a.b*']), 'mcp:resources/read:file:///aXb/c')).toBe(false);
    expect(covers(identity(['mcp:resources/read:file:///a.b*']), 'mcp:resources/read:file:///a.b/c')).toBe(true);
  });
});

describe('JSON-RPC messages', () => {
  it('reads single messages and batches, and says what is wrong with the rest', () => {
    const one = parseMessages(Buffer.from('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}'));
    expect(one).toMatchObject({ batch: false, messages: [{ method: 'tools/call', id: 1, name: 'x' }] });
    const batch = parseMessages(Buffer.from('[{"jsonrpc":"2.0","method":"notifications/initialized"},{"jsonrpc":"2.0","id":"a","result":{}}]'));
    expect(batch).toMatchObject({ batch: true, messages: [{ method: 'notifications/initialized', id: undefined }, { method: undefined, id: 'a' }] });
    for (const [text, code] of [['{', -32700], ['[]', -32600], ['"x"', -32600], ['{"method":5}', -32600], ['{"id":[1],"method":"x"}', -32600], ['{"id":1,"method":"prompts/get","params":{"name":3}}', -32600]] as const) {
      expect(parseMessages(Buffer.from(text)), text).toMatchObject({ error: code });
    }
  });
});

describe('McpListFilter', () => {
  const tools = { jsonrpc: '2.0', id: 7, result: { tools: [{ name: 'a' }, { name: 'b' }, { nameless: true }] } };
  const only = (permissions: string[]) => new McpListFilter(identity(permissions), new Map([['7', 'tools/list']]), [], 4096);

  it('filters a JSON answer, single or in an array, and adds refused requests\' errors', () => {
    const f = only(['mcp:tools/call:a']);
    expect(f.start('application/json; charset=utf-8')).toBe(true);
    expect(f.data(Buffer.from(JSON.stringify(tools).slice(0, 10)))).toBeNull();
    expect(f.data(Buffer.from(JSON.stringify(tools).slice(10)))).toBeNull();
    expect(JSON.parse(f.end()!.toString())).toEqual({ jsonrpc: '2.0', id: 7, result: { tools: [{ name: 'a' }] } });
    const g = new McpListFilter(identity([]), new Map([['7', 'tools/list']]), [{ jsonrpc: '2.0', id: 8, error: { code: -32003, message: 'no' } }], 4096);
    g.start('application/json');
    g.data(Buffer.from(JSON.stringify([tools])));
    expect(JSON.parse(g.end()!.toString())).toEqual([{ ...tools, result: { tools: [] } }, { jsonrpc: '2.0', id: 8, error: { code: -32003, message: 'no' } }]);
  });

  it('filters an event stream one event at a time, in any line-end spelling, with characters split across chunks', () => {
    const f = only(['mcp:tools/call:b']);
    expect(f.start('text/event-stream')).toBe(true);
    const first = 'event: message\r\ndata: {"jsonrpc":"2.0","method":"notifications/progress","params":{"é":1}}\r\n\r\n';
    const second = `id: 3\ndata: ${JSON.stringify(tools)}\n\n`;
    const bytes = Buffer.from(first + second, 'utf8');
    const split = bytes.indexOf(Buffer.from('é')) + 1;
    const out: string[] = [];
    for (const part of [bytes.subarray(0, split), bytes.subarray(split, bytes.length - 5), bytes.subarray(bytes.length - 5)]) {
      const written = f.data(Buffer.from(part));
      if (written !== null) out.push(written.toString('utf8'));
    }
    const rest = f.end();
    if (rest !== null) out.push(rest.toString('utf8'));
    expect(out[0]).toBe(first);
    const text = out.join('');
    expect(text).toContain('"é":1');
    const list = JSON.parse(text.split('\n').find((l) => l.startsWith('data: {"jsonrpc":"2.0","id":7'))!.slice(6));
    expect(list.result.tools).toEqual([{ name: 'b' }]);
    expect(text).toContain('id: 3\n');
  });

  it('never passes an answer it cannot filter: too large, or not JSON', () => {
    const big = new McpListFilter(identity([]), new Map([['7', 'tools/list']]), [], 1024);
    big.start('application/json');
    big.data(Buffer.alloc(2048, 0x20));
    expect(JSON.parse(big.end()!.toString())).toMatchObject({ id: 7, error: { code: -32603 } });
    const garbage = only([]);
    garbage.start('application/json');
    garbage.data(Buffer.from('<html>'));
    expect(JSON.parse(garbage.end()!.toString())).toMatchObject({ id: 7, error: { code: -32603 } });
    expect(only([]).start('text/html')).toBe(false);
  });
});

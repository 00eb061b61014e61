/**
 * Filters the answers to `tools/list`, `prompts/list` and `resources/list` to what the caller
 * may use (mcp/permissions.ts), in a JSON response and in an event stream alike, and adds the
 * errors of a batch's refused requests to the answer. Applied by the forward stage to the
 * response of a POST that held such a request (pipeline/forward.ts `responseFilter`).
 *
 * JSON: the answer is held until complete (at most `maxBytes`; a list answer is one JSON
 * value), then filtered. Event stream: one event at a time — an event is held until its
 * blank line, rewritten if it is the answer to a list request, and written on; nothing else
 * is held, so a long stream flows as before.
 */
import type { Identity } from '../auth/identity.ts';
import { covers, LISTS } from './permissions.ts';
import { rpcError } from './json-rpc.ts';

export interface ResponseFilter {
  /** The response's content type: false when this filter has nothing to do on it (passed through). */
  start(contentType: string | undefined): boolean;
  /** What to write for this chunk (null: nothing yet). */
  data(chunk: Buffer): Buffer | null;
  /** What is left to write at the end. */
  end(): Buffer | null;
}

const LIST_TOO_LARGE = -32603;

export class McpListFilter implements ResponseFilter {
  readonly #identity: Identity;
  /** Request id (as JSON text) → the list method it asked. */
  readonly #lists: ReadonlyMap<string, string>;
  /** JSON-RPC errors of refused requests (a batch) to add to the answer. */
  #inject: Record<string, unknown>[];
  readonly #maxBytes: number;
  #mode: 'json' | 'events' | null = null;
  #held: Buffer[] = [];
  #heldBytes = 0;
  #overflow = false;

  constructor(identity: Identity, lists: ReadonlyMap<string, string>, inject: Record<string, unknown>[], maxBytes: number) {
    this.#identity = identity;
    this.#lists = lists;
    this.#inject = inject;
    this.#maxBytes = maxBytes;
  }

  start(contentType: string | undefined): boolean {
    const type = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
    this.#mode = type === 'application/json' ? 'json' : type === 'text/event-stream' ? 'events' : null;
    return this.#mode !== null;
  }

  /** A list answer, filtered; any other message as it was. */
  #filter(message: unknown): unknown {
    if (message === null || typeof message !== 'object' || Array.isArray(message)) return message;
    const m = message as Record<string, unknown>;
    const list = m.id === undefined ? undefined : this.#lists.get(JSON.stringify(m.id));
    const result = m.result;
    if (list === undefined || result === null || typeof result !== 'object') return message;
    const { call, items, key } = LISTS[list]!;
    const entries = (result as Record<string, unknown>)[items];
    if (!Array.isArray(entries)) return message;
    const kept = entries.filter((entry: unknown) => {
      const named = entry !== null && typeof entry === 'object' ? (entry as Record<string, unknown>)[key] : undefined;
      return typeof named === 'string' && covers(this.#identity, `mcp:${call}:${named}`);
    });
    return { ...m, result: { ...(result as Record<string, unknown>), [items]: kept } };
  }

  #hold(chunk: Buffer): void {
    if (this.#overflow) return;
    this.#heldBytes += chunk.length;
    if (this.#heldBytes > this.#maxBytes) {
      this.#overflow = true;
      this.#held = [];
      return;
    }
    this.#held.push(chunk);
  }

  /** Errors for every list request in place of an answer too large to filter: never passed unfiltered. */
  #tooLarge(): Record<string, unknown>[] {
    return [...this.#lists.keys()].map((id) => rpcError(JSON.parse(id) as string | number, LIST_TOO_LARGE, `the answer is larger than keygate filters (${this.#maxBytes} bytes)`));
  }

  data(chunk: Buffer): Buffer | null {
    if (this.#mode === 'json') {
      this.#hold(chunk);
      return null;
    }
    // Events: hold until a blank line ends one or more events, then write those.
    this.#hold(chunk);
    if (this.#overflow) {
      this.#overflow = false;
      this.#heldBytes = 0;
      return this.#eventsOf(this.#tooLarge());
    }
    // Cut on bytes, not text: a character split across chunks stays whole in what is held.
    const bytes = this.#held.length === 1 ? this.#held[0]! : Buffer.concat(this.#held);
    const end = lastEventEnd(bytes);
    if (end === -1) {
      this.#held = [bytes];
      return this.#prefix(null);
    }
    const rest = bytes.subarray(end);
    this.#held = rest.length === 0 ? [] : [Buffer.from(rest)];
    this.#heldBytes = rest.length;
    return this.#prefix(Buffer.from(this.#rewriteEvents(bytes.subarray(0, end).toString('utf8')), 'utf8'));
  }

  /** The refused requests' errors go first, once. */
  #prefix(out: Buffer | null): Buffer | null {
    if (this.#inject.length === 0) return out;
    const errors = this.#eventsOf(this.#inject);
    this.#inject = [];
    return out === null ? errors : Buffer.concat([errors, out]);
  }

  #eventsOf(messages: Record<string, unknown>[]): Buffer {
    return Buffer.from(messages.map((m) => `event: message\ndata: ${JSON.stringify(m)}\n\n`).join(''), 'utf8');
  }

  #rewriteEvents(text: string): string {
    // Events end with a blank line in any line-end spelling; each is rewritten on its own.
    return text.replace(/([\s\S]*?)(\r\n\r\n|\n\n|\r\r|\r\n\n|\n\r\n)/g, (_all, event: string, blank: string) => this.#rewriteEvent(event) + blank);
  }

  #rewriteEvent(event: string): string {
    const lines = event.split(/\r\n|\n|\r/);
    const data = lines.filter((l) => l.startsWith('data:')).map((l) => l.slice(l.startsWith('data: ') ? 6 : 5));
    if (data.length === 0) return event;
    let message: unknown;
    try {
      message = JSON.parse(data.join('\n'));
    } catch {
      return event;
    }
    const filtered = this.#filter(message);
    if (filtered === message) return event;
    const others = lines.filter((l) => !l.startsWith('data:'));
    return [...others, `data: ${JSON.stringify(filtered)}`].join('\n');
  }

  end(): Buffer | null {
    if (this.#mode === 'events') {
      const rest = this.#held.length === 0 ? '' : Buffer.concat(this.#held).toString('utf8');
      return this.#prefix(rest === '' ? null : Buffer.from(rest, 'utf8'));
    }
    let messages: unknown;
    // One error per list request instead of an answer that cannot be filtered; a single one as itself.
    const instead = (): unknown => {
      const errors = this.#tooLarge();
      return errors.length === 1 ? errors[0] : errors;
    };
    if (this.#overflow) messages = instead();
    else {
      const body = Buffer.concat(this.#held);
      try {
        messages = JSON.parse(body.toString('utf8'));
      } catch {
        // Not JSON: nothing can be filtered; a list answer must not pass unread.
        if (this.#lists.size > 0) messages = instead();
        else return body;
      }
    }
    const list = Array.isArray(messages) ? messages.map((m) => this.#filter(m)) : [this.#filter(messages)];
    const all = [...list, ...this.#inject];
    this.#inject = [];
    return Buffer.from(JSON.stringify(Array.isArray(messages) || all.length > 1 ? all : all[0]), 'utf8');
  }
}

/**
 * Where the last complete event of `bytes` ends (just after the blank line that ends it), or
 * -1. Lines end with CRLF, LF or CR; a CR that is the last byte may be half a CRLF, so what
 * follows it waits for the next chunk.
 */
function lastEventEnd(bytes: Buffer): number {
  let end = -1;
  let lineStart = 0;
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes[i]!;
    if (c !== 10 && c !== 13) continue;
    let next = i + 1;
    if (c === 13) {
      if (next === bytes.length) break;
      if (bytes[next] === 10) next++;
    }
    if (i === lineStart) end = next;
    lineStart = next;
    i = next - 1;
  }
  return end;
}

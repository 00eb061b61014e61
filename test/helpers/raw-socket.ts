/**
 * The raw-socket HTTP/1.1 client: it writes whatever it is given on a TCP connection
 * (request lines node:http will not produce, malformed framing, control characters,
 * obs-fold, pipelined requests) and parses what comes back leniently enough to see every
 * response the server sent on that connection, however many. `RawConnection` keeps one
 * connection open across requests (10k requests on a handful of sockets); `exchange` is
 * the one-shot form and `rawSocket` its single-answer shorthand.
 */
import { connect, type Socket } from 'node:net';
import { once } from 'node:events';

export interface ParsedResponse {
  status: number;
  /** Lower-case names; repeated headers joined with ", ". */
  headers: Record<string, string>;
  body: string;
}

export interface ExchangeResult {
  /** Every complete response the server wrote, in order. */
  responses: ParsedResponse[];
  /** The server closed (or reset) the connection. */
  closed: boolean;
  /** Everything the server wrote, as latin1 text. */
  text: string;
  /** Everything the server wrote. */
  data: Buffer;
}

function parseHead(head: string): { status: number; headers: Record<string, string> } {
  const lines = head.split('\r\n');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '')?.[1] ?? 0);
  const headers: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  return { status, headers };
}

/** Reads a chunked body from `cursor`; null if it is not complete yet. */
function chunkedBody(data: Buffer, cursor: number): { body: Buffer; end: number } | null {
  const parts: Buffer[] = [];
  for (;;) {
    const lineEnd = data.indexOf('\r\n', cursor, 'latin1');
    if (lineEnd === -1) return null;
    const size = parseInt(data.subarray(cursor, lineEnd).toString('latin1'), 16);
    if (Number.isNaN(size)) return null;
    if (size === 0) {
      const trailerEnd = data.indexOf('\r\n', lineEnd + 2, 'latin1');
      return trailerEnd === -1 ? null : { body: Buffer.concat(parts), end: trailerEnd + 2 };
    }
    if (data.length < lineEnd + 2 + size + 2) return null;
    parts.push(data.subarray(lineEnd + 2, lineEnd + 2 + size));
    cursor = lineEnd + 2 + size + 2;
  }
}

/**
 * Splits `data` into the complete responses it holds; returns them and the unconsumed rest.
 * `requestMethods[i]` is the method of the i-th request (HEAD responses have no body).
 */
export function parseResponses(data: Buffer, requestMethods: string[] = []): { responses: ParsedResponse[]; rest: Buffer } {
  const responses: ParsedResponse[] = [];
  let offset = 0;
  for (;;) {
    const end = data.indexOf('\r\n\r\n', offset, 'latin1');
    if (end === -1) break;
    const { status, headers } = parseHead(data.subarray(offset, end).toString('latin1'));
    let cursor = end + 4;
    let body: Buffer;
    const method = requestMethods[responses.length];
    if (method === 'HEAD' || status === 204 || status === 304 || (status >= 100 && status < 200)) {
      body = Buffer.alloc(0);
    } else if (headers['transfer-encoding']?.toLowerCase().includes('chunked')) {
      const chunked = chunkedBody(data, cursor);
      if (chunked === null) break;
      body = chunked.body;
      cursor = chunked.end;
    } else if (headers['content-length'] !== undefined) {
      const length = Number(headers['content-length']);
      if (data.length < cursor + length) break;
      body = data.subarray(cursor, cursor + length);
      cursor += length;
    } else {
      // Delimited by the close: only complete once the connection has ended (closeDelimited).
      break;
    }
    responses.push({ status, headers, body: body.toString('utf8') });
    offset = cursor;
  }
  return { responses, rest: data.subarray(offset) };
}

/** The response whose body runs to the close, once the connection has closed. */
function closeDelimited(rest: Buffer): ParsedResponse | null {
  const end = rest.indexOf('\r\n\r\n', 0, 'latin1');
  if (end === -1) return null;
  return { ...parseHead(rest.subarray(0, end).toString('latin1')), body: rest.subarray(end + 4).toString('utf8') };
}

export interface ConnectOptions {
  /** Source address (any 127.x.y.z works on Linux loopback), to look like another client. */
  localAddress?: string;
}

export async function openSocket(base: string, options: ConnectOptions = {}): Promise<Socket> {
  const url = new URL(base);
  const socket = connect({ port: Number(url.port), host: url.hostname, ...(options.localAddress ? { localAddress: options.localAddress } : {}) });
  socket.setNoDelay(true);
  // Servers under attack close connections; a write after that must not crash the test.
  socket.on('error', () => {});
  await once(socket, 'connect');
  return socket;
}

/**
 * Writes `payload` on a fresh connection and collects responses until `expect` responses
 * arrived, the server closed the connection, or `waitMs` passed with nothing new.
 */
export async function exchange(base: string, payload: string | Buffer | (string | Buffer)[], options: ConnectOptions & { expect?: number; waitMs?: number; methods?: string[] } = {}): Promise<ExchangeResult> {
  const socket = await openSocket(base, options);
  let data: Buffer = Buffer.alloc(0);
  let closed = false;
  const waitMs = options.waitMs ?? 1000;
  return new Promise((resolve) => {
    let timer: NodeJS.Timeout;
    const finish = () => {
      clearTimeout(timer);
      socket.removeAllListeners('data');
      socket.destroy();
      const { responses, rest } = parseResponses(data, options.methods);
      if (closed && rest.length) {
        const last = closeDelimited(rest);
        if (last) responses.push(last);
      }
      resolve({ responses, closed, text: data.toString('latin1'), data });
    };
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(finish, waitMs);
    };
    socket.on('data', (chunk: Buffer) => {
      data = Buffer.concat([data, chunk]);
      if (options.expect !== undefined && parseResponses(data, options.methods).responses.length >= options.expect) finish();
      else arm();
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      closed = true;
      finish();
    });
    arm();
    const parts = Array.isArray(payload) ? payload : [payload];
    for (const part of parts) socket.write(part);
  });
}

/**
 * One keep-alive connection for many requests, one at a time. When the server closes the
 * connection (it does after a 400 or a refused body) the next request opens a new one.
 */
export class RawConnection {
  readonly #base: string;
  readonly #options: ConnectOptions;
  #socket: Socket | null = null;
  #data: Buffer = Buffer.alloc(0);
  #closed = true;
  #waiter: (() => void) | null = null;
  /** Connections opened so far. */
  opened = 0;

  constructor(base: string, options: ConnectOptions = {}) {
    this.#base = base;
    this.#options = options;
  }

  async #ensure(): Promise<Socket> {
    if (this.#socket !== null && !this.#closed) return this.#socket;
    const socket = await openSocket(this.#base, this.#options);
    this.opened++;
    this.#socket = socket;
    this.#closed = false;
    this.#data = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      this.#data = this.#data.length ? Buffer.concat([this.#data, chunk]) : chunk;
      this.#waiter?.();
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      if (this.#socket === socket) this.#closed = true;
      this.#waiter?.();
    });
    return socket;
  }

  /**
   * Sends one request and resolves with its response, or with `null` when the server
   * closed the connection without answering (or `timeoutMs` passed).
   */
  async request(payload: string | Buffer, method = 'GET', timeoutMs = 5000): Promise<{ response: ParsedResponse | null; closed: boolean }> {
    const socket = await this.#ensure();
    socket.write(payload);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const { responses, rest } = parseResponses(this.#data, [method]);
      if (responses.length) {
        this.#data = rest;
        const response = responses[0]!;
        const closing = response.headers.connection?.toLowerCase() === 'close';
        if (closing) this.close();
        return { response, closed: closing || this.#closed };
      }
      if (this.#closed) {
        const last = closeDelimited(this.#data);
        this.#data = Buffer.alloc(0);
        return { response: last, closed: true };
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        this.close();
        return { response: null, closed: true };
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#waiter = null;
    }
  }

  close(): void {
    this.#socket?.destroy();
    this.#socket = null;
    this.#closed = true;
  }
}

/**
 * Resolves when `socket` closes, however it closes. `once(socket, 'close')` rejects on an
 * 'error' first, and a server that answers and closes while the client is still sending
 * resets the connection: the client then reads the answer and an ECONNRESET.
 */
export function socketClosed(socket: Socket): Promise<void> {
  socket.on('error', () => {});
  return new Promise((resolve) => socket.once('close', () => resolve()));
}

export interface RawSocketResponse {
  status: number;
  /** Everything the server wrote, as text. */
  text: string;
  head: string;
  body: string;
}

/**
 * Writes `payload` verbatim on a fresh TCP connection and reads until the server closes
 * it (send `Connection: close`) or 5 s pass without a byte: the first answer, split.
 */
export async function rawSocket(base: string, payload: string): Promise<RawSocketResponse> {
  const { data } = await exchange(base, payload, { waitMs: 5000 });
  const text = data.toString('utf8');
  const split = text.indexOf('\r\n\r\n');
  const head = split === -1 ? text : text.slice(0, split);
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
  return { status, text, head, body: split === -1 ? '' : text.slice(split + 4) };
}

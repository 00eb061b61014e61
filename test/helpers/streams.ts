/**
 * Long responses for the stream-revocation tests: upstream handlers that send an event
 * stream or a download until the client goes away, and a client that reads a response as
 * it comes and says how it ended.
 */
import { get as httpGet, type ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';

/**
 * Writes an event every 50 ms, each in two writes 20 ms apart (`id: N`, `data: first half
 * of N`, then `data: second half of N`), until `res` closes. The caller writes the head.
 */
export function writeEvents(res: ServerResponse): void {
  let n = 0;
  let timer: NodeJS.Timeout;
  // One chain of timers, not an interval beside timeouts: on a stalled event loop an interval
  // could fire before the previous event's second half and interleave two events.
  const first = () => {
    const id = ++n;
    res.write(`id: ${id}\ndata: first half of ${id}`);
    timer = setTimeout(() => {
      if (res.destroyed) return;
      res.write(`\ndata: second half of ${id}\n\n`);
      timer = setTimeout(first, 30);
    }, 20);
  };
  timer = setTimeout(first, 50);
  res.on('close', () => clearTimeout(timer));
}

/** Writes 16 KB every 20 ms until `res` closes. The caller writes the head. */
export function writeDownload(res: ServerResponse): void {
  const tick = setInterval(() => res.write(Buffer.alloc(16 * 1024, 0x61)), 20);
  res.on('close', () => clearInterval(tick));
}

export interface Ended {
  /** The response ended as HTTP says a complete one does (false: the connection was cut). */
  complete: boolean;
  at: number;
  text: string;
}

export interface Stream {
  status: number;
  /** Resolves once the body read so far contains this. */
  until(part: string): Promise<void>;
  ended: Promise<Ended>;
}

/** A GET whose body is read as it comes. */
export function openStream(base: string, path: string, headers: Record<string, string>, encoding: BufferEncoding = 'latin1'): Promise<Stream> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = httpGet({ host: url.hostname, port: url.port, path, headers, agent: false }, (res) => {
      let text = '';
      const waiting: { part: string; done: () => void }[] = [];
      res.setEncoding(encoding);
      res.on('data', (chunk: string) => {
        text += chunk;
        for (const w of waiting) if (text.includes(w.part)) w.done();
      });
      res.on('error', () => {});
      const ended = new Promise<Ended>((done) => res.on('close', () => done({ complete: res.complete, at: performance.now(), text })));
      resolve({
        status: res.statusCode ?? 0,
        until: (part) => (text.includes(part) ? Promise.resolve() : new Promise((done) => waiting.push({ part, done }))),
        ended,
      });
    });
    req.on('error', reject);
  });
}

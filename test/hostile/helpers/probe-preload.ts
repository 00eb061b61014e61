/**
 * Loaded into a keygate child process with `node --expose-gc --import <this file>` (see
 * child.ts), before keygate itself:
 *
 *  - on SIGUSR2 it collects garbage (twice, so finalizers have run) and writes one line
 *    `KEYGATE_PROBE {…}` to stderr: heap used, RSS, external and array-buffer memory, open
 *    file descriptors and the active handles by type (TCPSocketWrap, Timeout, …) — what a
 *    leak test compares before and after;
 *  - if HOSTILE_TAP is set, it copies every byte written on every HTTP server socket of the
 *    process (the proxy and admin listeners) into that file, for the secret scan (runs of
 *    filler shortened, collapse.ts).
 */
import { closeSync, openSync, readdirSync, writeSync } from 'node:fs';
import { Server } from 'node:http';
import type { Socket } from 'node:net';
import { RunCollapser } from './collapse.ts';

const gc = (globalThis as { gc?: () => void }).gc;

process.on('SIGUSR2', () => {
  gc?.();
  gc?.();
  const memory = process.memoryUsage();
  const resources: Record<string, number> = {};
  for (const type of process.getActiveResourcesInfo()) resources[type] = (resources[type] ?? 0) + 1;
  const line = { heapUsed: memory.heapUsed, rss: memory.rss, external: memory.external, arrayBuffers: memory.arrayBuffers, fds: readdirSync('/proc/self/fd').length, resources, gc: gc !== undefined };
  process.stderr.write(`KEYGATE_PROBE ${JSON.stringify(line)}\n`);
});

const tapFile = process.env.HOSTILE_TAP;
if (tapFile) {
  const fd = openSync(tapFile, 'a');
  process.once('exit', () => closeSync(fd));
  type Chunk = { chunk: Buffer | string; encoding: BufferEncoding };
  type Tapped = Socket & { _write(c: Buffer | string, e: BufferEncoding, cb: () => void): void; _writev?(c: Chunk[], cb: () => void): void };
  const runs = new RunCollapser();
  const write = (chunk: Buffer | string, encoding: BufferEncoding) => writeSync(fd, runs.collapse(typeof chunk === 'string' ? Buffer.from(chunk, encoding) : chunk));
  const emit = Server.prototype.emit;
  Server.prototype.emit = function (this: Server, event: string | symbol, ...args: unknown[]) {
    if (event === 'connection') {
      const socket = args[0] as Tapped;
      const original = socket._write;
      socket._write = function (chunk, encoding, cb) {
        write(chunk, encoding);
        return original.call(this, chunk, encoding, cb);
      };
      const originalv = socket._writev;
      if (originalv) {
        socket._writev = function (chunks, cb) {
          for (const { chunk, encoding } of chunks) write(chunk, encoding);
          return originalv.call(this, chunks, cb);
        };
      }
    }
    return (emit as (this: Server, event: string | symbol, ...args: unknown[]) => boolean).call(this, event, ...args);
  } as typeof emit;
}

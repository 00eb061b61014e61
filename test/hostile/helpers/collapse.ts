/**
 * Shortens runs of one repeated byte to RUN bytes before a capture is written: a run of
 * identical bytes cannot hold a key, a hash or a secret beyond its first RUN bytes (the
 * shortest thing the scan looks for is longer than any run in it), and bodies of filler
 * — megabytes of them in the abort and streaming tests — would otherwise make the capture
 * hundreds of megabytes.
 */
export const RUN = 32;

export class RunCollapser {
  #last = -1;
  #run = 0;

  /** The bytes of `chunk` that are kept (a new buffer only when something is dropped). */
  collapse(chunk: Buffer): Buffer {
    let out: Buffer | null = null;
    let kept = 0;
    for (let i = 0; i < chunk.length; i++) {
      const byte = chunk[i]!;
      if (byte === this.#last) this.#run++;
      else {
        this.#last = byte;
        this.#run = 1;
      }
      if (this.#run > RUN) {
        if (out === null) {
          out = Buffer.allocUnsafe(chunk.length);
          chunk.copy(out, 0, 0, i);
          kept = i;
        }
        continue;
      }
      if (out !== null) out[kept] = byte;
      kept++;
    }
    return out === null ? chunk : out.subarray(0, kept);
  }
}

/**
 * Just enough of RFC 6455 framing for keygate to end a proxied WebSocket politely. keygate
 * pipes WebSocket bytes without parsing them, but when it closes a connection itself (the
 * key was revoked or expired, or shutdown) it wants to send the client a Close frame with a
 * code and a reason, so a client knows not to reconnect with the same key. A Close frame may
 * only be written between two frames of the upstream's stream, so `FrameBoundary` watches
 * the upstream → client bytes (frame headers only, nothing is copied or buffered) and says
 * whether the bytes relayed so far end on a frame boundary.
 */

/** Close codes keygate sends (RFC 6455 §7.4.1). */
export const CLOSE_GOING_AWAY = 1001;
export const CLOSE_POLICY_VIOLATION = 1008;
export const CLOSE_TRY_AGAIN_LATER = 1013;

export class FrameBoundary {
  /** Bytes of the current frame's header seen so far (0: at a boundary, expecting a header). */
  #headerBytes = 0;
  /** The header bytes themselves, only while a header straddles two chunks. */
  readonly #header = Buffer.alloc(14);
  #headerLength = 2;
  /** Payload bytes still to come in the current frame. */
  #remaining = 0;

  /** True when the bytes observed so far end exactly where a frame ends. */
  get atBoundary(): boolean {
    return this.#headerBytes === 0 && this.#remaining === 0;
  }

  observe(chunk: Buffer): void {
    let i = 0;
    while (i < chunk.length) {
      if (this.#remaining > 0) {
        const take = Math.min(this.#remaining, chunk.length - i);
        this.#remaining -= take;
        i += take;
        continue;
      }
      this.#header[this.#headerBytes++] = chunk[i++]!;
      if (this.#headerBytes === 2) {
        const len7 = this.#header[1]! & 0x7f;
        const masked = (this.#header[1]! & 0x80) !== 0;
        this.#headerLength = 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + (masked ? 4 : 0);
      }
      if (this.#headerBytes >= 2 && this.#headerBytes === this.#headerLength) {
        this.#remaining = this.#payloadLength();
        this.#headerBytes = 0;
      }
    }
  }

  #payloadLength(): number {
    const len7 = this.#header[1]! & 0x7f;
    if (len7 < 126) return len7;
    if (len7 === 126) return this.#header.readUInt16BE(2);
    // 2^53 is far beyond any frame a peer will send; Number keeps the arithmetic simple.
    return Number(this.#header.readBigUInt64BE(2));
  }
}

/** An unmasked Close frame (server → client), the reason cut to fit a control frame. */
export function closeFrame(code: number, reason: string): Buffer {
  let text = Buffer.from(reason, 'utf8');
  if (text.length > 123) text = text.subarray(0, 123);
  const frame = Buffer.alloc(4 + text.length);
  frame[0] = 0x88; // FIN + opcode 8 (Close)
  frame[1] = 2 + text.length;
  frame.writeUInt16BE(code, 2);
  text.copy(frame, 4);
  return frame;
}

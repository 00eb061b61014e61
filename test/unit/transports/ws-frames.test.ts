/**
 * FrameBoundary against frames built by the `ws` package's own Sender (7-bit, 16-bit and
 * 64-bit lengths, masked and not), fed whole, byte by byte and in odd slices; and keygate's
 * Close frame read back by `ws`'s Receiver.
 */
import { describe, expect, it } from 'vitest';
import * as ws from 'ws';

// ws exports its framing classes at run time; @types/ws does not declare them.
const { Sender, Receiver } = ws as unknown as {
  Sender: { frame(data: Buffer, options: { fin: boolean; opcode: number; mask: boolean; readOnly: boolean }): Buffer[] };
  Receiver: new (options: { isServer: boolean }) => NodeJS.WritableStream & { on(event: 'conclude', listener: (code: number, reason: Buffer) => void): void };
};
import { closeFrame, FrameBoundary } from '../../../src/transports/ws-frames.ts';


function build(size: number, mask = false, opcode = 2): Buffer {
  return Buffer.concat(Sender.frame(Buffer.alloc(size, 7), { fin: true, opcode, mask, readOnly: false }));
}

describe('FrameBoundary', () => {
  const sizes = [0, 1, 125, 126, 127, 65_535, 65_536, 200_000];

  it('is at a boundary after each whole frame and inside one otherwise', () => {
    for (const mask of [false, true]) {
      for (const size of sizes) {
        const bytes = build(size, mask);
        const boundary = new FrameBoundary();
        expect(boundary.atBoundary).toBe(true);
        boundary.observe(bytes.subarray(0, bytes.length - 1));
        expect(boundary.atBoundary).toBe(false);
        boundary.observe(bytes.subarray(bytes.length - 1));
        expect(boundary.atBoundary).toBe(true);
      }
    }
  });

  it('follows a stream of frames cut at every possible place', () => {
    const frames = [build(3), build(130, true), build(0, false, 9), build(70_000), build(1)];
    const stream = Buffer.concat(frames);
    const ends = new Set<number>();
    let offset = 0;
    for (const f of frames) ends.add((offset += f.length));
    for (const step of [1, 2, 3, 7, 1000, 4096]) {
      const boundary = new FrameBoundary();
      for (let i = 0; i < stream.length; i += step) {
        const end = Math.min(i + step, stream.length);
        boundary.observe(stream.subarray(i, end));
        // Only where a frame really ends may a Close frame be written.
        const expected = ends.has(end);
        if (boundary.atBoundary !== expected) throw new Error(`step ${step}: at ${end} expected atBoundary ${expected}`);
      }
      expect(boundary.atBoundary).toBe(true);
    }
  });
});

describe('closeFrame', () => {
  it('is a Close frame with the code and reason, as ws reads it', async () => {
    const receiver = new Receiver({ isServer: false });
    const concluded = new Promise<[number, string]>((resolve) => receiver.on('conclude', (code: number, reason: Buffer) => resolve([code, reason.toString('utf8')])));
    receiver.write(closeFrame(1008, 'the API key has been revoked'));
    expect(await concluded).toEqual([1008, 'the API key has been revoked']);
  });

  it('cuts a long reason to fit a control frame (125 bytes of payload)', () => {
    const bytes = closeFrame(1001, 'x'.repeat(300));
    expect(bytes[1]).toBe(125);
    expect(bytes.length).toBe(127);
  });
});

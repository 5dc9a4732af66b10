/**
 * Framing on the agent socket: 4-byte big-endian length, then one protobuf
 * message. Frames over MAX_FRAME are refused (a confused peer must not make
 * the agent allocate gigabytes).
 */
import { invalidArgument } from '../util/errors.js';

export const MAX_FRAME = 64 * 1024 * 1024;

export function frame(body: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(4 + body.length);
  out.writeUInt32BE(body.length, 0);
  out.set(body, 4);
  return out;
}

/** Accumulates chunks and yields whole frames. */
export class FrameReader {
  private buf: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Buffer[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const frames: Buffer[] = [];
    for (;;) {
      if (this.buf.length < 4) break;
      const len = this.buf.readUInt32BE(0);
      if (len > MAX_FRAME) throw invalidArgument(`frame of ${len} bytes exceeds the ${MAX_FRAME}-byte limit`);
      if (this.buf.length < 4 + len) break;
      frames.push(this.buf.subarray(4, 4 + len));
      this.buf = this.buf.subarray(4 + len);
    }
    return frames;
  }
}

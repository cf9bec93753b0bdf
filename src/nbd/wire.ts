/**
 * Reading exact-length messages from an {@link NbdSocket} with a bound on what is buffered, and
 * building big-endian messages.
 * @module
 */
import type { NbdSocket } from "./socket.js";

/** The peer closed the connection (possibly in the middle of a message). */
export class NbdEndOfStream extends Error {
  constructor(readonly midMessage: boolean) {
    super(midMessage ? "connection closed in the middle of a message" : "connection closed");
    this.name = "NbdEndOfStream";
  }
}

/** The peer broke the protocol: the connection cannot continue. */
export class NbdProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "NbdProtocolError";
  }
}

/** Pulls bytes from a socket in exact amounts, keeping at most one read's surplus. */
export class WireReader {
  private pending: Uint8Array = new Uint8Array(0);
  private pendingPos = 0;

  constructor(private readonly socket: NbdSocket, private readonly chunkLimit = 1 << 20) {}

  /**
   * Reads exactly `length` bytes. Resolves with a fresh buffer; throws {@link NbdEndOfStream}
   * when the peer closes first. `length` must already be bounded by the caller.
   */
  async readExact(length: number): Promise<Uint8Array> {
    const out = new Uint8Array(length);
    await this.readInto(out);
    return out;
  }

  /** Fills `into` completely (see {@link readExact}). */
  async readInto(into: Uint8Array): Promise<void> {
    let pos = 0;
    while (pos < into.length) {
      if (this.pendingPos >= this.pending.length) {
        const chunk = await this.socket.read(Math.min(this.chunkLimit, Math.max(into.length - pos, 4096)));
        if (chunk === null) throw new NbdEndOfStream(pos > 0);
        this.pending = chunk;
        this.pendingPos = 0;
      }
      const n = Math.min(into.length - pos, this.pending.length - this.pendingPos);
      into.set(this.pending.subarray(this.pendingPos, this.pendingPos + n), pos);
      this.pendingPos += n;
      pos += n;
    }
  }

  /** Reads and throws away `length` bytes, a chunk at a time. */
  async skip(length: number): Promise<void> {
    const scratch = new Uint8Array(Math.min(length, 1 << 16));
    while (length > 0) {
      const n = Math.min(length, scratch.length);
      await this.readInto(scratch.subarray(0, n));
      length -= n;
    }
  }
}

/** A big-endian message builder over a fixed-size buffer. */
export class WireWriter {
  readonly bytes: Uint8Array;
  private readonly view: DataView;
  private pos = 0;

  constructor(length: number) {
    this.bytes = new Uint8Array(length);
    this.view = new DataView(this.bytes.buffer);
  }

  u16(v: number): this {
    this.view.setUint16(this.pos, v);
    this.pos += 2;
    return this;
  }

  u32(v: number): this {
    this.view.setUint32(this.pos, v >>> 0);
    this.pos += 4;
    return this;
  }

  /** A u64 from a safe integer. */
  u64(v: number): this {
    this.view.setUint32(this.pos, Math.floor(v / 0x100000000));
    this.view.setUint32(this.pos + 4, v >>> 0);
    this.pos += 8;
    return this;
  }

  /** A u64 given as its two 32-bit halves (magics, cookies). */
  u64Halves(halves: readonly [number, number]): this {
    return this.u32(halves[0]).u32(halves[1]);
  }

  raw(data: Uint8Array): this {
    this.bytes.set(data, this.pos);
    this.pos += data.length;
    return this;
  }
}

/** Reads a big-endian u64 at `offset` of `view`; `undefined` when it exceeds 2^53. */
export function readU64(view: DataView, offset: number): number | undefined {
  const hi = view.getUint32(offset);
  const lo = view.getUint32(offset + 4);
  if (hi > 0x1fffff) return undefined;
  return hi * 0x100000000 + lo;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** UTF-8 bytes of `text`. */
export function utf8(text: string): Uint8Array {
  return encoder.encode(text);
}

/** `bytes` as UTF-8 text; throws {@link NbdProtocolError} when they are not valid UTF-8. */
export function fromUtf8(bytes: Uint8Array): string {
  try {
    return decoder.decode(bytes);
  } catch {
    throw new NbdProtocolError("a string is not valid UTF-8");
  }
}

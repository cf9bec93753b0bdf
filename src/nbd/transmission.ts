/**
 * The server's transmission phase (proto.md "Transmission", "Request types"): reads requests,
 * runs them on the export's device with bounded concurrency, and sends simple or structured
 * replies. Requests may complete out of order, as the protocol allows; each reply is sent whole.
 * @module
 */
import type { Extent } from "../core/block-device.js";
import { ImageError } from "../errors.js";
import * as C from "./constants.js";
import type { Negotiated } from "./handshake.js";
import type { NbdSocket } from "./socket.js";
import { NbdProtocolError, WireReader, WireWriter, readU64, utf8 } from "./wire.js";

/** Requests of one connection being served at once. */
const MAX_IN_FLIGHT = 16;
/** Payload bytes (read buffers and write data) one connection may hold at once. */
const MAX_IN_FLIGHT_BYTES = 64 << 20;
/** Extents described in one block-status reply. */
const MAX_STATUS_DESCRIPTORS = 1 << 16;

/** A request as received. */
interface Request {
  readonly flags: number;
  readonly type: number;
  readonly cookie: Uint8Array;
  readonly offset: number | undefined;
  readonly length: number;
}

/** A request refused with an NBD error number. */
class RequestError extends Error {
  constructor(readonly errno: number, message: string) {
    super(message);
  }
}

/** Translates a device error into an NBD error number. */
function errnoOf(e: unknown): number {
  if (e instanceof RequestError) return e.errno;
  if (e instanceof RangeError) return C.NBD_EINVAL;
  if (e instanceof ImageError) {
    if (e.code === "ERR_READ_ONLY") return C.NBD_EPERM;
    if (e.code === "ERR_IMAGE_FULL") return C.NBD_ENOSPC;
    if (e.code === "ERR_UNSUPPORTED_FEATURE") return C.NBD_ENOTSUP;
  }
  return C.NBD_EIO;
}

/** Serves requests until the client disconnects (or sends `NBD_CMD_DISC`). */
export class Transmission {
  private inFlight = 0;
  private inFlightBytes = 0;
  private readonly waiters: Array<() => void> = [];
  private readonly device;

  constructor(
    private readonly socket: NbdSocket,
    private readonly reader: WireReader,
    private readonly agreed: Negotiated,
    private readonly log: (message: string) => void,
  ) {
    this.device = agreed.export.device;
  }

  /** Runs the request loop; resolves on a clean end, throws on a protocol violation. */
  async run(): Promise<void> {
    try {
      for (;;) {
        const header = await this.reader.readExact(28);
        const view = new DataView(header.buffer);
        if (view.getUint32(0) !== C.NBD_REQUEST_MAGIC) throw new NbdProtocolError("bad request magic");
        const req: Request = {
          flags: view.getUint16(4),
          type: view.getUint16(6),
          cookie: header.subarray(8, 16),
          offset: readU64(view, 16),
          length: view.getUint32(24),
        };
        if (req.type === C.NBD_CMD_DISC) return;
        if (req.type === C.NBD_CMD_WRITE && req.length > C.NBD_MAX_PAYLOAD) {
          throw new NbdProtocolError(`write of ${req.length} bytes, more than ${C.NBD_MAX_PAYLOAD}`);
        }
        // Bytes this request holds while it runs: its payload or its read buffer.
        const held = req.type === C.NBD_CMD_WRITE || (req.type === C.NBD_CMD_READ && req.length <= C.NBD_MAX_PAYLOAD)
          ? req.length
          : 0;
        await this.reserve(held);
        let payload: Uint8Array | undefined;
        if (req.type === C.NBD_CMD_WRITE) {
          try {
            payload = await this.reader.readExact(req.length);
          } catch (e) {
            this.release(held);
            throw e;
          }
        }
        void this.serve(req, payload).finally(() => this.release(held));
      }
    } finally {
      await this.drain();
    }
  }

  private async reserve(bytes: number): Promise<void> {
    while (this.inFlight >= MAX_IN_FLIGHT || (this.inFlight > 0 && this.inFlightBytes + bytes > MAX_IN_FLIGHT_BYTES)) {
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
    this.inFlight++;
    this.inFlightBytes += bytes;
  }

  private release(bytes: number): void {
    this.inFlight--;
    this.inFlightBytes -= bytes;
    this.waiters.shift()?.();
  }

  /** Waits until every request started has replied. */
  private async drain(): Promise<void> {
    while (this.inFlight > 0) await new Promise<void>((resolve) => this.waiters.push(resolve));
    // Wake anyone else waiting so that they see the drained state too.
    for (const w of this.waiters.splice(0)) w();
  }

  private async serve(req: Request, payload: Uint8Array | undefined): Promise<void> {
    try {
      if (req.type === C.NBD_CMD_READ) return await this.read(req);
      if (req.type === C.NBD_CMD_BLOCK_STATUS) return await this.blockStatus(req);
      await this.command(req, payload);
      await this.simpleReply(req, 0);
    } catch (e) {
      const errno = errnoOf(e);
      if (errno === C.NBD_EIO) this.log(`request ${req.type} at ${req.offset}+${req.length} failed: ${messageOf(e)}`);
      await this.errorReply(req, errno, messageOf(e)).catch(() => {});
    }
  }

  /** Validates the range of a request that has one. */
  private range(req: Request, allowEmpty = false): number {
    const offset = req.offset;
    if (offset === undefined || offset + req.length > this.device.size) {
      throw new RequestError(C.NBD_EINVAL, `range ${offset ?? "2^53+"}+${req.length} ends past the export size ${this.device.size}`);
    }
    if (req.length === 0 && !allowEmpty) throw new RequestError(C.NBD_EINVAL, "zero-length request");
    return offset;
  }

  private writable(what: string): void {
    if (!this.agreed.export.writable) throw new RequestError(C.NBD_EPERM, `${what}: the export is read-only`);
  }

  private async command(req: Request, payload: Uint8Array | undefined): Promise<void> {
    const fua = (req.flags & C.NBD_CMD_FLAG_FUA) !== 0;
    switch (req.type) {
      case C.NBD_CMD_WRITE: {
        this.writable("write");
        const offset = this.range(req);
        await this.device.write(offset, payload!);
        break;
      }
      case C.NBD_CMD_FLUSH:
        await this.device.flush();
        return;
      case C.NBD_CMD_TRIM: {
        this.writable("trim");
        const offset = this.range(req);
        if (!(this.agreed.export.transmissionFlags & C.NBD_FLAG_SEND_TRIM)) {
          throw new RequestError(C.NBD_EINVAL, "trim was not advertised");
        }
        await this.device.discard(offset, req.length);
        break;
      }
      case C.NBD_CMD_WRITE_ZEROES: {
        this.writable("write zeroes");
        const offset = this.range(req);
        if (req.flags & C.NBD_CMD_FLAG_FAST_ZERO) throw new RequestError(C.NBD_EINVAL, "fast zero was not advertised");
        await this.device.writeZeroes(offset, req.length, { unmap: (req.flags & C.NBD_CMD_FLAG_NO_HOLE) === 0 });
        break;
      }
      case C.NBD_CMD_CACHE:
        // The data is read on demand from a local file: there is nothing to prefetch.
        this.range(req, true);
        return;
      default:
        throw new RequestError(C.NBD_EINVAL, `unknown command ${req.type}`);
    }
    if (fua || this.agreed.export.writeThrough) await this.device.flush();
  }

  private async read(req: Request): Promise<void> {
    if (req.length > C.NBD_MAX_PAYLOAD) {
      throw new RequestError(C.NBD_EOVERFLOW, `read of ${req.length} bytes, more than ${C.NBD_MAX_PAYLOAD}`);
    }
    const offset = this.range(req);
    if (!this.agreed.structuredReplies) {
      const data = new Uint8Array(req.length);
      await this.device.readInto(offset, data);
      const h = new WireWriter(16).u32(C.NBD_SIMPLE_REPLY_MAGIC).u32(0).raw(req.cookie).bytes;
      this.socket.write(h).catch(() => {}); // a failure shows on the data write too
      await this.socket.write(data);
      return;
    }
    // Structured: zero runs go out as holes, the rest as data chunks of one buffer.
    const runs: Array<{ start: number; end: number; zero: boolean }> = [];
    for (let pos = offset; pos < offset + req.length;) {
      const e = await this.device.blockStatus(pos, offset + req.length - pos);
      const zero = e.zero;
      const last = runs[runs.length - 1];
      if (last && last.zero === zero) last.end = pos + e.length;
      else runs.push({ start: pos, end: pos + e.length, zero });
      pos += e.length;
    }
    // One read of the whole range (the engine zero-fills holes cheaply) unless it is all holes.
    const data = new Uint8Array(runs.some((r) => !r.zero) ? req.length : 0);
    if (data.length > 0) await this.device.readInto(offset, data);
    for (let i = 0; i < runs.length; i++) {
      const r = runs[i];
      const flags = i === runs.length - 1 ? C.NBD_REPLY_FLAG_DONE : 0;
      if (r.zero) {
        await this.chunk(req, flags, C.NBD_REPLY_TYPE_OFFSET_HOLE, new WireWriter(12).u64(r.start).u32(r.end - r.start).bytes);
      } else {
        await this.chunk(req, flags, C.NBD_REPLY_TYPE_OFFSET_DATA, new WireWriter(8).u64(r.start).bytes,
          data.subarray(r.start - offset, r.end - offset));
      }
    }
  }

  private async blockStatus(req: Request): Promise<void> {
    const contexts = this.agreed.contexts;
    if (!this.agreed.structuredReplies || contexts.length === 0) {
      throw new RequestError(C.NBD_EINVAL, "block status needs a metadata context selected");
    }
    const offset = this.range(req);
    const one = (req.flags & C.NBD_CMD_FLAG_REQ_ONE) !== 0;
    const limit = one ? 1 : MAX_STATUS_DESCRIPTORS;
    const extents: Extent[] = [];
    for await (const e of this.device.extents(offset, req.length)) {
      extents.push(e);
      if (extents.length >= limit) break;
    }
    for (let i = 0; i < contexts.length; i++) {
      const c = contexts[i];
      const value = c.name === C.BASE_ALLOCATION
        ? (e: Extent) => (e.data ? 0 : C.NBD_STATE_HOLE) | (e.zero ? C.NBD_STATE_ZERO : 0)
        : (e: Extent) => (e.present ? e.depth + 1 : 0);
      const descriptors: Array<[number, number]> = [];
      for (const e of extents) {
        const v = value(e);
        const last = descriptors[descriptors.length - 1];
        if (last && last[1] === v) last[0] += e.length;
        else descriptors.push([e.length, v]);
      }
      // Descriptor lengths are 32-bit: split longer runs.
      const out: Array<[number, number]> = [];
      for (const [len, v] of descriptors) {
        for (let rest = len; rest > 0;) {
          const n = Math.min(rest, 0x80000000);
          out.push([n, v]);
          rest -= n;
          if (one) break;
        }
        if (one) break;
      }
      const w = new WireWriter(4 + 8 * out.length).u32(c.id);
      for (const [len, v] of out) w.u32(len).u32(v);
      await this.chunk(req, i === contexts.length - 1 ? C.NBD_REPLY_FLAG_DONE : 0, C.NBD_REPLY_TYPE_BLOCK_STATUS, w.bytes);
    }
  }

  private chunk(req: Request, flags: number, type: number, head: Uint8Array, data?: Uint8Array): Promise<void> {
    const length = head.length + (data?.length ?? 0);
    const h = new WireWriter(20 + head.length).u32(C.NBD_STRUCTURED_REPLY_MAGIC).u16(flags).u16(type)
      .raw(req.cookie).u32(length).raw(head).bytes;
    // Both writes are queued before any await, so no other reply can come between them.
    const first = this.socket.write(h);
    if (!data) return first;
    first.catch(() => {}); // a failure shows on the data write too
    return this.socket.write(data);
  }

  private simpleReply(req: Request, errno: number): Promise<void> {
    return this.socket.write(new WireWriter(16).u32(C.NBD_SIMPLE_REPLY_MAGIC).u32(errno).raw(req.cookie).bytes);
  }

  private errorReply(req: Request, errno: number, message: string): Promise<void> {
    const structured = this.agreed.structuredReplies &&
      (req.type === C.NBD_CMD_READ || req.type === C.NBD_CMD_BLOCK_STATUS);
    if (!structured) return this.simpleReply(req, errno);
    const msg = utf8(message.slice(0, 200));
    const body = new WireWriter(6 + msg.length).u32(errno).u16(msg.length).raw(msg).bytes;
    return this.chunk(req, C.NBD_REPLY_FLAG_DONE, C.NBD_REPLY_TYPE_ERROR, body);
  }
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * An NBD client: fixed newstyle negotiation with `NBD_OPT_GO` (falling back to
 * `NBD_OPT_EXPORT_NAME`), then requests with simple replies, several in flight, matched by
 * cookie. Used by {@link NbdBackend}.
 * @module
 */
import { ImageError } from "../errors.js";
import * as C from "./constants.js";
import type { NbdSocket } from "./socket.js";
import { NbdEndOfStream, NbdProtocolError, WireReader, WireWriter, fromUtf8, readU64, utf8 } from "./wire.js";
import { MAX_OPTION_LENGTH } from "./handshake.js";

/** What the server told us about the export. */
export interface NbdExportInfo {
  readonly size: number;
  readonly transmissionFlags: number;
  readonly minimumBlockSize: number;
  readonly preferredBlockSize: number;
  readonly maximumPayload: number;
}

interface Pending {
  readonly type: number;
  readonly into?: Uint8Array;
  resolve(): void;
  reject(e: unknown): void;
}

function nbdError(what: string, errno: number): ImageError {
  const names: Record<number, string> = {
    [C.NBD_EPERM]: "EPERM", [C.NBD_EIO]: "EIO", [C.NBD_ENOMEM]: "ENOMEM", [C.NBD_EINVAL]: "EINVAL",
    [C.NBD_ENOSPC]: "ENOSPC", [C.NBD_EOVERFLOW]: "EOVERFLOW", [C.NBD_ENOTSUP]: "ENOTSUP", [C.NBD_ESHUTDOWN]: "ESHUTDOWN",
  };
  const code = errno === C.NBD_EPERM ? "ERR_READ_ONLY" : errno === C.NBD_ENOSPC ? "ERR_IMAGE_FULL" : "ERR_IO";
  return new ImageError(code, `NBD ${what} failed: ${names[errno] ?? `error ${errno}`}`);
}

/** One connection to one export. Requests may be issued concurrently. */
export class NbdClient {
  private readonly pending = new Map<number, Pending>();
  /** Requests not yet answered, so that close() can wait for them. */
  private readonly inFlight = new Set<Promise<void>>();
  private nextCookie = 1;
  private failure: Error | undefined;
  private readonly replyLoop: Promise<void>;

  private constructor(
    private readonly socket: NbdSocket,
    private readonly reader: WireReader,
    readonly info: NbdExportInfo,
  ) {
    this.replyLoop = this.readReplies();
  }

  /** Negotiates `exportName` on a fresh connection. Throws an `ImageError` when the server refuses. */
  static async connect(socket: NbdSocket, exportName: string): Promise<NbdClient> {
    const reader = new WireReader(socket);
    try {
      const info = await handshake(socket, reader, exportName);
      return new NbdClient(socket, reader, info);
    } catch (e) {
      socket.close();
      if (e instanceof ImageError) throw e;
      const why = e instanceof Error ? e.message : String(e);
      throw new ImageError("ERR_IO", `NBD handshake with ${socket.peer} failed: ${why}`, { cause: e });
    }
  }

  get readOnly(): boolean {
    return (this.info.transmissionFlags & C.NBD_FLAG_READ_ONLY) !== 0;
  }

  /** Reads `into.length` bytes at `offset` (one request; the caller keeps it within the limits). */
  read(offset: number, into: Uint8Array): Promise<void> {
    return this.request(C.NBD_CMD_READ, 0, offset, into.length, undefined, into);
  }

  write(offset: number, data: Uint8Array, fua = false): Promise<void> {
    return this.request(C.NBD_CMD_WRITE, fua ? C.NBD_CMD_FLAG_FUA : 0, offset, data.length, data);
  }

  flush(): Promise<void> {
    if (!(this.info.transmissionFlags & C.NBD_FLAG_SEND_FLUSH)) return Promise.resolve();
    return this.request(C.NBD_CMD_FLUSH, 0, 0, 0);
  }

  writeZeroes(offset: number, length: number, noHole: boolean): Promise<void> {
    return this.request(C.NBD_CMD_WRITE_ZEROES, noHole ? C.NBD_CMD_FLAG_NO_HOLE : 0, offset, length);
  }

  trim(offset: number, length: number): Promise<void> {
    return this.request(C.NBD_CMD_TRIM, 0, offset, length);
  }

  /** Sends `NBD_CMD_DISC` once every request has been answered, and closes the connection. */
  async close(): Promise<void> {
    if (!this.failure) {
      await Promise.allSettled([...this.inFlight]);
      this.failure = new ImageError("ERR_CLOSED", "the NBD connection is closed");
      await this.socket.write(new WireWriter(28).u32(C.NBD_REQUEST_MAGIC).u16(0).u16(C.NBD_CMD_DISC).u64(0).u64(0).u32(0).bytes)
        .catch(() => {});
    }
    this.socket.close();
    await this.replyLoop;
  }

  private request(type: number, flags: number, offset: number, length: number, data?: Uint8Array, into?: Uint8Array): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    const cookie = this.nextCookie;
    this.nextCookie = (this.nextCookie % 0xffffffff) + 1;
    const names = ["read", "write", "disconnect", "flush", "trim", "cache", "write zeroes"];
    const done = new Promise<void>((resolve, reject) => {
      this.pending.set(cookie, {
        type,
        into,
        resolve,
        reject: (e) => reject(typeof e === "number" ? nbdError(names[type] ?? `command ${type}`, e) : e),
      });
      const header = new WireWriter(28).u32(C.NBD_REQUEST_MAGIC).u16(flags).u16(type).u32(0).u32(cookie)
        .u64(offset).u32(length).bytes;
      const sent = this.socket.write(header);
      const last = data ? (sent.catch(() => {}), this.socket.write(data)) : sent;
      last.catch((e) => this.fail(e));
    });
    this.inFlight.add(done);
    const forget = (): void => void this.inFlight.delete(done);
    done.then(forget, forget);
    return done;
  }

  private fail(e: unknown): void {
    const why = e instanceof Error ? e.message : String(e);
    this.failure ??= new ImageError("ERR_IO", `NBD connection to ${this.socket.peer} lost: ${why}`, { cause: e });
    for (const p of this.pending.values()) p.reject(this.failure);
    this.pending.clear();
    this.socket.close();
  }

  private async readReplies(): Promise<void> {
    try {
      for (;;) {
        const h = await this.reader.readExact(16);
        const view = new DataView(h.buffer);
        if (view.getUint32(0) !== C.NBD_SIMPLE_REPLY_MAGIC) throw new NbdProtocolError("bad reply magic");
        const errno = view.getUint32(4);
        const cookie = view.getUint32(12);
        const p = this.pending.get(cookie);
        if (!p || view.getUint32(8) !== 0) throw new NbdProtocolError(`reply to unknown cookie ${cookie}`);
        this.pending.delete(cookie);
        if (errno !== 0) {
          p.reject(errno);
          continue;
        }
        if (p.type === C.NBD_CMD_READ && p.into) await this.reader.readInto(p.into);
        p.resolve();
      }
    } catch (e) {
      if (e instanceof NbdEndOfStream && !e.midMessage && this.pending.size === 0 && this.failure) return;
      this.fail(e);
    }
  }
}

/** An option request: IHAVEOPT, the option, the data length, the data. */
function optionRequest(option: number, data: Uint8Array): Uint8Array {
  return new WireWriter(16 + data.length).u64Halves(C.NBD_OPTS_MAGIC).u32(option).u32(data.length).raw(data).bytes;
}

async function handshake(socket: NbdSocket, reader: WireReader, exportName: string): Promise<NbdExportInfo> {
  const greeting = new DataView((await reader.readExact(18)).buffer);
  if (greeting.getUint32(0) !== C.NBD_MAGIC[0] || greeting.getUint32(4) !== C.NBD_MAGIC[1]) {
    throw new NbdProtocolError("not an NBD server (bad magic)");
  }
  if (greeting.getUint32(8) !== C.NBD_OPTS_MAGIC[0] || greeting.getUint32(12) !== C.NBD_OPTS_MAGIC[1]) {
    throw new NbdProtocolError("the server does not speak newstyle negotiation");
  }
  const serverFlags = greeting.getUint16(16);
  if (!(serverFlags & C.NBD_FLAG_FIXED_NEWSTYLE)) throw new NbdProtocolError("the server does not speak fixed newstyle");
  const noZeroes = (serverFlags & C.NBD_FLAG_NO_ZEROES) !== 0;
  await socket.write(new WireWriter(4).u32(C.NBD_FLAG_C_FIXED_NEWSTYLE | (noZeroes ? C.NBD_FLAG_C_NO_ZEROES : 0)).bytes);

  const name = utf8(exportName);
  const goData = new WireWriter(4 + name.length + 4).u32(name.length).raw(name).u16(1).u16(C.NBD_INFO_BLOCK_SIZE).bytes;
  await socket.write(optionRequest(C.NBD_OPT_GO, goData));
  let size: number | undefined;
  let flags = 0;
  let sizes = { minimum: 1, preferred: 4096, maximum: C.NBD_MAX_PAYLOAD };
  for (let replies = 0; replies < 1024; replies++) {
    const h = new DataView((await reader.readExact(20)).buffer);
    if (h.getUint32(0) !== C.NBD_REP_MAGIC[0] || h.getUint32(4) !== C.NBD_REP_MAGIC[1]) {
      throw new NbdProtocolError("bad option reply magic");
    }
    const type = h.getUint32(12);
    const length = h.getUint32(16);
    if (length > MAX_OPTION_LENGTH) throw new NbdProtocolError(`option reply of ${length} bytes`);
    const data = await reader.readExact(length);
    const view = new DataView(data.buffer);
    if (type === C.NBD_REP_ACK) {
      if (size === undefined) throw new NbdProtocolError("the server sent no export size");
      return exportInfo(size, flags, sizes);
    }
    if (type === C.NBD_REP_INFO && length >= 2) {
      const info = view.getUint16(0);
      if (info === C.NBD_INFO_EXPORT && length === 12) {
        size = readU64(view, 2);
        if (size === undefined) throw new NbdProtocolError("export size past 2^53");
        flags = view.getUint16(10);
      } else if (info === C.NBD_INFO_BLOCK_SIZE && length === 14) {
        sizes = { minimum: view.getUint32(2), preferred: view.getUint32(6), maximum: view.getUint32(10) };
      }
      continue;
    }
    if (type === C.NBD_REP_ERR_UNSUP) return exportNameFallback(socket, reader, name, noZeroes);
    if (type & 0x80000000) {
      let message = "";
      try {
        message = fromUtf8(data);
      } catch {
        // A message that is not text is left out.
      }
      const what = type === C.NBD_REP_ERR_UNKNOWN ? "no such export" : `error 0x${type.toString(16)}`;
      throw new ImageError("ERR_OPEN_DENIED", `NBD server refused export '${exportName}': ${what}${message ? ` (${message})` : ""}`);
    }
  }
  throw new NbdProtocolError("too many option replies");
}

async function exportNameFallback(socket: NbdSocket, reader: WireReader, name: Uint8Array, noZeroes: boolean): Promise<NbdExportInfo> {
  await socket.write(optionRequest(C.NBD_OPT_EXPORT_NAME, name));
  const reply = new DataView((await reader.readExact(noZeroes ? 10 : 134)).buffer);
  const size = readU64(reply, 0);
  if (size === undefined) throw new NbdProtocolError("export size past 2^53");
  return exportInfo(size, reply.getUint16(8), { minimum: 1, preferred: 4096, maximum: C.NBD_MAX_PAYLOAD });
}

function exportInfo(size: number, flags: number, s: { minimum: number; preferred: number; maximum: number }): NbdExportInfo {
  const pow2 = (n: number): boolean => n > 0 && (n & (n - 1)) === 0;
  if (!pow2(s.minimum) || s.minimum > 65536 || s.maximum < s.minimum) throw new NbdProtocolError("bad block size constraints");
  return {
    size,
    transmissionFlags: flags,
    minimumBlockSize: s.minimum,
    preferredBlockSize: s.preferred,
    maximumPayload: Math.min(s.maximum, C.NBD_MAX_PAYLOAD),
  };
}

/**
 * A hand-written NBD peer for protocol tests: raw bytes over node:net, so tests can send what no
 * well-behaved client would. Written from proto.md, independent of src/nbd.
 */
import * as net from "node:net";

export const MAGIC = {
  nbd: 0x4e42444d41474943n,
  opts: 0x49484156454f5054n,
  rep: 0x3e889045565a9n,
  request: 0x25609513,
  simple: 0x67446698,
  structured: 0x668e33ef,
};
export const OPT = { exportName: 1, abort: 2, list: 3, info: 6, go: 7, structured: 8, listMeta: 9, setMeta: 10 };
export const CMD = { read: 0, write: 1, disc: 2, flush: 3, trim: 4, cache: 5, zeroes: 6, status: 7 };
export const REP_ERR = 0x80000000;

/** A raw connection with exact reads that time out (2 s) instead of hanging a test. */
export class RawPeer {
  private buf = Buffer.alloc(0);
  private ended = false;
  private wake?: () => void;

  private constructor(readonly sock: net.Socket) {
    sock.on("data", (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.wake?.();
    });
    const end = (): void => {
      this.ended = true;
      this.wake?.();
    };
    sock.on("end", end);
    sock.on("close", end);
    sock.on("error", end);
  }

  static connect(port: number): Promise<RawPeer> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: "127.0.0.1", port }, () => resolve(new RawPeer(s)));
      s.once("error", reject);
    });
  }

  /** Exactly `n` bytes, or `null` when the server closed first. */
  async read(n: number, timeoutMs = 2000): Promise<Buffer | null> {
    const deadline = Date.now() + timeoutMs;
    while (this.buf.length < n) {
      if (this.ended) return null;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${n} bytes (have ${this.buf.length})`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.wake = () => {
          clearTimeout(t);
          r();
        };
      });
    }
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }

  /** Resolves true once the server has closed the connection (within 2 s). */
  async closedByServer(): Promise<boolean> {
    try {
      for (let i = 0; i < 1000; i++) if ((await this.read(1)) === null) return true;
      return false;
    } catch {
      return false;
    }
  }

  send(...parts: Buffer[]): void {
    this.sock.write(Buffer.concat(parts));
  }

  close(): void {
    this.sock.destroy();
  }

  /** Reads the greeting and answers with `clientFlags` (default fixed newstyle + no zeroes). */
  async greet(clientFlags = 3): Promise<{ flags: number }> {
    const g = await this.read(18);
    if (!g) throw new Error("no greeting");
    if (g.readBigUInt64BE(0) !== MAGIC.nbd || g.readBigUInt64BE(8) !== MAGIC.opts) throw new Error("bad greeting");
    this.send(u32(clientFlags));
    return { flags: g.readUInt16BE(16) };
  }

  option(option: number, data: Buffer = Buffer.alloc(0)): void {
    const h = Buffer.alloc(16);
    h.writeBigUInt64BE(MAGIC.opts, 0);
    h.writeUInt32BE(option, 8);
    h.writeUInt32BE(data.length, 12);
    this.send(h, data);
  }

  async reply(): Promise<{ option: number; type: number; data: Buffer } | null> {
    const h = await this.read(20);
    if (!h) return null;
    if (h.readBigUInt64BE(0) !== MAGIC.rep) throw new Error("bad option reply magic");
    const data = await this.read(h.readUInt32BE(16));
    return { option: h.readUInt32BE(8), type: h.readUInt32BE(12), data: data! };
  }

  /** Option replies up to and including the final ACK or error. */
  async replies(): Promise<Array<{ option: number; type: number; data: Buffer }>> {
    const out = [];
    for (let i = 0; i < 100; i++) {
      const r = await this.reply();
      if (!r) throw new Error("connection closed during option replies");
      out.push(r);
      if (r.type === 1 || r.type >= REP_ERR) return out;
    }
    throw new Error("too many replies");
  }

  /** NBD_OPT_GO for `name`; returns the export size and flags. */
  async go(name = "", structured = false, contexts: string[] = []): Promise<{ size: number; flags: number }> {
    if (structured) {
      this.option(OPT.structured);
      const r = await this.replies();
      if (r[r.length - 1].type !== 1) throw new Error("structured replies refused");
    }
    if (contexts.length) {
      this.option(OPT.setMeta, metaRequest(name, contexts));
      await this.replies();
    }
    this.option(OPT.go, Buffer.concat([u32(Buffer.byteLength(name)), Buffer.from(name), u16(0)]));
    let size = -1;
    let flags = -1;
    for (const r of await this.replies()) {
      if (r.type >= REP_ERR) throw new Error(`GO refused: 0x${r.type.toString(16)}`);
      if (r.type === 3 && r.data.readUInt16BE(0) === 0) {
        size = Number(r.data.readBigUInt64BE(2));
        flags = r.data.readUInt16BE(10);
      }
    }
    return { size, flags };
  }

  request(type: number, cookie: number, offset: bigint | number, length: number, flags = 0, payload?: Buffer): void {
    const h = Buffer.alloc(28);
    h.writeUInt32BE(MAGIC.request, 0);
    h.writeUInt16BE(flags, 4);
    h.writeUInt16BE(type, 6);
    h.writeBigUInt64BE(BigInt(cookie), 8);
    h.writeBigUInt64BE(BigInt(offset), 16);
    h.writeUInt32BE(length >>> 0, 24);
    this.send(h, payload ?? Buffer.alloc(0));
  }

  /** A simple reply: errno, cookie, and `dataLength` bytes of data when errno is 0. */
  async simpleReply(dataLength = 0): Promise<{ errno: number; cookie: number; data: Buffer } | null> {
    const h = await this.read(16);
    if (!h) return null;
    if (h.readUInt32BE(0) !== MAGIC.simple) throw new Error(`not a simple reply: 0x${h.readUInt32BE(0).toString(16)}`);
    const errno = h.readUInt32BE(4);
    const data = errno === 0 && dataLength ? await this.read(dataLength) : Buffer.alloc(0);
    return { errno, cookie: Number(h.readBigUInt64BE(8)), data: data! };
  }

  /** One structured reply chunk. */
  async chunk(): Promise<{ flags: number; type: number; cookie: number; payload: Buffer } | null> {
    const h = await this.read(20);
    if (!h) return null;
    if (h.readUInt32BE(0) !== MAGIC.structured) throw new Error(`not a structured reply: 0x${h.readUInt32BE(0).toString(16)}`);
    const payload = await this.read(h.readUInt32BE(16));
    return { flags: h.readUInt16BE(4), type: h.readUInt16BE(6), cookie: Number(h.readBigUInt64BE(8)), payload: payload! };
  }
}

export function u32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0);
  return b;
}

export function u16(v: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(v);
  return b;
}

/** Data of NBD_OPT_LIST/SET_META_CONTEXT. */
export function metaRequest(name: string, queries: string[]): Buffer {
  return Buffer.concat([
    u32(Buffer.byteLength(name)), Buffer.from(name), u32(queries.length),
    ...queries.flatMap((q) => [u32(Buffer.byteLength(q)), Buffer.from(q)]),
  ]);
}

// The NBD server against a hand-written peer (test/helpers/nbd-wire.ts, from proto.md): replies
// byte by byte, and malformed handshakes and requests — after each, the server is still serving
// other clients and the export is intact.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MemoryBackend, createImage, openImage, openNbd, serveNbd, type BlockDevice, type NbdServerHandle } from "../../src/node.js";
import { CMD, OPT, REP_ERR, RawPeer, metaRequest, u16, u32 } from "../helpers/nbd-wire.js";

const KiB = 1024;
const SIZE = 4 << 20;
const pattern = (n: number, seed: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff);

let rw: BlockDevice;
let ro: BlockDevice;
let handle: NbdServerHandle;
let port = 0;
const log: string[] = [];

beforeAll(async () => {
  rw = await createImage(new MemoryBackend(), { format: "qcow2", size: SIZE });
  await rw.write(0, pattern(64 * KiB, 1));
  await rw.write(1 << 20, pattern(64 * KiB, 2));
  const roImage = await createImage(new MemoryBackend(), { format: "qcow2", size: SIZE });
  await roImage.write(0, pattern(64 * KiB, 3));
  await roImage.flush();
  ro = await openImage(await snapshotBackend(roImage), { readOnly: true, format: "raw" });
  handle = await serveNbd([{ name: "rw", device: rw }, { name: "ro", device: ro, description: "read-only copy" }], {
    listen: { host: "127.0.0.1", port: 0 },
    allocationDepth: true,
    log: (m) => log.push(m),
  });
  port = (handle.address as { port: number }).port;
});

afterAll(async () => {
  await handle?.close();
  await rw?.close();
  await ro?.close();
});

/** A read-only reopen of an in-memory image: its bytes copied into a fresh backend. */
async function snapshotBackend(device: BlockDevice): Promise<MemoryBackend> {
  // The image file itself is not reachable through BlockDevice; rebuild it from the guest view as raw.
  const raw = new Uint8Array(device.size);
  await device.readInto(0, raw);
  await device.close();
  return new MemoryBackend(raw);
}

/** Byte equality without vitest's element-by-element diff (slow on big arrays). */
function same(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

/** The export still serves the right bytes to a well-behaved client. */
async function expectServing(): Promise<void> {
  const io = await openNbd(handle.urls[0]);
  const buf = new Uint8Array(64 * KiB);
  expect(await io.read(0, buf)).toBe(buf.length);
  expect(same(buf, pattern(64 * KiB, 1))).toBe(true);
  await io.close();
}

async function expectDropped(peer: RawPeer, logged: RegExp): Promise<void> {
  expect(await peer.closedByServer()).toBe(true);
  peer.close();
  // The log line is written when the session ends, just after the close.
  for (let i = 0; i < 50 && !log.some((l) => logged.test(l)); i++) await new Promise((r) => setTimeout(r, 10));
  expect(log.some((l) => logged.test(l)), log.join("\n")).toBe(true);
  await expectServing();
}

describe("NBD server: handshake", () => {
  it("greets with NBDMAGIC, IHAVEOPT and fixed newstyle + no zeroes; NBD_OPT_LIST names both exports", async () => {
    const p = await RawPeer.connect(port);
    expect((await p.greet()).flags).toBe(3);
    p.option(OPT.list);
    const r = await p.replies();
    const names = r.filter((x) => x.type === 2).map((x) => x.data.subarray(4, 4 + x.data.readUInt32BE(0)).toString());
    expect(names).toEqual(["rw", "ro"]);
    expect(r.find((x) => x.type === 2 && x.data.includes(Buffer.from("read-only copy")))).toBeDefined();
    expect(r[r.length - 1].type).toBe(1);
    p.option(OPT.abort);
    expect((await p.reply())?.type).toBe(1);
    expect(await p.closedByServer()).toBe(true);
  });

  it("NBD_OPT_INFO reports size, flags and block sizes; GO on 'ro' advertises read-only, no trim/zero", async () => {
    const p = await RawPeer.connect(port);
    await p.greet();
    p.option(OPT.info, Buffer.concat([u32(2), Buffer.from("rw"), u16(1), u16(3)]));
    const r = await p.replies();
    const exp = r.find((x) => x.type === 3 && x.data.readUInt16BE(0) === 0)!;
    expect(Number(exp.data.readBigUInt64BE(2))).toBe(SIZE);
    const rwFlags = exp.data.readUInt16BE(10);
    expect(rwFlags & 1).toBe(1); // HAS_FLAGS
    expect(rwFlags & 2).toBe(0); // not read-only
    expect(rwFlags & (1 << 2 | 1 << 3 | 1 << 6)).toBe(1 << 2 | 1 << 3 | 1 << 6); // flush, FUA, write zeroes
    const bs = r.find((x) => x.type === 3 && x.data.readUInt16BE(0) === 3)!;
    expect([bs.data.readUInt32BE(2), bs.data.readUInt32BE(6), bs.data.readUInt32BE(10)]).toEqual([1, 65536, 32 << 20]);
    const ex = await p.go("ro");
    expect(ex.flags & 2).toBe(2);
    expect(ex.flags & (1 << 5 | 1 << 6 | 1 << 3)).toBe(0);
    p.close();
  });

  it("meta contexts: LIST offers base:allocation and qemu:allocation-depth; SET needs structured replies", async () => {
    const p = await RawPeer.connect(port);
    await p.greet();
    p.option(OPT.listMeta, metaRequest("rw", []));
    const listed = (await p.replies()).filter((r) => r.type === 4).map((r) => r.data.subarray(4).toString());
    expect(listed).toEqual(["base:allocation", "qemu:allocation-depth"]);
    p.option(OPT.listMeta, metaRequest("rw", ["qemu:"]));
    expect((await p.replies()).filter((r) => r.type === 4).map((r) => r.data.subarray(4).toString())).toEqual(["qemu:allocation-depth"]);
    p.option(OPT.setMeta, metaRequest("rw", ["base:allocation"]));
    expect((await p.replies()).at(-1)!.type).toBe(REP_ERR + 3); // INVALID
    p.option(OPT.structured);
    await p.replies();
    p.option(OPT.setMeta, metaRequest("nope", ["base:allocation"]));
    expect((await p.replies()).at(-1)!.type).toBe(REP_ERR + 6); // UNKNOWN
    p.option(OPT.setMeta, metaRequest("rw", ["base:allocation", "x-unknown:thing"]));
    const set = await p.replies();
    expect(set.filter((r) => r.type === 4).map((r) => r.data.subarray(4).toString())).toEqual(["base:allocation"]);
    p.close();
  });
});

describe("NBD server: transmission", () => {
  it("structured READ sends the data and the holes of a sparse range; BLOCK_STATUS describes it, REQ_ONE once", async () => {
    const p = await RawPeer.connect(port);
    await p.greet();
    await p.go("rw", true, ["base:allocation", "qemu:allocation-depth"]);
    // 0..64k data, 64k..1M unallocated, 1M..1M+64k data: read 960k..1M+64k.
    p.request(CMD.read, 7, 960 * KiB, 128 * KiB);
    const chunks = [];
    for (let i = 0; i < 10; i++) {
      const c = (await p.chunk())!;
      expect(c.cookie).toBe(7);
      chunks.push(c);
      if (c.flags & 1) break;
    }
    expect(chunks.map((c) => c.type)).toEqual([2, 1]); // hole, data
    expect(Number(chunks[0].payload.readBigUInt64BE(0))).toBe(960 * KiB);
    expect(chunks[0].payload.readUInt32BE(8)).toBe(64 * KiB);
    expect(Number(chunks[1].payload.readBigUInt64BE(0))).toBe(1 << 20);
    expect(same(new Uint8Array(chunks[1].payload.subarray(8)), pattern(64 * KiB, 2))).toBe(true);

    p.request(CMD.status, 8, 0, 2 << 20);
    const a = (await p.chunk())!;
    const b = (await p.chunk())!;
    expect(a.type).toBe(5);
    expect([a.flags & 1, b.flags & 1]).toEqual([0, 1]);
    const descriptors = (c: Buffer): number[][] => {
      const out = [];
      for (let o = 4; o < c.length; o += 8) out.push([c.readUInt32BE(o), c.readUInt32BE(o + 4)]);
      return out;
    };
    expect(descriptors(a.payload)).toEqual([[64 * KiB, 0], [960 * KiB, 3], [64 * KiB, 0], [960 * KiB, 3]]);
    expect(descriptors(b.payload)).toEqual([[64 * KiB, 1], [960 * KiB, 0], [64 * KiB, 1], [960 * KiB, 0]]);
    p.request(CMD.status, 9, 0, 2 << 20, 1 << 3);
    const one = (await p.chunk())!;
    expect(descriptors(one.payload)).toEqual([[64 * KiB, 0]]);
    await p.chunk();
    p.close();
  });

  it("errors are replies, not disconnects: past the end and 2^63 (EINVAL), > 32 MiB read (EOVERFLOW), unknown command", async () => {
    const p = await RawPeer.connect(port);
    await p.greet();
    await p.go("rw");
    p.request(CMD.read, 1, SIZE - 512, 1024);
    expect((await p.simpleReply())!.errno).toBe(22);
    p.request(CMD.read, 2, 1n << 63n, 512);
    expect((await p.simpleReply())!.errno).toBe(22);
    p.request(CMD.read, 3, 0, 64 << 20);
    expect((await p.simpleReply())!.errno).toBe(75);
    p.request(99, 4, 0, 512);
    expect((await p.simpleReply())!.errno).toBe(22);
    p.request(CMD.trim, 5, SIZE, 1);
    expect((await p.simpleReply())!.errno).toBe(22);
    p.request(CMD.status, 6, 0, 512);
    expect((await p.simpleReply())!.errno).toBe(22); // no context negotiated
    p.request(CMD.read, 7, 0, 4096);
    const r = (await p.simpleReply(4096))!;
    expect([r.errno, r.cookie]).toEqual([0, 7]);
    expect(same(new Uint8Array(r.data), pattern(4096, 1))).toBe(true);
    p.request(CMD.disc, 8, 0, 0);
    expect(await p.closedByServer()).toBe(true);
  });

  it("a write to the read-only export gets EPERM (its payload consumed); the next request is served", async () => {
    const p = await RawPeer.connect(port);
    await p.greet();
    await p.go("ro");
    p.request(CMD.write, 1, 0, 4096, 1, Buffer.alloc(4096, 0xee));
    expect((await p.simpleReply())!.errno).toBe(1);
    p.request(CMD.zeroes, 2, 0, 4096);
    expect((await p.simpleReply())!.errno).toBe(1);
    p.request(CMD.read, 3, 0, 16);
    const r = (await p.simpleReply(16))!;
    expect(same(new Uint8Array(r.data), pattern(16, 3))).toBe(true);
    p.close();
  });

  it("WRITE with FUA, WRITE_ZEROES, TRIM and FLUSH change the export as a model says", async () => {
    const p = await RawPeer.connect(port);
    await p.greet();
    await p.go("rw");
    const data = Buffer.from(pattern(8 * KiB, 9));
    p.request(CMD.write, 1, 2 << 20, data.length, 1, data);
    p.request(CMD.zeroes, 2, (2 << 20) + 1024, 1024, 2);
    p.request(CMD.flush, 3, 0, 0);
    const replies = [(await p.simpleReply())!, (await p.simpleReply())!, (await p.simpleReply())!];
    expect(replies.map((r) => r.errno)).toEqual([0, 0, 0]);
    const expected = new Uint8Array(data);
    expected.fill(0, 1024, 2048);
    expect(same(await rw.read(2 << 20, data.length), expected)).toBe(true);
    p.close();
  });
});

describe("NBD server: malformed input drops that client only", () => {
  it("unknown client flags", async () => {
    const p = await RawPeer.connect(port);
    await p.greet(0xfffffff0);
    await expectDropped(p, /unknown client flags/);
  });

  it("bad option magic", async () => {
    const p = await RawPeer.connect(port);
    await p.greet();
    p.send(Buffer.alloc(16, 0x41));
    await expectDropped(p, /bad option magic/);
  });

  it("an option of 1 GiB", async () => {
    const p = await RawPeer.connect(port);
    await p.greet();
    const h = Buffer.alloc(16);
    h.writeBigUInt64BE(0x49484156454f5054n);
    h.writeUInt32BE(OPT.go, 8);
    h.writeUInt32BE(1 << 30, 12);
    p.send(h);
    await expectDropped(p, /length 1073741824/);
  });

  it("unknown options and malformed INFO are answered with errors, then GO works", async () => {
    const p = await RawPeer.connect(port);
    await p.greet();
    p.option(0x1234, Buffer.from("junk"));
    expect((await p.replies()).at(-1)!.type).toBe(REP_ERR + 1); // UNSUP
    p.option(OPT.info, Buffer.concat([u32(1000), Buffer.from("rw")]));
    expect((await p.replies()).at(-1)!.type).toBe(REP_ERR + 3); // INVALID
    p.option(OPT.go, Buffer.concat([u32(4), Buffer.from("none"), u16(0)]));
    expect((await p.replies()).at(-1)!.type).toBe(REP_ERR + 6); // UNKNOWN
    p.option(OPT.structured, Buffer.from("x"));
    expect((await p.replies()).at(-1)!.type).toBe(REP_ERR + 3);
    p.option(OPT.list, Buffer.from("x"));
    expect((await p.replies()).at(-1)!.type).toBe(REP_ERR + 3);
    expect((await p.go("rw")).size).toBe(SIZE);
    p.close();
    await expectServing();
  });

  it("NBD_OPT_EXPORT_NAME of an unknown export", async () => {
    const p = await RawPeer.connect(port);
    await p.greet();
    p.option(OPT.exportName, Buffer.from("missing"));
    await expectDropped(p, /unknown export 'missing'/);
  });

  it("bad request magic", async () => {
    const p = await RawPeer.connect(port);
    await p.greet();
    await p.go("rw");
    p.send(Buffer.alloc(28, 0x55));
    await expectDropped(p, /bad request magic/);
  });

  it("a WRITE of 4 GiB - 1 (more than 32 MiB)", async () => {
    const p = await RawPeer.connect(port);
    await p.greet();
    await p.go("rw");
    p.request(CMD.write, 1, 0, 0xffffffff);
    await expectDropped(p, /more than 33554432/);
  });

  it("a request header cut short, and a write payload cut short", async () => {
    const before = log.length;
    const p = await RawPeer.connect(port);
    await p.greet();
    await p.go("rw");
    p.send(Buffer.from([0x25, 0x60, 0x95, 0x13, 0, 0, 0, 1]));
    p.sock.end();
    await expectDropped(p, /middle of a message/);
    const q = await RawPeer.connect(port);
    await q.greet();
    await q.go("rw");
    const h = Buffer.alloc(28);
    h.writeUInt32BE(0x25609513, 0);
    h.writeUInt16BE(CMD.write, 6);
    h.writeBigUInt64BE(0n, 16);
    h.writeUInt32BE(64 * KiB, 24);
    q.send(h, Buffer.alloc(1000, 0x99));
    q.sock.end();
    await expectDropped(q, /middle of a message/);
    expect(log.length).toBeGreaterThanOrEqual(before + 2);
    // The half-sent write changed nothing.
    expect(same(await rw.read(0, 64 * KiB), pattern(64 * KiB, 1))).toBe(true);
  });

  it("garbage instead of client flags and options, and a client gone in the middle of a big read", async () => {
    const p = await RawPeer.connect(port);
    await p.read(18);
    p.send(Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 31) & 0xff)));
    expect(await p.closedByServer()).toBe(true);
    p.close();
    const q = await RawPeer.connect(port);
    await q.greet();
    await q.go("rw");
    for (let i = 0; i < 8; i++) q.request(CMD.read, i, 0, 4 << 20);
    q.close();
    await new Promise((r) => setTimeout(r, 100));
    await expectServing();
  });
});

describe("NBD server: time limits", () => {
  it("a client that connects and says nothing is dropped after the handshake limit; others are served", async () => {
    const lines: string[] = [];
    const h = await serveNbd(rw, { listen: { port: 0 }, handshakeTimeoutMs: 300, maxConnections: 1, log: (m) => lines.push(m) });
    try {
      const silent = await RawPeer.connect((h.address as { port: number }).port);
      await silent.read(18);
      // With one slot, a second client waits behind the silent one until it is dropped.
      const io = await openNbd(h.urls[0]);
      expect(await silent.closedByServer()).toBe(true);
      expect(lines.some((l) => /not finished within 300 ms/.test(l)), lines.join("\n")).toBe(true);
      const buf = new Uint8Array(16);
      await io.read(0, buf);
      expect(same(buf, pattern(16, 1))).toBe(true);
      await io.close();
    } finally {
      await h.close();
    }
  });
});

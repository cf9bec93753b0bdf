/**
 * FVD against the spec's hand-derived test vectors (spec §7 TV1–TV4 and the crash variant):
 * the only cross-check available, since no released tool reads FVD. Expected bytes below are
 * typed from the spec, never produced by the code under test.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { NodeFileBackend, nodeFileOpener, openImage, tsKernel } from "../../src/node.js";
import { MemoryBackend } from "../../src/index.js";
import type { CreateContext } from "../../src/core/format.js";
import { fvdDriver } from "../../src/formats/fvd/driver.js";
import { diffAt } from "./gow-fvd-helpers.js";
import {
  fvdBitmapSize,
  fvdDefaultBlockSize,
  fvdMinJournalSize,
  fvdRoundUp,
  fvdTableSize,
} from "../../src/formats/fvd/layout.js";

const MiB = 1 << 20;
const GiB = 2 ** 30;
const TiB = 2 ** 40;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "vdisk-fvd-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function file(name: string): string {
  return path.join(dir, name);
}

/** Expected header region: zeros except the listed little-endian values. */
function expectedHeader(fields: Array<[number, number[]]>): Uint8Array {
  const h = new Uint8Array(8192);
  for (const [at, bytes] of fields) h.set(bytes, at);
  return h;
}

function hex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join(" ");
}

function firstDiff(a: Uint8Array, b: Uint8Array): string {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if (a[i] !== b[i]) return `byte ${i} (0x${i.toString(16)}): got ${a[i]}, expected ${b[i]}`;
  }
  return "equal";
}

async function createWithDriver(target: string, size: number, options: CreateContext["options"], backing?: CreateContext["backing"]): Promise<void> {
  const io = await NodeFileBackend.open(target, { create: true });
  await fvdDriver.create!({
    file: io,
    size,
    options,
    backing,
    openFile: nodeFileOpener,
    kernel: tsKernel,
    warn: () => {},
  });
  await io.close();
}

const TV1_HEADER: Array<[number, number[]]> = [
  [0x000, [0xa9, 0xf5, 0x43, 0x51]],
  [0x004, [0x01, 0, 0, 0]],
  [0x008, [0x01, 0, 0, 0]],
  [0x00c, [0x00, 0x00, 0x40, 0x00, 0, 0, 0, 0]],
  [0x014, [0x00, 0x30, 0x00, 0x01, 0, 0, 0, 0]],
  [0x8a0, [0x01, 0, 0, 0]],
  [0x8a4, [0x00, 0x20, 0, 0, 0, 0, 0, 0]],
  [0x8ac, [0x00, 0x00, 0x10, 0x00, 0, 0, 0, 0]],
  [0x8b4, [0x00, 0x00, 0x40, 0x06, 0, 0, 0, 0]],
  [0x10bc, [0x00, 0x30, 0, 0, 0, 0, 0, 0]],
  [0x10c4, [0x00, 0x00, 0x00, 0x01, 0, 0, 0, 0]],
  [0x10cc, [0x01, 0, 0, 0]],
];

describe("TV1: 4 MiB compact image, write 512 bytes at 1 MiB", () => {
  const img = file("t.fvd");
  let crashCopy: Uint8Array;

  it("create writes the header, an all-FF table and a zero journal, 16,789,504 bytes", async () => {
    await createWithDriver(img, 4 * MiB, { compact_image: true });
    const f = fs.readFileSync(img);
    expect(f.length).toBe(16_789_504);
    expect(firstDiff(f.subarray(0, 8192), expectedHeader(TV1_HEADER))).toBe("equal");
    expect(f.subarray(8192, 12288).every((b) => b === 0xff)).toBe(true);
    expect(f.subarray(12288).every((b) => b === 0)).toBe(true);
  });

  it("open clears clean_shutdown; the write allocates chunk 0, grows the file and journals one TABLE record", async () => {
    const dev = await openImage(img, { format: "fvd" });
    let f = fs.readFileSync(img);
    expect(hex(f.subarray(0x10cc, 0x10d0))).toBe("00 00 00 00");
    await dev.write(MiB, new Uint8Array(512).fill(0xab));
    await dev.flush();
    f = fs.readFileSync(img);
    expect(f.length).toBe(121_647_104);
    expect(f.subarray(16_789_504, 16_789_504 + 512).every((b) => b === 0xab)).toBe(true);
    expect(hex(f.subarray(12288, 12288 + 20))).toBe("ac f7 e6 b4 01 00 00 00 01 00 00 00 00 00 00 80 00 00 00 00");
    // Not yet written home: the table still reads all FF (the crash variant's state).
    expect(f.subarray(8192, 12288).every((b) => b === 0xff)).toBe(true);
    crashCopy = f.slice();
    await dev.close();
  });

  it("clean close writes the table home without dirty bits and sets clean_shutdown", () => {
    const f = fs.readFileSync(img);
    expect(hex(f.subarray(8192, 8208))).toBe("ff ff ff ff 00 00 00 00 ff ff ff ff ff ff ff ff");
    expect(f.subarray(8208, 12288).every((b) => b === 0xff)).toBe(true);
    expect(hex(f.subarray(0x10cc, 0x10d0))).toBe("01 00 00 00");
    expect(hex(f.subarray(12288, 12288 + 16))).toBe("ac f7 e6 b4 01 00 00 00 01 00 00 00 00 00 00 80");
    expect(f.length).toBe(121_647_104);
  });

  it("crash variant: a read-write open replays the journal and writes the table home", async () => {
    const crashed = file("crash.fvd");
    fs.writeFileSync(crashed, crashCopy);
    const ro = await openImage(crashed, { format: "fvd", readOnly: true });
    expect((await ro.read(MiB, 512)).every((b) => b === 0xab)).toBe(true);
    await ro.close();
    expect(fs.readFileSync(crashed).subarray(8192, 12288).every((b) => b === 0xff)).toBe(true); // read-only: memory only
    const rw = await openImage(crashed, { format: "fvd" });
    const f = fs.readFileSync(crashed);
    expect(hex(f.subarray(8192, 8208))).toBe("ff ff ff ff 00 00 00 00 ff ff ff ff ff ff ff ff");
    expect((await rw.read(MiB, 512)).every((b) => b === 0xab)).toBe(true);
    expect((await rw.read(0, 512)).every((b) => b === 0)).toBe(true);
    // used_storage is one chunk: the next new chunk is physical 1.
    await rw.write(3 * MiB, new Uint8Array([7]));
    let at = -1;
    for await (const e of rw.extents()) if (e.offset === 3 * MiB) at = e.fileOffset ?? -1;
    expect(at).toBe(16_789_504 + MiB);
    expect((await rw.check()).corruptions).toBe(0);
    await rw.close();
  });
});

describe("TV2: 4 MiB copy-on-write image over a 2 MiB raw base", () => {
  const base = file("base.raw");
  const img = file("cow.fvd");
  const baseData = new Uint8Array(2 * MiB).map((_, i) => (i * 7 + 3) & 0xff);

  it("create writes the header of TV2", async () => {
    fs.writeFileSync(base, baseData);
    await createWithDriver(img, 4 * MiB, {}, { name: "base.raw", size: 2 * MiB });
    const f = fs.readFileSync(img);
    expect(f.length).toBe(16_789_504);
    const name = Array.from(new TextEncoder().encode("base.raw"));
    const expected = expectedHeader([
      [0x000, [0xa9, 0xf5, 0x43, 0x51]],
      [0x004, [0x01, 0, 0, 0]],
      [0x00c, [0x00, 0x00, 0x40, 0x00, 0, 0, 0, 0]],
      [0x014, [0x00, 0x30, 0x00, 0x01, 0, 0, 0, 0]],
      [0x01c, name],
      [0x42c, [0x00, 0x00, 0x20, 0x00, 0, 0, 0, 0]],
      [0x434, [0x00, 0x20, 0, 0, 0, 0, 0, 0]],
      [0x43c, [0x00, 0x10, 0, 0, 0, 0, 0, 0]],
      [0x444, [0x00, 0x02, 0x00, 0x00]],
      [0x44c, [0x80, 0x84, 0x1e, 0x00, 0, 0, 0, 0]],
      [0x864, [0xff, 0xff, 0xff, 0xff]],
      [0x878, [0x02, 0, 0, 0]],
      [0x87c, [0x00, 0x00, 0x10, 0x00]],
      [0x880, [0x64, 0, 0, 0]],
      [0x884, [0x64, 0, 0, 0]],
      [0x888, [0x50, 0, 0, 0]],
      [0x88c, [0x00, 0x14, 0, 0]],
      [0x890, [0x00, 0x14, 0, 0]],
      [0x894, [0x00, 0xca, 0x9a, 0x3b]],
      [0x898, [0x00, 0xca, 0x9a, 0x3b]],
      [0x89c, [0x30, 0x75, 0, 0]],
      [0x10bc, [0x00, 0x30, 0, 0, 0, 0, 0, 0]],
      [0x10c4, [0x00, 0x00, 0x00, 0x01, 0, 0, 0, 0]],
      [0x10cc, [0x01, 0, 0, 0]],
      [0x10d8, [0x00, 0x10, 0x00, 0x00]],
      [0x10dc, [0xff, 0xff, 0xff, 0xff]],
    ]);
    expect(firstDiff(f.subarray(0, 8192), expected)).toBe("equal");
    expect(f.subarray(8192).every((b) => b === 0)).toBe(true);
  });

  it("the first I/O extends the file; the write goes to byte 17,838,080 and journals one BITMAP record", async () => {
    const dev = await openImage(img, { format: "fvd", backing: "same-dir" });
    expect((await dev.read(0, 16))).toEqual(baseData.subarray(0, 16));
    expect(fs.statSync(img).size).toBe(20_983_808);
    await dev.write(MiB, new Uint8Array(512).fill(0x5c));
    await dev.flush();
    const f = fs.readFileSync(img);
    expect(f.subarray(17_838_080, 17_838_080 + 512).every((b) => b === 0x5c)).toBe(true);
    expect(hex(f.subarray(12288, 12288 + 20))).toBe("ed b8 2a 3f 01 00 00 00 00 08 00 00 00 00 00 00 00 00 00 00");
    expect(f[8448]).toBe(0); // bitmap home not yet written
    await dev.close();
    const g = fs.readFileSync(img);
    expect(g[8448]).toBe(0x01);
    expect(g.subarray(8192, 8448).every((b) => b === 0)).toBe(true);
    expect(g.subarray(8449, 12288).every((b) => b === 0)).toBe(true);
    expect(hex(g.subarray(0x10cc, 0x10d0))).toBe("01 00 00 00");
  });

  it("reads sector 2048 from the image, the rest of the base range from base.raw, zeros beyond", async () => {
    const dev = await openImage(img, { format: "fvd", backing: "same-dir", readOnly: true });
    const all = await dev.read(0, 4 * MiB);
    expect(all.subarray(MiB, MiB + 512).every((b) => b === 0x5c)).toBe(true);
    expect(diffAt(all.subarray(0, MiB), baseData.subarray(0, MiB))).toBe(-1);
    expect(diffAt(all.subarray(MiB + 512, 2 * MiB), baseData.subarray(MiB + 512))).toBe(-1);
    expect(all.subarray(2 * MiB).every((b) => b === 0)).toBe(true);
    const ext = [];
    for await (const e of dev.extents()) ext.push([e.offset, e.length, e.depth]);
    expect(ext).toEqual([
      [0, MiB, 1],
      [MiB, 512, 0],
      [MiB + 512, MiB - 512, 1],
      [2 * MiB, 2 * MiB, 0],
    ]);
    await dev.close();
  });
});

describe("TV3: mixed journal sectors (compact image with a base)", () => {
  async function setup(chunk: number): Promise<{ mem: MemoryBackend; dev: Awaited<ReturnType<typeof openImage>> }> {
    const mem = new MemoryBackend(new Uint8Array(0), { name: "mixed.fvd" });
    const baseMem = new MemoryBackend(new Uint8Array(2 * MiB).fill(0x11), { name: "base.raw" });
    await fvdDriver.create!({
      file: mem,
      size: 4 * MiB,
      options: { compact_image: true, chunk_size: chunk, storage_grow_unit: chunk },
      backing: { name: "base.raw", format: "raw", size: 2 * MiB },
      openFile: async () => baseMem,
      kernel: tsKernel,
      warn: () => {},
    });
    const dev = await openImage(mem, { format: "fvd", backing: "any", openFile: async () => baseMem });
    return { mem, dev };
  }

  it("one chunk: TABLE record, BITMAP record and terminator in 36 bytes of one sector", async () => {
    const { mem, dev } = await setup(MiB);
    await dev.write(0, new Uint8Array(512).fill(0x22));
    await dev.flush();
    // Bitmap 4096 B at 8192, table 4096 B at 12288, journal at 16384.
    const j = mem.bytes().subarray(16384, 16384 + 1024);
    expect(hex(j.subarray(0, 36))).toBe(
      "ac f7 e6 b4 00 00 00 00 01 00 00 00 00 00 00 80 ed b8 2a 3f 01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00",
    );
    expect(j.subarray(512, 516).every((b) => b === 0)).toBe(true); // one sector only
    const back = await dev.read(0, 1024);
    expect(back.subarray(0, 512).every((b) => b === 0x22)).toBe(true);
    expect(back.subarray(512).every((b) => b === 0x11)).toBe(true); // rest of the chunk still from the base
    await dev.close();
  });

  it("a write covering 300 chunks needs 3 sectors of 121, 121 and 58 entries, each with its BITMAP record", async () => {
    const { mem, dev } = await setup(4096);
    await dev.write(0, new Uint8Array(300 * 4096).fill(0x33));
    await dev.flush();
    const j = mem.bytes();
    // 4 MiB / 4 KiB = 1024 entries: table 4096 B at 8192 + 4096 (after the 4096-B bitmap).
    const jo = 8192 + 4096 + 4096;
    const view = new DataView(j.buffer, j.byteOffset);
    const sectors = [
      { first: 0, count: 121, sector: 0, nb: 968 },
      { first: 121, count: 121, sector: 968, nb: 968 },
      { first: 242, count: 58, sector: 1936, nb: 464 },
    ];
    sectors.forEach((s, k) => {
      const at = jo + 512 * k;
      expect(view.getUint32(at, true).toString(16)).toBe("b4e6f7ac");
      expect(view.getUint32(at + 4, true)).toBe(s.first);
      expect(view.getUint32(at + 8, true)).toBe(s.count);
      for (let e = 0; e < s.count; e++) expect(view.getUint32(at + 12 + 4 * e, true)).toBe((0x80000000 | (s.first + e)) >>> 0);
      const b = at + 12 + 4 * s.count;
      expect(view.getUint32(b, true).toString(16)).toBe("3f2ab8ed");
      expect(view.getUint32(b + 4, true)).toBe(s.nb);
      expect(view.getUint32(b + 8, true)).toBe(s.sector);
      if (s.count < 121) expect(view.getUint32(b + 16, true)).toBe(0);
    });
    expect(view.getUint32(jo + 1536, true)).toBe(0);
    await dev.close();
  });
});

describe("TV4: sizing", () => {
  it("automatic block sizes and bitmap sizes match the table", () => {
    const cases: Array<[number, number, number]> = [
      [10 * GiB, 512, 2_621_440],
      [16 * GiB, 512, 4_194_304],
      [20 * GiB, 1024, 2_621_440],
      [TiB, 32_768, 4_194_304],
    ];
    for (const [base, block, bitmap] of cases) {
      expect(fvdDefaultBlockSize(base)).toBe(block);
      expect(fvdBitmapSize(base, block)).toBe(bitmap);
    }
  });

  it("compact tables and minimum journals match the table", () => {
    expect(fvdTableSize(1_048_576)).toBe(4_194_304);
    expect(fvdMinJournalSize(1_048_576)).toBe(8666 * 512);
    expect(fvdTableSize(1_638_400)).toBe(6_553_600);
    expect(fvdMinJournalSize(1_638_400)).toBe(6_932_992);
    expect(fvdRoundUp(fvdMinJournalSize(4), 4096)).toBe(4096);
  });

  it("create lays out a 100 GiB compact image with 64 KiB chunks as TV4 says", async () => {
    const mem = new MemoryBackend();
    await fvdDriver.create!({
      file: mem,
      size: 100 * GiB,
      options: { compact_image: true, chunk_size: 65536 },
      openFile: async () => mem,
      kernel: tsKernel,
      warn: () => {},
    });
    const v = new DataView(mem.bytes().buffer, mem.bytes().byteOffset);
    expect(v.getUint32(0x10bc, true)).toBe(8192 + 6_553_600); // journal_offset
    expect(v.getUint32(0x10c4, true)).toBe(16 * MiB); // the default wins over the 6,932,992 minimum
    expect(mem.bytes().length).toBe(8192 + 6_553_600 + 16 * MiB);
  });

  it("create over a 1 TiB base picks 32 KiB blocks and a 4 MiB bitmap", async () => {
    const mem = new MemoryBackend();
    await fvdDriver.create!({
      file: mem,
      size: TiB,
      options: {},
      backing: { name: "big.raw", size: TiB },
      openFile: async () => mem,
      kernel: tsKernel,
      warn: () => {},
    });
    const v = new DataView(mem.bytes().buffer, mem.bytes().byteOffset);
    expect(v.getUint32(0x444, true)).toBe(32_768);
    expect(v.getUint32(0x43c, true)).toBe(4 * MiB);
    expect(v.getUint32(0x87c, true)).toBe(MiB); // bytes_per_prefetch
  });
});

describe("separate data file on disk", () => {
  it("create makes the data file next to the image; data lives there, metadata in the image", async () => {
    const { createImage } = await import("../../src/node.js");
    const img = file("split.fvd");
    const dev = await createImage(img, { format: "fvd", size: 2 * MiB, options: "data_file=split.data", backing: "same-dir" });
    await dev.write(MiB + 3, new Uint8Array([1, 2, 3]));
    await dev.close();
    expect(fs.statSync(img).size).toBe(8192); // plain image, no bitmap, table or journal
    const data = fs.readFileSync(file("split.data"));
    expect(data.length).toBe(2 * MiB); // data offset 0, extended to the disk size at first I/O
    expect(Array.from(data.subarray(MiB + 3, MiB + 6))).toEqual([1, 2, 3]);
    await expect(openImage(img, { format: "fvd", readOnly: true })).rejects.toMatchObject({ code: "ERR_OPEN_DENIED" });
    const again = await openImage(img, { format: "fvd", readOnly: true, backing: "same-dir" });
    expect(Array.from(await again.read(MiB + 3, 3))).toEqual([1, 2, 3]);
    await again.close();
  });
});

/**
 * Bad VHDX input: header, region table, metadata, BAT and log pokes (with checksums fixed up
 * so the deeper checks are reached) each give an ImageError naming the structure and value;
 * random mutations and truncations give clean ImageErrors or consistent reads, never another
 * exception, a hang or a huge allocation.
 */
import { describe, expect, it } from "vitest";
import { MemoryBackend, createImage, isImageError, openImage, tsKernel } from "../../src/index.js";

const MiB = 1 << 20;
const H1 = 64 * 1024;
const H2 = 128 * 1024;
const RT1 = 192 * 1024;
const RT2 = 256 * 1024;
// vdisk's create layout with a 1 MiB log: log at 1M, BAT at 2M, metadata at 3M (BAT ≤ 1 MiB).
const LOG = MiB;
const BAT = 2 * MiB;
const META = 3 * MiB;

function dv(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

function setCrc(buf: Uint8Array, start: number, length: number): void {
  const part = buf.subarray(start, start + length);
  dv(part).setUint32(4, 0, true);
  dv(part).setUint32(4, tsKernel.crc32c(part), true);
}

/** Both headers and both region tables get valid checksums again. */
function fixChecksums(b: Uint8Array): void {
  setCrc(b, H1, 4096);
  setCrc(b, H2, 4096);
  setCrc(b, RT1, 65536);
  setCrc(b, RT2, 65536);
}

function pokeBoth(b: Uint8Array, rel: number, write: (view: DataView, at: number) => void, base: [number, number] = [H1, H2]): void {
  for (const o of base) write(dv(b), o + rel);
}

async function baseImage(options = "block_size=1M", size = 8 * MiB): Promise<Uint8Array> {
  const mem = new MemoryBackend();
  const img = await createImage(mem, { format: "vhdx", size, options });
  await img.write(MiB + 100, new Uint8Array(3 * MiB).fill(0x5c));
  await img.close();
  return mem.bytes().slice();
}

/** Opens and reads everything; returns the error or undefined. */
async function tryOpen(bytes: Uint8Array, readOnly: boolean): Promise<unknown> {
  try {
    const img = await openImage(new MemoryBackend(bytes.slice(), { readOnly }), { format: "vhdx", readOnly });
    try {
      for (let off = 0; off < img.size; off += 4 * MiB) await img.read(off, Math.min(4 * MiB, img.size - off));
      for await (const e of img.extents()) void e;
      await img.check();
    } finally {
      await img.close().catch(() => {});
    }
    return undefined;
  } catch (e) {
    return e;
  }
}

async function expectOpenError(bytes: Uint8Array, message: RegExp, code?: string): Promise<void> {
  for (const readOnly of [true, false]) {
    const e = await tryOpen(bytes, readOnly);
    expect(isImageError(e), `expected an ImageError for ${message}, got ${String(e)}`).toBe(true);
    expect(String((e as Error)?.message), `case ${message}`).toMatch(message);
    expect((e as Error).message.split("\n")).toHaveLength(1);
    if (code) expect((e as { code: string }).code).toBe(code);
  }
}

describe("vhdx bad headers and tables", () => {
  it("a file without the vhdxfile signature is not a VHDX", async () => {
    const b = await baseImage();
    b.set([0x76, 0x68, 0x64, 0x78, 0x66, 0x69, 0x6c, 0x66], 0);
    await expectOpenError(b, /file signature is 'vhdxfilf', not 'vhdxfile'/, "ERR_NOT_AN_IMAGE");
  });

  it("both headers with bad checksums: no valid header", async () => {
    const b = await baseImage();
    b[H1 + 100] ^= 1;
    b[H2 + 100] ^= 1;
    await expectOpenError(b, /no valid header \(header 1 has a bad checksum .*header 2 has a bad checksum/, "ERR_CORRUPT_IMAGE");
  });

  it("one bad header falls back to the other, and check -r all rewrites it", async () => {
    const b = await baseImage();
    b[H2 + 8] ^= 0xff; // the newer header (sequence 2 after create, higher after writes)
    b[H1 + 8] ^= 0; // untouched
    const mem = new MemoryBackend(b.slice());
    const img = await openImage(mem, { format: "vhdx" });
    expect((await img.read(MiB + 100, 10)).every((x) => x === 0x5c)).toBe(true);
    const before = await img.check();
    expect(before.corruptions).toBe(1);
    expect(before.messages.join()).toMatch(/header 2 has a bad checksum/);
    const fixed = await img.check("all");
    expect(fixed.corruptionsFixed).toBe(1);
    expect(fixed.corruptions).toBe(0);
    expect((await img.check()).corruptions).toBe(0);
    await img.close();
  });

  it("equal sequence numbers with different contents are refused; identical copies are fine (Disk2VHD)", async () => {
    const b = await baseImage();
    b.copyWithin(H2, H1, H1 + 4096);
    expect(await tryOpen(b, true)).toBeUndefined();
    pokeBoth(b, 68, (v, at) => v.setUint32(at, 2 * MiB, true), [H2, H2]); // log length differs
    fixChecksums(b);
    await expectOpenError(b, /both headers have sequence number \d+ but differ/);
  });

  it("header version, log version, log placement", async () => {
    const cases: Array<[number, (v: DataView, at: number) => void, RegExp]> = [
      [66, (v, at) => v.setUint16(at, 2, true), /has version 2/],
      [64, (v, at) => v.setUint16(at, 1, true), /log version 1 is not supported/],
      [72, (v, at) => v.setUint32(at, MiB + 4096, true), /log offset 1052672 is not a multiple of 1 MiB/],
      [68, (v, at) => v.setUint32(at, 1234567, true), /log length 1234567 is not a multiple of 1 MiB/],
      [72, (v, at) => v.setUint32(at, 0, true), /log offset 0 is not a multiple of 1 MiB past the header section/],
      [76, (v, at) => v.setUint32(at, 0xffffffff, true), /no valid header|exceeds|past/],
    ];
    for (const [rel, poke, msg] of cases) {
      const b = await baseImage();
      pokeBoth(b, rel, poke);
      fixChecksums(b);
      await expectOpenError(b, msg);
    }
  });

  it("an image without a log region reads, writes in place, and refuses to allocate", async () => {
    const b = await baseImage();
    pokeBoth(b, 68, (v, at) => v.setUint32(at, 0, true));
    fixChecksums(b);
    const img = await openImage(new MemoryBackend(b.slice()), { format: "vhdx" });
    await img.write(MiB + 200, new Uint8Array(100).fill(1));
    expect((await img.read(MiB + 200, 100)).every((x) => x === 1)).toBe(true);
    await expect(img.write(7 * MiB, new Uint8Array(100).fill(2))).rejects.toMatchObject({
      code: "ERR_UNSUPPORTED_FEATURE",
      message: expect.stringMatching(/no log region/),
    });
    await img.close();
  });

  it("region table: signature, entry count, placement, overlaps, duplicates, unknown required regions", async () => {
    const entry = (i: number) => 16 + i * 32;
    const cases: Array<[(v: DataView, at: number) => void, RegExp, string?]> = [
      [(v, at) => v.setUint8(at, 0x52), /region table 1 has signature 'Regi' instead of 'regi'/],
      [(v, at) => v.setUint32(at + 8, 2048, true), /has 2048 entries, more than the limit of 2047/],
      [(v, at) => v.setUint32(at + entry(0) + 16, BAT + 4096, true), /BAT region at 2101248, which is not a multiple of 1 MiB/],
      [(v, at) => v.setUint32(at + entry(0) + 24, 4096, true), /length of 4096, which is not a multiple of 1 MiB/],
      [(v, at) => v.setUint32(at + entry(1) + 16, BAT, true), /places the metadata region .* over the BAT region/],
      [(v, at) => v.setUint32(at + entry(0) + 16, LOG, true), /places the BAT region .* over the log/],
      [(v, at) => v.setUint32(at + entry(0) + 20, 0x40000000, true), /past 2\^53/],
      [
        (v, at) => {
          for (let i = 0; i < 16; i++) v.setUint8(at + entry(1) + i, v.getUint8(at + entry(0) + i));
          v.setUint32(at + entry(1) + 16, 5 * MiB, true);
        },
        /lists the BAT region twice/,
      ],
      [(v, at) => v.setUint32(at + 8, 1, true), /has no metadata region/],
      [
        (v, at) => {
          v.setUint32(at + 8, 3, true);
          v.setUint32(at + entry(2), 0x12345678, true);
          v.setUint32(at + entry(2) + 16, 6 * MiB, true);
          v.setUint32(at + entry(2) + 24, MiB, true);
          v.setUint32(at + entry(2) + 28, 1, true);
        },
        /required region \{12345678-0000-0000-0000-000000000000\} that vdisk does not know/,
        "ERR_UNSUPPORTED_FEATURE",
      ],
    ];
    for (const [poke, msg, code] of cases) {
      const b = await baseImage();
      pokeBoth(b, 0, poke, [RT1, RT2]);
      fixChecksums(b);
      await expectOpenError(b, msg, code);
    }
  });

  it("a bad first region table falls back to the second; check -r all copies it back", async () => {
    const b = await baseImage();
    b[RT1 + 1000] ^= 1;
    const img = await openImage(new MemoryBackend(b.slice()), { format: "vhdx" });
    expect((await img.check()).messages.join()).toMatch(/region table 1 has a bad checksum/);
    expect((await img.check("all")).corruptionsFixed).toBe(1);
    expect((await img.check()).corruptions).toBe(0);
    await img.close();
  });

  it("metadata: signature, counts, item bounds, unknown required items, values", async () => {
    const entry = (i: number) => META + 32 + i * 32;
    const cases: Array<[(v: DataView, item: (i: number) => number) => void, RegExp, string?]> = [
      [(v) => v.setUint8(META, 0x4d), /metadata table has signature 'Metadata' instead of 'metadata'/],
      [(v) => v.setUint16(META + 10, 2048, true), /metadata table has 2048 entries, more than the limit of 2047/],
      [(v) => v.setUint32(entry(1) + 16, 100, true), /metadata virtual disk size \(8 bytes at 100\) lies outside the item area/],
      [(v) => v.setUint32(entry(1) + 20, 2 * MiB, true), /metadata virtual disk size is 2 MiB, more than the limit of 1 MiB/],
      [(v) => v.setUint32(entry(0) + 20, 4, true), /file parameters is 4 bytes, less than the 8 it needs/],
      [(v) => v.setUint32(entry(2) + 16, 65536 + 8, true), /page 83 data overlaps/],
      [(v) => v.setUint16(META + 10, 4, true), /has no physical sector size item/],
      [
        (v) => {
          v.setUint16(META + 10, 6, true);
          v.setUint32(entry(5), 0xabcdef01, true);
          v.setUint32(entry(5) + 16, 65536 + 64, true);
          v.setUint32(entry(5) + 20, 8, true);
          v.setUint32(entry(5) + 24, 4, true);
        },
        /required item \{abcdef01-0000-0000-0000-000000000000\} that vdisk does not know/,
        "ERR_UNSUPPORTED_FEATURE",
      ],
      [(v, item) => v.setUint32(item(0), 3 * MiB, true), /block size 3145728 is not a power of two between 1 MiB and 256 MiB/],
      [(v, item) => v.setUint32(item(0), 512 * MiB, true), /block size 536870912 is not a power of two between 1 MiB and 256 MiB/],
      [(v, item) => v.setUint32(item(0), 0, true), /block size 0 /],
      [(v, item) => v.setUint32(item(3), 1024, true), /logical sector size 1024 is neither 512 nor 4096/],
      [(v, item) => v.setUint32(item(4), 520, true), /physical sector size 520 is neither 512 nor 4096/],
      [(v, item) => v.setUint32(item(1) + 4, 0x4001, true), /virtual disk size of 64 TiB is more|exceeds the VHDX limit of 64 TiB/, "ERR_LIMIT_EXCEEDED"],
      [(v, item) => v.setUint32(item(1) + 4, 0x400000, true), /exceeds 2\^53|exceeds the VHDX limit/, "ERR_LIMIT_EXCEEDED"],
      [(v, item) => v.setUint32(item(1), 8 * MiB + 100, true), /virtual disk size 8388708 is not a multiple of the 512-byte logical sector/],
      [(v, item) => v.setUint32(item(0) + 4, 2, true), /differencing image but has no parent locator/],
      [(v, item) => v.setUint32(item(1) + 4, 50, true), /BAT region of 1 MiB is too small for the 204858 entries a 200 GiB disk needs/],
    ];
    for (const [poke, msg, code] of cases) {
      const b = await baseImage();
      poke(dv(b), (i) => META + dv(b).getUint32(entry(i) + 16, true));
      await expectOpenError(b, msg, code);
    }
  });

  it("parent locator entries outside the item are refused", async () => {
    const parent = new MemoryBackend(new Uint8Array(0), { name: "p.vhdx" });
    await (await createImage(parent, { format: "vhdx", size: 4 * MiB })).close();
    const opener = async () => new MemoryBackend(parent.bytes(), { name: "p.vhdx", readOnly: true });
    const child = new MemoryBackend(new Uint8Array(0), { name: "c.vhdx" });
    await (await createImage(child, { format: "vhdx", backingFile: "p.vhdx", openFile: opener, backing: "any" })).close();
    const b = child.bytes().slice();
    const locatorEntry = META + 32 + 5 * 32;
    const at = META + dv(b).getUint32(locatorEntry + 16, true);
    dv(b).setUint16(at + 18, 300, true);
    let e = await tryOpen(b, true);
    expect((e as Error).message).toMatch(/parent locator claims 300 key\/value entries/);
    const c = child.bytes().slice();
    dv(c).setUint32(at + 20 + 4, 0x10000, true); // first value offset past the item
    e = await tryOpen(c, true);
    expect((e as Error).message).toMatch(/parent locator value 0 \(\d+ bytes at 65536\) lies outside/);
  });

  it("BAT entries: past the end of the file, into the header section or the metadata, invalid states", async () => {
    // A written block is at BAT entry 1 (block 1); block 0 stays ZERO.
    const setEntry = (b: Uint8Array, i: number, lo: number, hi = 0) => {
      dv(b).setUint32(BAT + i * 8, lo, true);
      dv(b).setUint32(BAT + i * 8 + 4, hi, true);
    };
    // Past the end: read-only and read-write opens work; reading the block fails clearly; check counts it.
    let b = await baseImage();
    setEntry(b, 1, (100 << 20) | 6);
    for (const readOnly of [true, false]) {
      const img = await openImage(new MemoryBackend(b.slice(), { readOnly }), { format: "vhdx", readOnly });
      await expect(img.read(MiB, 10)).rejects.toThrow(/BAT entry 1 block ends at \d+, past the end of the file .* truncated/);
      const c = await img.check();
      expect(c.corruptions).toBe(1);
      await img.close();
    }
    // Into the header section or the metadata region: reading fails; a writable open is refused.
    for (const [lo, msg] of [
      [(0 << 20) | 6, /inside the header section/],
      [(3 << 20) | 6, /over the metadata region/],
    ] as const) {
      b = await baseImage();
      setEntry(b, 1, lo);
      expect((await tryOpen(b, false)) as Error).toMatchObject({ message: expect.stringMatching(/refusing to open it read-write/) });
      const img = await openImage(new MemoryBackend(b.slice(), { readOnly: true }), { format: "vhdx", readOnly: true });
      expect((await img.check()).messages.join()).toMatch(msg);
      await img.close();
    }
    for (const [lo, msg] of [
      [4, /BAT entry 0 has invalid state 4/],
      [7 | (8 << 20), /BAT entry 0 is PARTIALLY_PRESENT in an image without a parent/],
    ] as const) {
      b = await baseImage();
      setEntry(b, 0, lo);
      const img = await openImage(new MemoryBackend(b.slice(), { readOnly: true }), { format: "vhdx", readOnly: true });
      await expect(img.read(0, 10)).rejects.toThrow(msg);
      expect((await img.check()).corruptions).toBeGreaterThan(0);
      await img.close();
    }
    // An offset past 2^53.
    b = await baseImage();
    setEntry(b, 1, 6, 0x7fffffff);
    const img = await openImage(new MemoryBackend(b.slice(), { readOnly: true }), { format: "vhdx", readOnly: true });
    await expect(img.read(MiB, 10)).rejects.toThrow(/past 2\^53/);
    await img.close();
  });

  it("a truncated BAT and a file cut inside the metadata give clear errors", async () => {
    const b = await baseImage();
    await expectOpenError(b.slice(0, META + 1000), /metadata table at offset 3145728 \(65536 bytes\) extends past the end of the file/);
    await expectOpenError(b.slice(0, BAT + 100), /metadata table .* extends past the end of the file|BAT .* extends past the end/);
    await expectOpenError(b.slice(0, 100), /file signature|no valid header/);
  });
});

describe("vhdx bad logs", () => {
  /** An image whose log holds one entry that was never replayed (written by vdisk, then the file cut there). */
  async function dirtyImage(): Promise<Uint8Array> {
    const mem = new MemoryBackend();
    const img = await createImage(mem, { format: "vhdx", size: 8 * MiB, options: "block_size=1M" });
    await img.close();
    const snaps: Uint8Array[] = [];
    const rec = new MemoryBackend(mem.bytes().slice());
    const orig = rec.flush.bind(rec);
    rec.flush = async () => {
      await orig();
      snaps.push(rec.bytes().slice());
    };
    const w = await openImage(rec, { format: "vhdx" });
    await w.write(5 * MiB, new Uint8Array(4096).fill(0x77));
    await w.close();
    // The snapshot right after the log entry reached the disk (before it was applied).
    for (const s of snaps) {
      const h = [H1, H2].map((o) => ({ seq: dv(s).getUint32(o + 8, true), guid: s.subarray(o + 48, o + 64) }));
      const cur = h[0].seq > h[1].seq ? h[0] : h[1];
      const batEntry = dv(s).getUint32(BAT + 5 * 8, true) & 7;
      if (cur.guid.some((x) => x !== 0) && batEntry !== 6 && s[LOG] === 0x6c) return s;
    }
    throw new Error("no dirty snapshot");
  }

  it("the dirty snapshot replays to the written data, read-only (memory) and read-write", async () => {
    const b = await dirtyImage();
    for (const readOnly of [true, false]) {
      const img = await openImage(new MemoryBackend(b.slice(), { readOnly }), { format: "vhdx", readOnly });
      expect((await img.read(5 * MiB, 4096)).every((x) => x === 0x77)).toBe(true);
      await img.close();
    }
  });

  it("a log entry with a bad checksum is not replayed (the write is lost, the image stays consistent)", async () => {
    const b = await dirtyImage();
    b[LOG + 4096 + 100] ^= 1;
    const img = await openImage(new MemoryBackend(b.slice()), { format: "vhdx" });
    expect((await img.read(5 * MiB, 4096)).every((x) => x === 0)).toBe(true);
    expect((await img.check()).corruptions).toBe(0);
    await img.close();
  });

  it("log entries that expect a longer file, write into the header section, or are huge are refused", async () => {
    const fix = (b: Uint8Array) => setCrc(b, LOG, dv(b).getUint32(LOG + 8, true));
    let b = await dirtyImage();
    dv(b).setUint32(LOG + 48, 200 * MiB, true); // FlushedFileOffset
    fix(b);
    await expectOpenError(b, /the log expects a file of at least 209715200 bytes but it has \d+; the image has probably been truncated/);
    b = await dirtyImage();
    dv(b).setUint32(LOG + 64 + 16, 64 * 1024, true); // first descriptor's file offset: header 1
    fix(b);
    await expectOpenError(b, /log entry 1 writes to offset 65536, inside the header section/);
    b = await dirtyImage();
    dv(b).setUint32(LOG + 56, 0, true);
    dv(b).setUint32(LOG + 60, 0x4000, true); // LastFileOffset 64 TiB
    fix(b);
    await expectOpenError(b, /the log would grow the .* file to 64 TiB/, "ERR_LIMIT_EXCEEDED");
  });

  it("a log region past the end of the file is refused when the log is dirty", async () => {
    const b = await dirtyImage();
    pokeBoth(b, 72, (v, at) => v.setUint32(at, 64 * MiB, true));
    fixChecksums(b);
    await expectOpenError(b, /log at 67108864 \(1 MiB\) extends past the end of the/);
  });
});

describe("vhdx random damage", () => {
  function rng(seed: number): () => number {
    let a = seed >>> 0;
    return () => {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  it("random byte mutations of the metadata areas give an ImageError or a readable image", async () => {
    const base = await baseImage("block_size=1M", 6 * MiB);
    const r = rng(99);
    const hot = [H1, H2, RT1, RT2, LOG, BAT, META, META + 65536];
    let errors = 0;
    for (let n = 0; n < 60; n++) {
      const b = base.slice();
      const flips = 1 + Math.floor(r() * 8);
      for (let i = 0; i < flips; i++) {
        const at = hot[Math.floor(r() * hot.length)] + Math.floor(r() * (r() < 0.7 ? 96 : 4096));
        b[at] = Math.floor(r() * 256);
      }
      if (r() < 0.7) fixChecksums(b);
      for (const readOnly of [true, false]) {
        const e = await tryOpen(b, readOnly);
        if (e !== undefined) {
          errors++;
          expect(isImageError(e), `mutation ${n}: ${String(e)} ${(e as Error).stack}`).toBe(true);
        }
      }
    }
    expect(errors).toBeGreaterThan(0);
  }, 60_000);

  it("truncations at random lengths give an ImageError or a readable image", async () => {
    const base = await baseImage("block_size=1M", 6 * MiB);
    const r = rng(7);
    for (let n = 0; n < 40; n++) {
      const len = Math.floor(r() * base.length);
      for (const readOnly of [true, false]) {
        const e = await tryOpen(base.slice(0, len), readOnly);
        if (e !== undefined) expect(isImageError(e), `length ${len}: ${String(e)}`).toBe(true);
      }
    }
  }, 60_000);
});

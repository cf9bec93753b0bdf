/**
 * FVD under bad input: truncated and mutated headers, bitmaps, tables and journals give
 * ImageErrors naming the structure — never a hang, a crash or an allocation sized by an
 * unchecked field.
 */
import { describe, expect, it } from "vitest";
import { MemoryBackend, createImage, isImageError, openImage } from "../../src/index.js";
import type { IoBackend } from "../../src/io/backend.js";
import { seeded } from "./gow-fvd-helpers.js";

const KiB = 1024;
const MiB = 1 << 20;
const base = new Uint8Array(512 * KiB).fill(0x42);
const opener = async (): Promise<IoBackend> => new MemoryBackend(base.slice(), { name: "base.raw" });

/** A compact image over a base, crashed after flushed writes: header, bitmap, table, journal all in use. */
async function sample(): Promise<Uint8Array> {
  const mem = new MemoryBackend(new Uint8Array(0), { name: "t.fvd" });
  const img = await createImage(mem, {
    format: "fvd",
    size: MiB,
    options: "compact_image=on,chunk_size=4k,storage_grow_unit=16k,journal_size=8k",
    backingFile: "base.raw",
    backingFormat: "raw",
    backing: "any",
    openFile: opener,
  });
  for (const off of [0, 100 * KiB, 600 * KiB, 3000]) await img.write(off, new Uint8Array(5000).fill(off & 0xff || 1));
  await img.flush();
  // Left without close: clean_shutdown is 0 and the journal holds the records.
  return mem.bytes().slice();
}

// Layout of the sample: header 8192, bitmap 4096 at 8192, table 4096 at 12288, journal 8192 at 16384.
const BITMAP = 8192;
const TABLE = 12288;
const JOURNAL = 16384;

async function tryAll(bytes: Uint8Array, readOnly = true, format: string | undefined = "fvd"): Promise<string> {
  try {
    const img = await openImage(new MemoryBackend(bytes), { format, readOnly, backing: "any", openFile: opener });
    const n = Math.min(img.size, MiB);
    await img.read(0, n);
    for await (const e of img.extents(0, n)) void e;
    await img.check();
    await img.info();
    if (!readOnly) await img.write(0, new Uint8Array(700).fill(9));
    await img.close();
    return "ok";
  } catch (e) {
    if (!isImageError(e)) throw e;
    return e.code;
  }
}

function set32(b: Uint8Array, at: number, v: number): Uint8Array {
  new DataView(b.buffer, b.byteOffset).setUint32(at, v >>> 0, true);
  return b;
}

function set64(b: Uint8Array, at: number, v: bigint): Uint8Array {
  new DataView(b.buffer, b.byteOffset).setBigUint64(at, BigInt.asUintN(64, v), true);
  return b;
}

describe("fvd bad input", () => {
  it("the sample replays cleanly (the baseline the mutations start from)", async () => {
    expect(await tryAll(await sample(), false)).toBe("ok");
  });

  it("truncated files give ImageErrors", { timeout: 20000 }, async () => {
    const f = await sample();
    for (const len of [0, 4, 8, 100, 4335, 4336, 8191, BITMAP + 100, TABLE + 10, JOURNAL + 600, JOURNAL + 8191]) {
      expect(await tryAll(f.slice(0, len)), `length ${len}`).toMatch(/^ERR_/);
    }
    // Truncating only data leaves a readable image with a warning; check reports the short data.
    const img = await openImage(new MemoryBackend(f.slice(0, JOURNAL + 8192 + 4096)), { format: "fvd", readOnly: true, backing: "any", openFile: opener });
    expect((await img.check()).corruptions).toBeGreaterThan(0);
  });

  it("header fields out of range give errors naming the field, before any large allocation", async () => {
    const f = await sample();
    const cases: Array<[string, (b: Uint8Array) => Uint8Array, RegExp]> = [
      ["version 2", (b) => set32(b, 4, 2), /unsupported FVD version 2/],
      ["odd disk size", (b) => set64(b, 0x0c, 1000n), /virtual_disk_size/],
      ["negative disk size", (b) => set64(b, 0x0c, -512n), /virtual_disk_size/],
      ["huge bitmap", (b) => set64(set64(b, 0x42c, 1n << 50n), 0x43c, 1n << 40n), /bitmap|metadata/],
      ["block size 100", (b) => set32(b, 0x444, 100), /block_size/],
      ["chunk size 0", (b) => set64(b, 0x8ac, 0n), /chunk_size/],
      ["table past metadata", (b) => set64(b, 0x8a4, 1n << 40n), /table/],
      ["journal overlaps table", (b) => set64(b, 0x10bc, BigInt(TABLE)), /overlaps/],
      ["huge journal", (b) => set64(b, 0x10c4, 1n << 40n), /journal/],
      ["metadata past the file", (b) => set64(b, 0x14, 1n << 40n), /metadata/],
      ["disk of 2^50 with a 4 KiB table", (b) => set64(b, 0x0c, 1n << 50n), /lookup table|limit/],
    ];
    for (const [label, mutate, message] of cases) {
      const e = await openImage(new MemoryBackend(mutate(f.slice())), { format: "fvd", readOnly: true, backing: "any", openFile: opener }).then(
        () => undefined,
        (x: unknown) => x,
      );
      expect(isImageError(e), `${label}: ${String(e)}`).toBe(true);
      expect((e as Error).message, label).toMatch(message);
    }
  });

  it("bad table entries read as clean errors and check reports them", async () => {
    const f = await sample();
    // A clean copy: the journal replayed and the table written home.
    const mem = new MemoryBackend(f.slice());
    await (await openImage(mem, { format: "fvd", backing: "any", openFile: opener })).close();
    const g = mem.bytes().slice();
    const dup = g.slice();
    set32(dup, TABLE + 4 * 200, new DataView(dup.buffer).getUint32(TABLE, true)); // chunk 200 shares chunk 0's
    const img = await openImage(new MemoryBackend(dup), { format: "fvd", readOnly: true, backing: "any", openFile: opener });
    const c = await img.check();
    expect(c.corruptions).toBe(1);
    expect(c.messages.join()).toMatch(/mapped by chunks 0, 200/);
    const bad = set32(g.slice(), TABLE + 4 * 201, 0x7fffffff);
    const img2 = await openImage(new MemoryBackend(bad), { format: "fvd", readOnly: true, backing: "any", openFile: opener });
    await expect(img2.read(201 * 4096, 10)).rejects.toMatchObject({ code: "ERR_CORRUPT_IMAGE", structure: "table" });
    expect((await img2.check()).corruptions).toBe(1);
  });

  it("bad journal records give clean errors or are skipped with a warning", async () => {
    const f = await sample();
    expect(new DataView(f.buffer).getUint32(JOURNAL, true).toString(16)).toMatch(/b4e6f7ac|3f2ab8ed/);
    const outOfRange = f.slice();
    // A TABLE record for entries past the 256-entry table.
    set32(set32(set32(outOfRange, JOURNAL, 0xb4e6f7ac), JOURNAL + 4, 250), JOURNAL + 8, 10);
    expect(await tryAll(outOfRange)).toBe("ERR_CORRUPT_IMAGE");
    const tooMany = set32(set32(f.slice(), JOURNAL, 0xb4e6f7ac), JOURNAL + 8, 126);
    expect(await tryAll(tooMany)).toBe("ERR_CORRUPT_IMAGE");
    const junk = set32(f.slice(), JOURNAL + 512 * 5, 0xdeadbeef);
    const warnings: string[] = [];
    const img = await openImage(new MemoryBackend(junk), { format: "fvd", readOnly: true, backing: "any", openFile: opener, warn: (m) => warnings.push(m) });
    expect(warnings.join()).toMatch(/unknown record type/);
    await img.close();
    const farBitmap = set64(set32(set32(f.slice(), JOURNAL + 512 * 6, 0x3f2ab8ed), JOURNAL + 512 * 6 + 4, 8), JOURNAL + 512 * 6 + 8, 1n << 40n);
    expect(await tryAll(farBitmap, false)).toBe("ok"); // past the base range: ignored
  });

  it("random mutations of every metadata region never escape as non-ImageErrors", { timeout: 60000 }, async () => {
    const f = await sample();
    const r = seeded(7);
    const regions: Array<[number, number]> = [
      [0, 4336],
      [BITMAP, BITMAP + 128],
      [TABLE, TABLE + 1100],
      [JOURNAL, JOURNAL + 2048],
    ];
    const outcomes = new Map<string, number>();
    for (let i = 0; i < 150; i++) {
      const m = f.slice();
      const [lo, hi] = regions[i % regions.length];
      const flips = 1 + Math.floor(r() * 6);
      for (let k = 0; k < flips; k++) m[lo + Math.floor(r() * (hi - lo))] = Math.floor(r() * 256);
      const code = await tryAll(m, r() < 0.5, r() < 0.2 ? undefined : "fvd");
      outcomes.set(code, (outcomes.get(code) ?? 0) + 1);
    }
    // Both outcomes occur: the mutations reach the checks and also leave usable images.
    expect(outcomes.get("ok") ?? 0).toBeGreaterThan(10);
    expect([...outcomes.keys()].filter((k) => k !== "ok").length).toBeGreaterThan(0);
  });
});

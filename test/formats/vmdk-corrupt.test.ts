/**
 * Bad VMDK input: the header pokes of QEMU's iotest 059 (with QEMU's messages), broken
 * descriptors, directories and tables pointing outside the file, bad grain markers and
 * footers, and seeded random mutations and truncations. Every case must end in an ImageError
 * (or a clean open), never another exception, a hang or a huge allocation.
 */
import { describe, expect, it } from "vitest";
import { isImageError, type BlockDevice } from "../../src/index.js";
import { pattern, rng } from "./image-model.js";
import { MemoryDir, gteOf, le32, le64, poke } from "./vmdk-helpers.js";

const MIB = 1 << 20;
const GRAIN = 65536;

async function made(size: number, options = "", fill?: (img: BlockDevice) => Promise<void>): Promise<Uint8Array> {
  const dir = new MemoryDir();
  const img = await dir.create("t.vmdk", size, options);
  if (fill) await fill(img);
  await img.close();
  return dir.bytes("t.vmdk").slice();
}

function openBytes(bytes: Uint8Array, readOnly = true, extra: Record<string, Uint8Array | string> = {}): Promise<BlockDevice> {
  const dir = new MemoryDir();
  dir.put("t.vmdk", bytes);
  for (const [k, v] of Object.entries(extra)) dir.put(k, v);
  return dir.openImage("t.vmdk", { readOnly, format: "vmdk" });
}

function u64le(n: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < 8; i++) out.push(Math.floor(n / 2 ** (8 * i)) & 0xff);
  return out;
}

describe("vmdk header pokes (iotests 059)", () => {
  it("granularity of all ones: Invalid granularity", async () => {
    const b = await made(64 * MIB);
    poke(b, 20, Array(8).fill(0xff));
    await expect(openBytes(b)).rejects.toThrow("Invalid granularity, image may be corrupt");
  });

  it("4294967295 GTEs per grain table: L2 table size too big", async () => {
    const b = await made(64 * MIB);
    poke(b, 44, [0xff, 0xff, 0xff, 0xff]);
    await expect(openBytes(b)).rejects.toThrow("L2 table size too big");
  });

  it("huge capacity with one GTE per table: L1 size too big, refused before any allocation", async () => {
    const b = await made(64 * MIB);
    poke(b, 16, [0xff, 0xff, 0xff, 0xff]);
    poke(b, 44, [0x01, 0x00, 0x00, 0x00]);
    await expect(openBytes(b)).rejects.toMatchObject({ code: "ERR_LIMIT_EXCEEDED", message: expect.stringContaining("L1 size too big") });
  });

  it("a 100G image truncated to 10 MiB: File truncated, expecting at least 13172736 bytes", async () => {
    const b = await made(100 * 1024 * MIB);
    expect(b.length).toBe(13172736);
    await expect(openBytes(b.subarray(0, 10 * MIB))).rejects.toThrow("File truncated, expecting at least 13172736 bytes");
  });

  it("a VMFS extent line with an offset: Invalid extent line", async () => {
    const desc = '# Disk DescriptorFile\nversion=1\nCID=1\nparentCID=ffffffff\ncreateType="vmfs"\nRW 12582912 VMFS "dummy.vmdk" 1\n';
    await expect(openBytes(new TextEncoder().encode(desc))).rejects.toThrow('Invalid extent line: RW 12582912 VMFS "dummy.vmdk" 1');
  });
});

describe("vmdk bad headers, descriptors and tables", () => {
  it("refuses unknown versions, COWD extents and writable version-3 sparse files", async () => {
    const b = await made(MIB);
    const v4 = b.slice();
    poke(v4, 4, [4, 0, 0, 0]);
    await expect(openBytes(v4)).rejects.toMatchObject({ code: "ERR_UNSUPPORTED_FEATURE", message: expect.stringContaining("Unsupported VMDK version 4") });
    const v3 = b.slice();
    poke(v3, 4, [3, 0, 0, 0]);
    await expect(openBytes(v3, false)).rejects.toThrow("VMDK version 3 must be read only");
    await (await openBytes(v3, true)).close();
    const cowd = b.slice();
    poke(cowd, 0, [0x43, 0x4f, 0x57, 0x44]);
    await expect(openBytes(cowd)).rejects.toMatchObject({ code: "ERR_UNSUPPORTED_FEATURE" });
  });

  it("refuses descriptors without createType, with unsupported extent types, or too large", async () => {
    const enc = (s: string) => new TextEncoder().encode(s);
    await expect(openBytes(enc("# Disk DescriptorFile\nversion=1\nCID=1\n"))).rejects.toThrow("invalid VMDK image descriptor");
    await expect(openBytes(enc('# Disk DescriptorFile\nversion=1\ncreateType="seSparse"\nRW 100 SESPARSE "x.vmdk"\n'), true, { "x.vmdk": "" })).rejects.toThrow(
      "Unsupported extent type 'SESPARSE'",
    );
    const big = "# Disk DescriptorFile\nversion=1\n" + "#".repeat(MIB) + "\n";
    await expect(openBytes(enc(big))).rejects.toMatchObject({ code: "ERR_LIMIT_EXCEEDED" });
    const many = '# Disk DescriptorFile\nversion=1\ncreateType="custom"\n' + "RW 1 ZERO\n".repeat(32769);
    await expect(openBytes(enc(many))).rejects.toThrow("more than 32768 extents");
    await expect(openBytes(enc('# Disk DescriptorFile\nversion=1\ncreateType="monolithicFlat"\nRW 100 FLAT "missing.vmdk" 0\n'))).rejects.toMatchObject({
      code: "ERR_IO",
    });
  });

  it("a grain directory past the end of the file is refused at open", async () => {
    const b = await made(MIB);
    poke(b, 56, u64le(1e9));
    await expect(openBytes(b)).rejects.toMatchObject({ code: "ERR_CORRUPT_IMAGE", message: expect.stringContaining("grain directory") });
  });

  it("a grain table past the end of the file fails reads there and fails the check", async () => {
    const b = await made(MIB, "", (img) => img.write(0, pattern(100, 1)));
    const gd = le64(b, 56) * 512;
    poke(b, gd, [0xff, 0xff, 0xff, 0x00]);
    const img = await openBytes(b);
    await expect(img.read(0, 512)).rejects.toMatchObject({ code: "ERR_CORRUPT_IMAGE" });
    const c = await img.check();
    expect([c.corruptions, c.checkErrors]).toEqual([1, 1]);
    expect(c.messages[0]).toMatch(/could not get cluster_offset for sector 0/);
    await img.close();
  });

  it("a GTE past the end of the file fails the check as QEMU's does ('points after EOF')", async () => {
    const b = await made(MIB, "", (img) => img.write(3 * GRAIN, pattern(100, 1)));
    const gt = le32(b, le64(b, 56) * 512) * 512;
    poke(b, gt + 5 * 4, [0x00, 0x00, 0x10, 0x00]);
    const img = await openBytes(b, false);
    const c = await img.check();
    expect([c.corruptions, c.checkErrors]).toEqual([1, 1]);
    expect(c.messages).toEqual([`ERROR: cluster offset for sector ${5 * 128} points after EOF`]);
    await img.close();
  });

  it("check -r all clears a GTE past the end of the file in both grain tables (qemu-img cannot)", async () => {
    const b = await made(MIB, "", (img) => img.write(3 * GRAIN, pattern(100, 1)));
    const gt = le32(b, le64(b, 56) * 512) * 512;
    const rgt = le32(b, le64(b, 48) * 512) * 512;
    poke(b, gt + 5 * 4, [0x00, 0x00, 0x10, 0x00]);
    poke(b, rgt + 5 * 4, [0x00, 0x00, 0x10, 0x00]);
    const dir = new MemoryDir();
    dir.put("t.vmdk", b);
    const img = await dir.openImage("t.vmdk");
    const fixed = await img.check("all");
    expect([fixed.corruptions, fixed.checkErrors, fixed.corruptionsFixed]).toEqual([0, 0, 1]);
    expect(Array.from(await img.read(5 * GRAIN, 4))).toEqual([0, 0, 0, 0]);
    expect(await img.read(3 * GRAIN, 100)).toEqual(pattern(100, 1));
    await img.close();
    const after = dir.bytes("t.vmdk");
    expect([le32(after, gt + 5 * 4), le32(after, rgt + 5 * 4)]).toEqual([0, 0]);
    const again = await openBytes(after);
    expect((await again.check()).corruptions).toBe(0);
  });

  it("a GTE pointing into the metadata is read but never overwritten: writes relocate the grain", async () => {
    const b = await made(MIB);
    const gt = le32(b, le64(b, 56) * 512) * 512;
    poke(b, gt, [0x01, 0x00, 0x00, 0x00]); // grain 0 -> sector 1, the descriptor
    const dir = new MemoryDir();
    dir.put("t.vmdk", b);
    const img = await dir.openImage("t.vmdk");
    await img.write(0, pattern(512, 2));
    await img.close();
    const after = dir.bytes("t.vmdk");
    expect(gteOf(after, 0)).toBeGreaterThanOrEqual(le64(after, 64));
    expect(new TextDecoder().decode(after.subarray(512, 533))).toBe("# Disk DescriptorFile");
  });

  it("bad grain markers and footers give clean errors", async () => {
    const b = await made(MIB, "subformat=streamOptimized", (img) => img.write(0, pattern(GRAIN, 1)));
    const at = gteOf(b, 0) * 512;
    const badSize = b.slice();
    poke(badSize, at + 8, [0xff, 0xff, 0xff, 0x7f]);
    let img = await openBytes(badSize);
    await expect(img.read(0, 512)).rejects.toThrow(/grain marker at offset \d+ gives a compressed size/);
    await img.close();
    const badData = b.slice();
    badData.fill(0xff, at + 12, at + 40);
    img = await openBytes(badData);
    await expect(img.read(0, 512)).rejects.toThrow(/does not decompress/);
    await img.close();
    const atEnd = b.slice();
    poke(atEnd, 56, Array(8).fill(0xff)); // GD_AT_END, but no footer
    await expect(openBytes(atEnd)).rejects.toThrow("Invalid footer");
  });
});

describe("vmdk random mutations and truncations", () => {
  async function exercise(bytes: Uint8Array, readOnly: boolean): Promise<void> {
    let img: BlockDevice | undefined;
    try {
      img = await openBytes(bytes, readOnly);
      const n = Math.min(img.size, 4 * MIB);
      if (n > 0) await img.read(0, n);
      for await (const _ of img.extents(0, n)) void _;
      await img.check();
      if (!readOnly && n > 0) {
        await img.write(0, pattern(Math.min(n, 3000), 1));
        await img.writeZeroes(Math.floor(n / 2), Math.min(n - Math.floor(n / 2), 2 * GRAIN));
        await img.flush();
      }
    } catch (e) {
      if (!isImageError(e)) throw e;
    } finally {
      await img?.close().catch((e: unknown) => {
        if (!isImageError(e)) throw e;
      });
    }
  }

  for (const [label, options] of [["monolithicSparse", "zeroed_grain=on"], ["streamOptimized", "subformat=streamOptimized"]] as const) {
    it(`${label}: mutated metadata and truncated files give ImageErrors or read cleanly`, { timeout: 60_000 }, async () => {
      const base = await made(2 * MIB, options, async (img) => {
        for (let g = 0; g < 32; g += 3) await img.write(g * GRAIN + 17, pattern(GRAIN, g));
      });
      const metaEnd = le64(base, 64) * 512;
      const r = rng(label.length);
      const rss0 = process.memoryUsage().rss;
      for (let trial = 0; trial < (label === "streamOptimized" ? 70 : 150); trial++) {
        const b = base.slice();
        const flips = 1 + Math.floor(r() * 6);
        for (let i = 0; i < flips; i++) {
          // Mostly the header and tables; sometimes grain data and markers.
          const at = r() < 0.8 ? Math.floor(r() * metaEnd) : Math.floor(r() * b.length);
          b[at] = r() < 0.3 ? 0xff : Math.floor(r() * 256);
        }
        await exercise(b, trial % 3 === 0 ? false : true);
        await exercise(base.subarray(0, Math.floor(r() * base.length)), true);
      }
      expect(process.memoryUsage().rss - rss0).toBeLessThan(512 * MIB);
    });
  }
});

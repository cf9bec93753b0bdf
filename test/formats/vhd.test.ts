import { describe, expect, it } from "vitest";
import { MemoryBackend, createImage, openImage, type BlockDevice } from "../../src/index.js";
import { vhdCreateSize, vhdGeometryFor } from "../../src/formats/vhd/geometry.js";
import { VhdFooterCodec, encodeVhdFooter } from "../../src/formats/vhd/layout.js";
import { vhdWithBlockSize } from "../helpers/vhd-block-size.js";
import { expectContents, expectExtentsAgree, memoryOpener, pattern, randomOps, rng } from "./image-model.js";

const MIB = 1 << 20;

async function newVhd(size: number, options = ""): Promise<{ img: BlockDevice; mem: MemoryBackend }> {
  const mem = new MemoryBackend(new Uint8Array(0), { name: "t.vhd" });
  const img = await createImage(mem, { format: "vpc", size, options });
  return { img, mem };
}

async function reopen(mem: MemoryBackend, opts: Parameters<typeof openImage>[1] = {}): Promise<BlockDevice> {
  return openImage(new MemoryBackend(mem.bytes().slice(), { name: "t.vhd" }), { format: "vpc", ...opts });
}

describe("VHD geometry", () => {
  // Sizes qemu-img 7.2 `create -f vpc` gives (iotests 146/266 and measured here).
  it.each([
    [1 * MIB, false, 1079296],
    [64 * MIB, false, 67125248],
    [128 * MIB, false, 134250496],
    [4096 * MIB, false, 4295467008],
    [127 * 1024 * MIB, false, 136365219840],
    [2000 * 1024 * MIB, false, 2147483648000],
    [1 * MIB, true, 1048576],
    [2040 * 1024 * MIB, true, 2190433320960],
    [0, false, 0],
  ])("vhdCreateSize(%d, force=%s) gives qemu-img's size %d", (req, force, want) => {
    expect(vhdCreateSize(req, force).size).toBe(want);
  });

  it("vhdCreateSize() refuses more than 2040 GiB", () => {
    expect(() => vhdCreateSize(2041 * 1024 * MIB, true)).toThrow(/2040 GiB/);
  });

  it("vhdGeometryFor() follows the spec's table for small disks", () => {
    // 64 MiB: 131072 sectors → 17 sectors per track, 8 heads (ceil(7710/1024)), 963 cylinders.
    expect(vhdGeometryFor(131072)).toEqual({ cylinders: 963, heads: 8, sectorsPerTrack: 17 });
    expect(vhdGeometryFor(65535 * 16 * 255 + 5)).toEqual({ cylinders: 65535, heads: 16, sectorsPerTrack: 255 });
  });
});

describe("VHD life cycle", () => {
  for (const sub of ["dynamic", "fixed"] as const) {
    it(`a ${sub} VHD reads back random writes, maps them and checks clean after reopen`, async () => {
      const { img, mem } = await newVhd(9 * MIB, `subformat=${sub},force_size=on`);
      expect(img.size).toBe(9 * MIB);
      const model = new Uint8Array(img.size);
      await randomOps(img, model, rng(sub === "fixed" ? 1 : 2), { ops: 60, maxLength: 3 * MIB, zeroShare: 0.2 });
      await expectContents(img, model);
      await expectExtentsAgree(img, model);
      await img.close();
      const again = await reopen(mem);
      await expectContents(again, model);
      const res = await again.check();
      expect(res.corruptions + res.leaks).toBe(0);
      const info = await again.info();
      expect((info.formatSpecific?.data as { subformat: string }).subformat).toBe(sub);
      await again.close();
    });
  }

  it("dynamic VHD writes mark only the sectors written: the rest of the block stays zero", async () => {
    const { img } = await newVhd(8 * MIB, "force_size=on");
    await img.write(2 * MIB + 1024, pattern(512, 3));
    const ext = [];
    for await (const e of img.extents()) ext.push([e.offset, e.length, e.data]);
    expect(ext).toEqual([
      [0, 2 * MIB + 1024, false],
      [2 * MIB + 1024, 512, true],
      [2 * MIB + 1536, 6 * MIB - 1536, false],
    ]);
    // A second write into the same block fills a gap before the first.
    await img.write(2 * MIB, pattern(1024, 4));
    const e0 = await img.blockStatus(2 * MIB, MIB);
    expect([e0.data, e0.length]).toEqual([true, 1536]);
  });

  it("the size rounds up to a CHS geometry unless force_size or azure is given", async () => {
    expect((await newVhd(64 * MIB)).img.size).toBe(67125248);
    expect((await newVhd(64 * MIB, "force_size=on")).img.size).toBe(64 * MIB);
    const az = await newVhd(64 * MIB + 1, "azure=on");
    expect(az.img.size).toBe(65 * MIB);
    expect(az.mem.bytes().length).toBe(65 * MIB + 512);
    const info = (await az.img.info()).formatSpecific!.data as Record<string, unknown>;
    expect(info["azure-ready"]).toBe(true);
    expect(info.subformat).toBe("fixed");
  });

  it("info() lists why Azure would refuse a dynamic, CHS-sized VHD", async () => {
    const { img } = await newVhd(64 * MIB);
    const d = (await img.info()).formatSpecific!.data as Record<string, unknown>;
    expect(d["azure-ready"]).toBe(false);
    const problems = (d["azure-problems"] as string[]).join(" | ");
    expect(problems).toMatch(/only fixed VHDs/);
    expect(problems).toMatch(/not a whole number of MiB/);
  });

  it("create refuses a dynamic VHD over 2040 GiB with a clear error", async () => {
    await expect(newVhd(2041 * 1024 * MIB, "force_size=on")).rejects.toThrow(/exceeds the VHD limit of 2040 GiB/);
  });

  it("a fixed VHD is found by its footer when probing for reading, and refused writable unless named", async () => {
    const { img, mem } = await newVhd(4 * MIB, "subformat=fixed,force_size=on");
    await img.write(0, pattern(4096, 9));
    await img.close();
    const bytes = mem.bytes().slice();
    const ro = await openImage(new MemoryBackend(bytes.slice(), { name: "f.vhd" }), { readOnly: true });
    expect(ro.format).toBe("vpc");
    expect(ro.size).toBe(4 * MIB);
    await expect(openImage(new MemoryBackend(bytes.slice(), { name: "f.vhd" }))).rejects.toMatchObject({
      code: "ERR_OPEN_DENIED",
    });
    const rw = await openImage(new MemoryBackend(bytes.slice(), { name: "f.vhd" }), { format: "vhd" });
    expect(rw.format).toBe("vpc");
  });

  it("force_size_calc picks CHS or current_size as qemu's open option does", async () => {
    const { img, mem } = await newVhd(64 * MIB, "force_size=on");
    await img.close();
    expect((await reopen(mem)).size).toBe(64 * MIB);
    // force_size records the maximum geometry, which always means current_size.
    expect((await reopen(mem, { driverOptions: { force_size_calc: "chs" } })).size).toBe(64 * MIB);
    await expect(reopen(mem, { driverOptions: { force_size_calc: "bogus" } })).rejects.toThrow(/Invalid size calculation mode/);
  });

  it("a corrupted footer checksum is refused; a bad copy at offset 0 falls back to the end footer", async () => {
    const { img, mem } = await newVhd(4 * MIB, "force_size=on");
    await img.write(0, pattern(1000, 1));
    await img.close();
    const bytes = mem.bytes().slice();
    bytes[100] ^= 0xff; // inside the footer copy at offset 0 (reserved area)
    const warnings: string[] = [];
    const ro = await openImage(new MemoryBackend(bytes.slice(), { name: "x" }), { format: "vpc", readOnly: true, warn: (m) => warnings.push(m) });
    expect(warnings.join()).toMatch(/incorrect checksum/);
    expect(await ro.read(0, 1000)).toEqual(pattern(1000, 1));
    expect((await ro.check()).corruptions).toBe(1);
    // A writable open repairs the copy from the end footer.
    warnings.length = 0;
    const rw = await openImage(new MemoryBackend(bytes.slice(), { name: "x" }), { format: "vpc", warn: (m) => warnings.push(m) });
    expect(warnings.join()).toMatch(/Repairing the footer copy at offset 0/);
    const res = await rw.check();
    expect(res.corruptions + res.leaks).toBe(0);
    bytes[bytes.length - 412] ^= 0xff; // and the end footer too
    await expect(openImage(new MemoryBackend(bytes, { name: "x" }), { format: "vpc" })).rejects.toThrow(/Incorrect header checksum/);
  });
});

describe("VHD block sizes", () => {
  for (const bs of [4096, 512 * 1024, 4 * MIB]) {
    it(`a dynamic VHD with ${bs}-byte blocks reads back random writes after reopen`, async () => {
      const bytes = await vhdWithBlockSize(6 * MIB, bs);
      const mem = new MemoryBackend(bytes, { name: "bs.vhd" });
      const img = await openImage(mem, { format: "vpc" });
      expect((await img.info()).clusterSize).toBe(bs);
      const model = new Uint8Array(img.size);
      await randomOps(img, model, rng(bs), { ops: 40, maxLength: MIB, zeroShare: 0.2 });
      await img.close();
      const again = await reopen(mem);
      await expectContents(again, model);
      await expectExtentsAgree(again, model);
      const res = await again.check();
      expect([res.corruptions, res.leaks]).toEqual([0, 0]);
    });
  }
});

describe("VHD differencing", () => {
  it("create -b makes a differencing VHD that reads through to its parent and writes sector-granular", async () => {
    const base = await newVhd(6 * MIB, "force_size=on");
    const baseModel = new Uint8Array(6 * MIB);
    await randomOps(base.img, baseModel, rng(5), { ops: 20, maxLength: MIB });
    await base.img.close();
    const files = { "base.vhd": base.mem.bytes().slice() };
    const child = new MemoryBackend(new Uint8Array(0), { name: "/images/child.vhd" });
    const img = await createImage(child, {
      format: "vpc",
      backingFile: "base.vhd",
      backing: "same-dir",
      openFile: memoryOpener(files),
    });
    expect(img.size).toBe(6 * MIB);
    await expectContents(img, baseModel);
    const model = baseModel.slice();
    await randomOps(img, model, rng(6), { ops: 40, maxLength: 300000, zeroShare: 0.2 });
    await expectContents(img, model);
    await img.close();
    // Reopen through the policy: the parent is found by its relative locator.
    const again = await openImage(new MemoryBackend(child.bytes().slice(), { name: "/images/child.vhd" }), {
      backing: "same-dir",
      openFile: memoryOpener(files),
    });
    await expectContents(again, model);
    const d = (await again.info()).formatSpecific!.data as Record<string, unknown>;
    expect(d.subformat).toBe("differencing");
    expect(d["parent-names"]).toEqual([
      { source: "W2ru", path: ".\\base.vhd" },
      { source: "W2ku", path: "\\images\\base.vhd" },
      { source: "name", path: "base.vhd" },
    ]);
    expect((await again.check()).corruptions).toBe(0);
    // The library's default policy refuses to follow the parent.
    await expect(openImage(new MemoryBackend(child.bytes().slice(), { name: "/images/child.vhd" }))).rejects.toMatchObject({
      code: "ERR_OPEN_DENIED",
    });
  });

  it("create -b refuses a parent that is not a VHD and a size other than the parent's", async () => {
    const raw = new Uint8Array(MIB);
    const base = await newVhd(MIB, "force_size=on");
    await base.img.close();
    const files = { "base.raw": raw, "base.vhd": base.mem.bytes().slice() };
    const mk = (o: object) =>
      createImage(new MemoryBackend(new Uint8Array(0), { name: "c.vhd" }), { format: "vpc", backing: "any", openFile: memoryOpener(files), ...o });
    await expect(mk({ backingFile: "base.raw", backingFormat: "raw" })).rejects.toThrow(/parent must be a VHD/);
    await expect(mk({ backingFile: "base.vhd", size: 2 * MIB })).rejects.toThrow(/size of its parent/);
  });
});

describe("VHD bad input", () => {
  async function dynamicBytes(): Promise<Uint8Array> {
    const { img, mem } = await newVhd(64 * MIB);
    await img.close();
    return mem.bytes().slice();
  }

  // iotests 088: the dynamic header's block_size (BE u32 at 0x220).
  it.each([
    [[0, 0, 0, 0], "Invalid block size 0"],
    [[0, 0, 0, 0x80], "Invalid block size 128"],
    [[0x12, 0x34, 0x56, 0x78], "Invalid block size 305419896"],
  ])("block size %j is refused with '%s'", async (bytes, msg) => {
    const b = await dynamicBytes();
    b.set(bytes, 0x220);
    await expect(openImage(new MemoryBackend(b), { format: "vpc" })).rejects.toThrow(msg);
  });

  it("a file smaller than a footer gives qemu's 'File too small for a VHD header'", async () => {
    await expect(openImage(new MemoryBackend(new Uint8Array(100)), { format: "vpc" })).rejects.toThrow(
      /File too small for a VHD header/,
    );
  });

  it("a huge Max Table Entries is refused before any allocation", async () => {
    const b = await dynamicBytes();
    new DataView(b.buffer).setUint32(512 + 28, 0x40000001);
    await expect(openImage(new MemoryBackend(b), { format: "vpc" })).rejects.toThrow(
      "Max Table Entries too large (1073741825)",
    );
  });

  it("a footer whose size exceeds 2040 GiB is refused", async () => {
    const b = await dynamicBytes();
    const f = VhdFooterCodec.decode(b);
    const big = encodeVhdFooter({ ...f, currentSize: 3 * 2 ** 40, creatorApp: "win " });
    b.set(big, 0);
    await expect(openImage(new MemoryBackend(b), { format: "vpc" })).rejects.toThrow(/2040 GiB/);
  });
});

/**
 * VMDK life cycle in memory: every subformat against a byte model (random unaligned writes,
 * zero writes, reopen, check), the on-disk bookkeeping (both grain table copies, zeroed
 * grains, grain markers), streams (sequential writes, overwrite refusal, compressed writes),
 * descriptors with FLAT and ZERO extents, parent disks and their CIDs, and create options.
 */
import { describe, expect, it } from "vitest";
import { MemoryBackend, createImage, openImage, type BlockDevice } from "../../src/index.js";
import { convertImage } from "../../src/ops/convert.js";
import { expectContents, expectExtentsAgree, firstDifference, pattern, randomOps, rng } from "./image-model.js";
import { MemoryDir, embeddedDescriptor, gteOf, le32, le64 } from "./vmdk-helpers.js";

const KIB = 1024;
const MIB = 1 << 20;
const GIB = 1 << 30;
const GRAIN = 64 * KIB;

/** Fast byte-array equality (toEqual is slow on big arrays). */
function expectBytes(got: Uint8Array, want: Uint8Array): void {
  expect(got.length).toBe(want.length);
  const at = firstDifference(got, want);
  expect(at, `first differing byte at ${at}`).toBe(-1);
}

async function reopen(dir: MemoryDir, name: string, img?: BlockDevice): Promise<BlockDevice> {
  if (img) await img.close();
  return dir.openImage(name);
}

describe("vmdk monolithicSparse", () => {
  for (const zeroed of [false, true]) {
    it(`reads back random writes and zero writes, reopens and checks clean (zeroed_grain=${zeroed ? "on" : "off"})`, async () => {
      const dir = new MemoryDir();
      let img = await dir.create("t.vmdk", 7 * MIB + 512, `zeroed_grain=${zeroed ? "on" : "off"}`);
      expect(img.size).toBe(7 * MIB + 512);
      const model = new Uint8Array(img.size);
      await randomOps(img, model, rng(zeroed ? 3 : 4), { ops: 60, maxLength: 300 * KIB, zeroShare: 0.25, flushes: true });
      await expectContents(img, model);
      await expectExtentsAgree(img, model);
      img = await reopen(dir, "t.vmdk", img);
      await expectContents(img, model);
      expect((await img.check()).corruptions).toBe(0);
      const b = dir.bytes("t.vmdk");
      expect(String.fromCharCode(...b.subarray(0, 4))).toBe("KDMV");
      expect([le32(b, 4), le32(b, 8)]).toEqual(zeroed ? [2, 7] : [1, 3]);
      await img.close();
    });
  }

  it("appends grains after the metadata, data first, and sets the GTE in both grain tables", async () => {
    const dir = new MemoryDir();
    const img = await dir.create("t.vmdk", 64 * MIB);
    const before = dir.bytes("t.vmdk").length;
    expect(before).toBe(128 * 512); // QEMU's layout: grains start at sector 128
    await img.write(3 * GRAIN + 100, pattern(GRAIN, 1)); // two grains, unaligned
    await img.write(40 * MIB, pattern(10, 2));
    await img.close();
    const b = dir.bytes("t.vmdk");
    expect(gteOf(b, 3)).toBe(128);
    expect(gteOf(b, 4)).toBe(256);
    expect(gteOf(b, (40 * MIB) / GRAIN)).toBe(384);
    for (const g of [3, 4, (40 * MIB) / GRAIN]) expect(gteOf(b, g, 48)).toBe(gteOf(b, g));
    expect(gteOf(b, 5)).toBe(0);
    expect(b.length).toBe(before + 3 * GRAIN);
    const again = await dir.openImage("t.vmdk", { readOnly: true });
    expectBytes(await again.read(3 * GRAIN + 100, GRAIN), pattern(GRAIN, 1));
    expectBytes(await again.read(3 * GRAIN, 100), new Uint8Array(100));
  });

  it("zeroed_grain stores GTE 1 for whole zeroed grains instead of data", async () => {
    const dir = new MemoryDir();
    const img = await dir.create("t.vmdk", 4 * MIB, "zeroed_grain=on");
    await img.write(0, pattern(4 * GRAIN, 3));
    const len = dir.bytes("t.vmdk").length;
    await img.writeZeroes(GRAIN, 2 * GRAIN);
    await img.writeZeroes(3 * GRAIN + 7, 100); // partial: written as zero bytes in place
    expect(dir.bytes("t.vmdk").length).toBe(len);
    const b = dir.bytes("t.vmdk");
    expect([gteOf(b, 1), gteOf(b, 2), gteOf(b, 1, 48)]).toEqual([1, 1, 1]);
    const ext = await img.blockStatus(GRAIN, 2 * GRAIN);
    expect([ext.zero, ext.present]).toEqual([true, true]);
    const expected = pattern(4 * GRAIN, 3);
    expected.fill(0, GRAIN, 3 * GRAIN);
    expected.fill(0, 3 * GRAIN + 7, 3 * GRAIN + 107);
    expectBytes(await img.read(0, 4 * GRAIN), expected);
    // Writing into a zeroed grain allocates it again, zero-filled around the data.
    await img.write(GRAIN + 10, pattern(5, 4));
    expected.set(pattern(5, 4), GRAIN + 10);
    expectBytes(await img.read(0, 4 * GRAIN), expected);
  });

  it("changes the CID on the first write of an open, and only then", async () => {
    const dir = new MemoryDir();
    let img = await dir.create("t.vmdk", MIB);
    await img.close();
    const cid0 = /CID=([0-9a-f]+)/.exec(embeddedDescriptor(dir.bytes("t.vmdk")))![1];
    img = await dir.openImage("t.vmdk");
    await img.read(0, 4096);
    await img.flush();
    expect(/CID=([0-9a-f]+)/.exec(embeddedDescriptor(dir.bytes("t.vmdk")))![1]).toBe(cid0);
    await img.write(0, pattern(512, 5));
    const text = embeddedDescriptor(dir.bytes("t.vmdk"));
    const cid1 = /CID=([0-9a-f]+)/.exec(text)![1];
    expect(cid1).not.toBe(cid0);
    expect(text).toContain("parentCID=ffffffff");
    await img.write(GRAIN, pattern(512, 6));
    expect(/CID=([0-9a-f]+)/.exec(embeddedDescriptor(dir.bytes("t.vmdk")))![1]).toBe(cid1);
    const info = (await img.info()).formatSpecific!.data;
    expect(info.cid).toBe(parseInt(cid1, 16));
  });

  it("an overwrite in place (no allocation) changes the CID too, once per open across flushes", async () => {
    const dir = new MemoryDir();
    let img = await dir.create("t.vmdk", MIB);
    await img.write(0, pattern(GRAIN, 1));
    await img.close();
    const cid0 = /CID=([0-9a-f]+)/.exec(embeddedDescriptor(dir.bytes("t.vmdk")))![1];
    img = await dir.openImage("t.vmdk");
    await img.write(10, pattern(100, 2));
    const cid1 = /CID=([0-9a-f]+)/.exec(embeddedDescriptor(dir.bytes("t.vmdk")))![1];
    expect(cid1).not.toBe(cid0);
    await img.flush();
    await img.write(200, pattern(100, 3));
    expect(/CID=([0-9a-f]+)/.exec(embeddedDescriptor(dir.bytes("t.vmdk")))![1]).toBe(cid1);
    await img.close();
  });

  it("info reports QEMU's format-specific fields", async () => {
    const dir = new MemoryDir();
    const img = await dir.create("t.vmdk", 3 * MIB);
    const info = await img.info();
    expect(info.clusterSize).toBe(GRAIN);
    const d = info.formatSpecific!.data as Record<string, unknown>;
    expect(d["create-type"]).toBe("monolithicSparse");
    expect(d["parent-cid"]).toBe(0xffffffff);
    expect(d.extents).toEqual([{ "virtual-size": 3 * MIB, filename: "t.vmdk", "cluster-size": GRAIN, format: "" }]);
  });
});

describe("vmdk streamOptimized", () => {
  it("sequential writes of any size make a stream that reads back after reopen", async () => {
    const dir = new MemoryDir();
    let img = await dir.create("s.vmdk", 3 * MIB + 1536, "subformat=streamOptimized");
    const model = new Uint8Array(img.size);
    const r = rng(7);
    let pos = 0;
    while (pos < img.size) {
      const n = Math.min(img.size - pos, 1 + Math.floor(r() * 150 * KIB));
      if (r() < 0.3) {
        pos += n; // a hole
        continue;
      }
      const d = r() < 0.2 ? new Uint8Array(n) : pattern(n, pos & 0xff);
      await img.write(pos, d);
      model.set(d, pos);
      pos += n;
    }
    await expectContents(img, model);
    img = await reopen(dir, "s.vmdk", img);
    await expectContents(img, model);
    expect((await img.check()).corruptions).toBe(0);
    const b = dir.bytes("s.vmdk");
    expect([le32(b, 4), le32(b, 8), b[77]]).toEqual([3, 0x30003, 1]);
    expect(b.length % 512).toBe(0);
    // Each GTE points at a grain marker naming the grain's first sector.
    for (let g = 0; g < Math.ceil(img.size / GRAIN); g++) {
      const gte = gteOf(b, g);
      if (gte) expect(le64(b, gte * 512)).toBe(g * 128);
    }
    const info = (await img.info()).formatSpecific!.data as { "create-type": string; extents: Array<{ compressed?: boolean }> };
    expect(info["create-type"]).toBe("streamOptimized");
    expect(info.extents[0].compressed).toBe(true);
    const ext = await img.blockStatus(0, GRAIN);
    if (model.subarray(0, GRAIN).some((x) => x !== 0)) expect(ext.compressed).toBe(true);
    await img.close();
  });

  it("refuses to overwrite a grain already written, with ERR_UNSUPPORTED_FEATURE", async () => {
    const dir = new MemoryDir();
    let img = await dir.create("s.vmdk", MIB, "subformat=streamOptimized");
    await img.write(0, pattern(GRAIN, 1));
    await img.write(GRAIN, pattern(100, 2));
    // Still pending in memory: rewriting it is fine.
    await img.write(GRAIN + 50, pattern(100, 3));
    await img.flush();
    await expect(img.write(10, pattern(10, 4))).rejects.toMatchObject({ code: "ERR_UNSUPPORTED_FEATURE" });
    await expect(img.write(GRAIN + 7, pattern(10, 4))).rejects.toThrow(/cannot be rewritten/);
    img = await reopen(dir, "s.vmdk", img);
    await expect(img.write(0, pattern(GRAIN, 5))).rejects.toMatchObject({ code: "ERR_UNSUPPORTED_FEATURE" });
    await expect(img.writeCompressed(0, pattern(GRAIN, 5))).rejects.toMatchObject({ code: "ERR_UNSUPPORTED_FEATURE" });
    // New grains are still welcome.
    await img.write(5 * GRAIN, pattern(GRAIN, 6));
    const expected = new Uint8Array(6 * GRAIN);
    expected.set(pattern(GRAIN, 1));
    expected.set(pattern(100, 2), GRAIN);
    expected.set(pattern(100, 3), GRAIN + 50);
    expected.set(pattern(GRAIN, 6), 5 * GRAIN);
    expectBytes(await img.read(0, 6 * GRAIN), expected);
    img = await reopen(dir, "s.vmdk", img);
    expectBytes(await img.read(0, 6 * GRAIN), expected);
  });

  it("convert with out-of-order parallel writes still makes a valid stream", async () => {
    const size = 6 * MIB + 512;
    const model = new Uint8Array(size);
    const r = rng(12);
    for (let i = 0; i < 40; i++) {
      const off = Math.floor(r() * (size - 80 * KIB));
      model.set(pattern(1 + Math.floor(r() * 80 * KIB), i), off);
    }
    const src = await createImage(new MemoryBackend(new Uint8Array(0), { name: "src.raw" }), { format: "raw", size });
    await src.write(0, model);
    const dir = new MemoryDir();
    let img = await dir.create("s.vmdk", size, "subformat=streamOptimized");
    await convertImage(src, img, { inOrder: false, parallel: 8, chunkSize: 256 * KIB, targetIsZero: true });
    img = await reopen(dir, "s.vmdk", img);
    await expectContents(img, model);
    await img.close();
  });

  it("pending grains show through even where the grain directory has no table yet", async () => {
    const dir = new MemoryDir();
    await (await dir.create("s.vmdk", MIB, "subformat=streamOptimized")).close();
    const b = dir.bytes("s.vmdk");
    for (const field of [48, 56]) b.fill(0, le64(b, field) * 512, le64(b, field) * 512 + 4); // no GT for grains 0..511
    let img = await dir.openImage("s.vmdk");
    await img.write(3 * GRAIN + 10, pattern(20, 1));
    const expected = new Uint8Array(6 * GRAIN);
    expected.set(pattern(20, 1), 3 * GRAIN + 10);
    expectBytes(await img.read(0, 6 * GRAIN), expected);
    img = await reopen(dir, "s.vmdk", img);
    expectBytes(await img.read(0, 6 * GRAIN), expected);
    expect((await img.check()).corruptions).toBe(0);
    await img.close();
  });

  it("writeCompressed stores whole grains compressed, the short last grain too", async () => {
    const dir = new MemoryDir();
    let img = await dir.create("s.vmdk", 2 * GRAIN + 1024, "subformat=streamOptimized");
    const data = pattern(img.size, 9);
    data.fill(0x5a, 2 * GRAIN); // the short last grain compresses well
    await img.writeCompressed(0, data);
    img = await reopen(dir, "s.vmdk", img);
    expectBytes(await img.read(0, img.size), data);
    const b = dir.bytes("s.vmdk");
    expect(le32(b, gteOf(b, 2) * 512 + 8)).toBeLessThan(100); // the compressed size in the marker
    // writeCompressed on a sparse (not stream) image falls back to plain writes.
    const plain = await dir.create("p.vmdk", 2 * GRAIN);
    await plain.writeCompressed(0, pattern(2 * GRAIN, 1));
    expect(gteOf(dir.bytes("p.vmdk"), 1)).toBe(256);
  });
});

describe("vmdk descriptor files", () => {
  it("twoGbMaxExtentSparse: extents of 2 GiB, writes across extent boundaries, reopen and check", async () => {
    const dir = new MemoryDir();
    const size = 5 * GIB;
    let img = await dir.create("d.vmdk", size, "subformat=twoGbMaxExtentSparse");
    expect([...dir.files.keys()].sort()).toEqual(["d-s001.vmdk", "d-s002.vmdk", "d-s003.vmdk", "d.vmdk"]);
    expect(dir.opens.filter((o) => o.create).map((o) => o.purpose)).toEqual(["extent", "extent", "extent"]);
    const writes: Array<[number, Uint8Array]> = [
      [2 * GIB - 700, pattern(1400, 1)],
      [4 * GIB - GRAIN, pattern(3 * GRAIN, 2)],
      [size - 300, pattern(300, 3)],
      [65024, pattern(1024, 4)],
    ];
    for (const [off, d] of writes) await img.write(off, d);
    img = await reopen(dir, "d.vmdk", img);
    for (const [off, d] of writes) expectBytes(await img.read(off, d.length), d);
    expectBytes(await img.read(3 * GIB, 1000), new Uint8Array(1000));
    expect((await img.check()).corruptions).toBe(0);
    const info = (await img.info()).formatSpecific!.data as { extents: Array<Record<string, unknown>> };
    expect(info.extents.map((e) => [e.filename, e["virtual-size"], e.format])).toEqual([
      ["d-s001.vmdk", 2 * GIB, "SPARSE"],
      ["d-s002.vmdk", 2 * GIB, "SPARSE"],
      ["d-s003.vmdk", GIB, "SPARSE"],
    ]);
    const text = new TextDecoder().decode(dir.bytes("d.vmdk"));
    expect(text).toContain('createType="twoGbMaxExtentSparse"');
    expect(text).toContain('RW 4194304 SPARSE "d-s001.vmdk"\nRW 4194304 SPARSE "d-s002.vmdk"\nRW 2097152 SPARSE "d-s003.vmdk"\n');
    await img.close();
  });

  it("monolithicFlat: a descriptor and a flat extent that holds the guest bytes verbatim", async () => {
    const dir = new MemoryDir();
    let img = await dir.create("f.vmdk", 3 * MIB + 512, "subformat=monolithicFlat,adapter_type=lsilogic");
    expect(dir.bytes("f-flat.vmdk").length).toBe(3 * MIB + 512);
    const model = new Uint8Array(img.size);
    await randomOps(img, model, rng(5), { ops: 30, maxLength: 200 * KIB });
    img = await reopen(dir, "f.vmdk", img);
    await expectContents(img, model);
    expectBytes(dir.bytes("f-flat.vmdk"), model);
    expect((await img.info()).clusterSize).toBeUndefined();
    const text = new TextDecoder().decode(dir.bytes("f.vmdk"));
    expect(text).toContain('RW 6145 FLAT "f-flat.vmdk" 0');
    expect(text).toContain('ddb.adapterType = "lsilogic"');
    expect(text).toContain('ddb.geometry.heads = "255"');
    await img.close();
  });

  it("reads hand-made descriptors with FLAT (offset), ZERO and SPARSE extents; ZERO extents refuse writes", async () => {
    const dir = new MemoryDir();
    const flat = pattern(4 * 512 + MIB, 1);
    dir.put("data.bin", flat);
    const sparse = await dir.create("sp.vmdk", MIB);
    await sparse.write(100, pattern(50, 2));
    await sparse.close();
    dir.put(
      "h.vmdk",
      [
        "# Disk DescriptorFile",
        "version=1",
        "CID=12345678",
        "parentCID=ffffffff",
        'createType="custom"',
        "",
        'RW 2048 FLAT "data.bin" 4',
        "RW 100 ZERO",
        'RDONLY 2048 SPARSE "sp.vmdk"',
        "",
        'ddb.adapterType = "ide"',
      ].join("\r\n"),
    );
    const img = await dir.openImage("h.vmdk");
    expect(img.size).toBe(MIB + 100 * 512 + MIB);
    expectBytes(await img.read(0, MIB), flat.subarray(2048, 2048 + MIB));
    expectBytes(await img.read(MIB, 100 * 512), new Uint8Array(100 * 512));
    expectBytes(await img.read(MIB + 100 * 512 + 100, 50), pattern(50, 2));
    // The flat extent is written in place; the zero extent cannot be written.
    await img.write(10, pattern(10, 3));
    expectBytes(dir.bytes("data.bin").subarray(2048 + 10, 2048 + 20), pattern(10, 3));
    await expect(img.write(MIB + 512, pattern(10, 4))).rejects.toMatchObject({ code: "ERR_UNSUPPORTED_FEATURE" });
    const d = (await img.info()).formatSpecific!.data as Record<string, unknown>;
    expect(d.cid).not.toBe(0x12345678); // the first write gave it a new CID
    expect(d["create-type"]).toBe("custom");
    expect(new TextDecoder().decode(dir.bytes("h.vmdk"))).toContain("\r\nparentCID=ffffffff\r\n");
    await img.close();
  });

  it("a sparse header of no capacity carries a descriptor listing other extents (and size 0 opens)", async () => {
    const dir = new MemoryDir();
    await (await dir.create("z.vmdk", 0)).close();
    let img = await dir.openImage("z.vmdk"); // QEMU refuses its own zero-size image; vdisk opens it empty
    expect(img.size).toBe(0);
    await img.close();
    const b = dir.bytes("z.vmdk");
    const text = embeddedDescriptor(b).replace(/RW 0 SPARSE "z.vmdk"/, 'RW 2048 FLAT "data.bin" 0');
    b.fill(0, 512, 512 * 21);
    b.set(new TextEncoder().encode(text), 512);
    dir.put("data.bin", pattern(MIB, 3));
    img = await dir.openImage("z.vmdk");
    expect(img.size).toBe(MIB);
    expectBytes(await img.read(0, MIB), pattern(MIB, 3));
    await img.write(5, pattern(5, 4)); // the CID update rewrites the embedded descriptor
    await img.close();
    expect(embeddedDescriptor(dir.bytes("z.vmdk"))).toContain('RW 2048 FLAT "data.bin" 0');
    expectBytes(dir.bytes("data.bin").subarray(5, 10), pattern(5, 4));
  });

  it("opens extents through the open policy and refuses them when the policy denies", async () => {
    const dir = new MemoryDir();
    await (await dir.create("f.vmdk", MIB, "subformat=monolithicFlat")).close();
    await expect(openImage(dir.open("f.vmdk"), { openFile: dir.opener })).rejects.toMatchObject({ code: "ERR_OPEN_DENIED" });
    await expect(
      createImage(new MemoryBackend(new Uint8Array(0), { name: "g.vmdk" }), { format: "vmdk", size: MIB, options: "subformat=monolithicFlat", openFile: dir.opener }),
    ).rejects.toMatchObject({ code: "ERR_OPEN_DENIED" });
  });
});

describe("vmdk parent disks", () => {
  it("reads through the parent, copies partial grains up, and zeroed grains hide the parent", async () => {
    const dir = new MemoryDir();
    const base = await dir.create("base.vmdk", 2 * MIB);
    const baseData = pattern(2 * MIB, 1);
    await base.write(0, baseData);
    await base.close();
    const baseCid = /CID=([0-9a-f]+)/.exec(embeddedDescriptor(dir.bytes("base.vmdk")))![1];
    const top = await dir.create("top.vmdk", 2 * MIB, "zeroed_grain=on", { backingFile: "base.vmdk" });
    const text = embeddedDescriptor(dir.bytes("top.vmdk"));
    expect(text).toContain(`parentCID=${baseCid}\n`);
    expect(text).toContain('parentFileNameHint="base.vmdk"');
    expect(top.size).toBe(2 * MIB);
    const model = baseData.slice();
    await top.write(GRAIN + 1000, pattern(300, 2));
    model.set(pattern(300, 2), GRAIN + 1000);
    await top.writeZeroes(4 * GRAIN, 2 * GRAIN);
    model.fill(0, 4 * GRAIN, 6 * GRAIN);
    await expectContents(top, model);
    await top.close();
    const again = await dir.openImage("top.vmdk");
    await expectContents(again, model);
    expect(again.backingFile).toEqual({ name: "base.vmdk", format: "vmdk" });
    const d = (await again.info()).formatSpecific!.data;
    expect(d["parent-cid"]).toBe(parseInt(baseCid, 16));
    await again.close();
  });

  it("warns when the parent's CID no longer matches the child's parentCID", async () => {
    const dir = new MemoryDir();
    await (await dir.create("base.vmdk", MIB)).close();
    await (await dir.create("top.vmdk", MIB, "", { backingFile: "base.vmdk" })).close();
    const base = await dir.openImage("base.vmdk");
    await base.write(0, pattern(10, 1)); // changes the base's CID
    await base.close();
    const warnings: string[] = [];
    const top = await dir.openImage("top.vmdk", { readOnly: true, warn: (m) => warnings.push(m) });
    expect(warnings.join("\n")).toMatch(/parentCID [0-9a-f]+ does not match the CID [0-9a-f]+ of its parent 'base.vmdk'/);
    expectBytes(await top.read(0, 10), pattern(10, 1));
    await top.close();
  });
});

describe("vmdk create options", () => {
  const dir = new MemoryDir();
  it("refuses what qemu-img refuses, with its messages", async () => {
    await expect(dir.create("a.vmdk", MIB, "subformat=monolithicFlat,zeroed_grain=on")).rejects.toThrow("Flat image can't enable zeroed grain");
    await expect(dir.create("a.vmdk", MIB, "compat6=on,hwversion=7")).rejects.toThrow("compat6 cannot be enabled with hwversion set");
    await expect(dir.create("a.vmdk", MIB, "adapter_type=IDE")).rejects.toMatchObject({ code: "ERR_INVALID_OPTION" });
    await expect(dir.create("a.vmdk", MIB, "subformat=sparse")).rejects.toMatchObject({ code: "ERR_INVALID_OPTION" });
    await (await dir.create("base.vmdk", MIB)).close();
    await expect(dir.create("a.vmdk", MIB, "subformat=twoGbMaxExtentFlat", { backingFile: "base.vmdk" })).rejects.toThrow("Flat image can't have backing file");
    dir.put("raw.img", new Uint8Array(MIB));
    await expect(
      createImage(dir.open("b.vmdk", true, true), { format: "vmdk", size: MIB, openFile: dir.opener, backing: "same-dir", backingFile: "raw.img", backingFormat: "raw" }),
    ).rejects.toThrow("Invalid backing file format: raw. Must be vmdk");
  });

  it("writes the descriptor fields VMware checks (hwversion, toolsversion, geometry, adapter type)", async () => {
    const img = await dir.create("o.vmdk", 100 * MIB + 1, "subformat=streamOptimized,hwversion=14,toolsversion=10338,adapter_type=buslogic");
    expect(img.size).toBe(100 * MIB + 512); // rounded up to a sector
    const text = embeddedDescriptor(dir.bytes("o.vmdk"));
    expect(text).toMatch(/^# Disk DescriptorFile\nversion=1\nCID=[0-9a-f]+\nparentCID=ffffffff\ncreateType="streamOptimized"\n/);
    expect(text).toContain('RW 204801 SPARSE "o.vmdk"');
    for (const line of ['ddb.virtualHWVersion = "14"', 'ddb.toolsVersion = "10338"', 'ddb.adapterType = "buslogic"', 'ddb.geometry.heads = "255"', 'ddb.geometry.sectors = "63"', 'ddb.geometry.cylinders = "12"']) {
      expect(text).toContain(line);
    }
    const c6 = await dir.create("c6.vmdk", MIB, "compat6=on");
    expect(embeddedDescriptor(dir.bytes("c6.vmdk"))).toContain('ddb.virtualHWVersion = "6"');
    await c6.close();
    await img.close();
  });

  it("probes monolithic files and text descriptors as vmdk", async () => {
    await (await dir.create("p.vmdk", MIB)).close();
    await (await dir.create("q.vmdk", MIB, "subformat=monolithicFlat")).close();
    for (const n of ["p.vmdk", "q.vmdk"]) {
      const img = await dir.openImage(n, { readOnly: true });
      expect(img.format).toBe("vmdk");
      await img.close();
    }
  });
});

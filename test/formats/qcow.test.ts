/**
 * QCOW (v1): the life of an image against an in-memory model — create, random unaligned writes
 * and zero writes, read back, map, check, reopen, backing files, compressed clusters.
 */
import { describe, expect, it } from "vitest";
import { MemoryBackend, createImage, openImage } from "../../src/index.js";
import { isImageError } from "../../src/errors.js";
import {
  expectContents,
  expectExtentsAgree,
  memoryOpener,
  pattern,
  randomOps,
  rng,
} from "./image-model.js";

const be32 = (b: Uint8Array, at: number) => new DataView(b.buffer, b.byteOffset).getUint32(at, false);

async function reopen(mem: MemoryBackend, opts: Parameters<typeof openImage>[1] = {}) {
  return openImage(new MemoryBackend(mem.bytes().slice()), { format: "qcow", ...opts });
}

describe("qcow life cycle", () => {
  it("create() writes qemu's default layout: 4 KiB clusters, 512-entry L2 tables, L1 after the header", async () => {
    const mem = new MemoryBackend();
    const img = await createImage(mem, { format: "qcow", size: 64 << 20 });
    const b = mem.bytes();
    expect(be32(b, 0)).toBe(0x514649fb);
    expect(be32(b, 4)).toBe(1);
    expect(b[32]).toBe(12);
    expect(b[33]).toBe(9);
    // 32 L1 entries (2 MiB each) padded to a sector after the 48-byte header: 560 bytes, as qemu-img.
    expect(b.length).toBe(560);
    expect((await img.info()).clusterSize).toBe(4096);
    await img.close();
  });

  it("rounds the size up to 512 and refuses size 0", async () => {
    const img = await createImage(new MemoryBackend(), { format: "qcow", size: 1234 });
    expect(img.size).toBe(1536);
    await img.close();
    await expect(createImage(new MemoryBackend(), { format: "qcow", size: 0 })).rejects.toBeInstanceOf(RangeError);
  });

  it("refuses encryption at create time with ERR_UNSUPPORTED_FEATURE", async () => {
    for (const options of ["encryption=on", "encrypt.format=aes"]) {
      const err = await createImage(new MemoryBackend(), { format: "qcow", size: 1 << 20, options }).catch((e) => e);
      expect(isImageError(err) && err.code).toBe("ERR_UNSUPPORTED_FEATURE");
    }
  });

  for (const [label, options] of [
    ["default clusters", ""],
    ["512-byte clusters", "cluster_size=512"],
    ["64 KiB clusters", "cluster_size=64k"],
  ] as const) {
    it(`random writes read back like the model, map agrees and check is clean (${label})`, async () => {
      const size = 3 * 1024 * 1024 + 3 * 512;
      const mem = new MemoryBackend();
      const img = await createImage(mem, { format: "qcow", size, options });
      const model = new Uint8Array(size);
      await randomOps(img, model, rng(7), { ops: 120, maxLength: 40000, flushes: true });
      await expectContents(img, model);
      await expectExtentsAgree(img, model);
      const c = await img.check();
      expect(c.corruptions).toBe(0);
      expect(c.leaks).toBe(0);
      expect(c.allocatedClusters).toBeGreaterThan(0);
      await img.close();
      const again = await reopen(mem, { readOnly: true });
      await expectContents(again, model);
      await again.close();
    });
  }

  it("a write into a new cluster zero-fills the rest of it", async () => {
    const img = await createImage(new MemoryBackend(), { format: "qcow", size: 1 << 20 });
    await img.write(5000, new Uint8Array([1, 2, 3]));
    const c = await img.read(4096, 4096);
    expect(c[5000 - 4096]).toBe(1);
    expect(c.filter((x) => x !== 0).length).toBe(3);
    await img.close();
  });

  it("reads and writes through a backing file, copying only what a write needs", async () => {
    const base = pattern(1 << 20, 99);
    const opener = memoryOpener({ "base.raw": base });
    const mem = new MemoryBackend(new Uint8Array(0), { name: "top.qcow" });
    const img = await createImage(mem, {
      format: "qcow",
      backingFile: "base.raw",
      backingFormat: "raw",
      backing: "any",
      openFile: opener,
    });
    expect(img.size).toBe(1 << 20);
    // qemu-img gives qcow images with a backing file 512-byte clusters.
    expect((await img.info()).clusterSize).toBe(512);
    const model = base.slice();
    await expectContents(img, model);
    await randomOps(img, model, rng(3), { ops: 60, maxLength: 5000 });
    await expectContents(img, model);
    const c = await img.check();
    expect(c.corruptions).toBe(0);
    await img.close();
    const again = await openImage(new MemoryBackend(mem.bytes().slice(), { name: "top.qcow" }), {
      backing: "any",
      openFile: opener,
      readOnly: true,
    });
    expect(again.format).toBe("qcow");
    await expectContents(again, model);
    // Unwritten ranges come from depth 1.
    const depths = new Set<number>();
    for await (const e of again.extents()) depths.add(e.depth);
    expect(depths.has(1)).toBe(true);
    await again.close();
  });

  it("writeCompressed() stores compressible clusters compressed; reads, overwrites and check agree", async () => {
    const size = 256 * 1024 + 1024;
    const mem = new MemoryBackend();
    const img = await createImage(mem, { format: "qcow", size });
    const model = new Uint8Array(size);
    for (let i = 0; i < size; i++) model[i] = (i >> 9) & 0x0f; // compressible
    model.fill(0xc3, 100000, 104096); // incompressible-ish run is still fine
    await img.writeCompressed(0, model);
    const c1 = await img.check();
    expect(c1.compressedClusters).toBeGreaterThan(50);
    expect(c1.corruptions).toBe(0);
    expect(mem.bytes().length).toBeLessThan(size / 4);
    await expectContents(img, model);
    const ext = [];
    for await (const e of img.extents()) ext.push(e);
    expect(ext.some((e) => e.compressed)).toBe(true);
    // Partial overwrite of a compressed cluster: the rest of the cluster survives.
    const patch = pattern(3000, 5);
    await img.write(8192 + 100, patch);
    model.set(patch, 8192 + 100);
    await expectContents(img, model);
    const c2 = await img.check();
    expect(c2.corruptions).toBe(0);
    await img.close();
    const again = await reopen(mem, { readOnly: true });
    await expectContents(again, model);
    await again.close();
  });

  it("check -r leaks truncates space reserved but never linked", async () => {
    const mem = new MemoryBackend();
    const img = await createImage(mem, { format: "qcow", size: 1 << 20 });
    await img.write(0, pattern(10000, 1));
    await img.close();
    const bytes = mem.bytes().slice();
    const grown = new Uint8Array(bytes.length + 3 * 4096);
    grown.set(bytes);
    const img2 = await openImage(new MemoryBackend(grown), { format: "qcow" });
    const c = await img2.check();
    expect(c.leaks).toBe(3);
    const r = await img2.check("leaks");
    expect(r.leaksFixed).toBe(3);
    expect(r.leaks).toBe(0);
    expect(await img2.read(0, 10000)).toEqual(pattern(10000, 1));
    await img2.close();
  });

  it("check reports L2 entries outside the file and clusters mapped twice; -r all clears the former", async () => {
    const mem = new MemoryBackend();
    const img = await createImage(mem, { format: "qcow", size: 1 << 20 });
    await img.write(0, pattern(3 * 4096, 2));
    await img.close();
    const b = mem.bytes().slice();
    const v = new DataView(b.buffer);
    const l2 = Number(v.getBigUint64(48, false));
    v.setBigUint64(l2 + 8, BigInt(b.length + 40960), false); // cluster 1: past the end
    v.setBigUint64(l2 + 16, v.getBigUint64(l2, false), false); // cluster 2: same as cluster 0
    const img2 = await openImage(new MemoryBackend(b), { format: "qcow" });
    const c = await img2.check();
    expect(c.corruptions).toBe(2);
    const r = await img2.check("all");
    expect(r.corruptionsFixed).toBe(1);
    expect(r.corruptions).toBe(1);
    expect(r.messages.join("\n")).toMatch(/referenced twice/);
    await img2.close();
  });
});

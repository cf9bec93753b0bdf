/**
 * QED: the life of an image against an in-memory model — create (every table size), random
 * writes and zero writes, zero clusters, read back, map, check, the need-check bit, backing
 * files, repair of an image left dirty.
 */
import { describe, expect, it } from "vitest";
import { MemoryBackend, createImage, openImage } from "../../src/index.js";
import { isImageError } from "../../src/errors.js";
import { expectContents, expectExtentsAgree, memoryOpener, pattern, randomOps, rng } from "./image-model.js";

const le32 = (b: Uint8Array, at: number) => new DataView(b.buffer, b.byteOffset).getUint32(at, true);
const le64 = (b: Uint8Array, at: number) => Number(new DataView(b.buffer, b.byteOffset).getBigUint64(at, true));
const NEED_CHECK = 0x02;

function reopen(bytes: Uint8Array, opts: Parameters<typeof openImage>[1] = {}) {
  return openImage(new MemoryBackend(bytes.slice()), { format: "qed", ...opts });
}

/** Offset of the first L2 table and of its first data cluster. */
function firstTables(b: Uint8Array): { l2: number; data: number } {
  const l1 = le64(b, 40);
  const l2 = le64(b, l1);
  return { l2, data: le64(b, l2) };
}

describe("qed life cycle", () => {
  it("create() writes qemu's layout: 64 KiB clusters, 4-cluster tables, L1 in cluster 1", async () => {
    const mem = new MemoryBackend();
    const img = await createImage(mem, { format: "qed", size: 64 << 20 });
    const b = mem.bytes();
    expect(le32(b, 0)).toBe(0x00444551);
    expect(le32(b, 4)).toBe(65536);
    expect(le32(b, 8)).toBe(4);
    expect(le32(b, 12)).toBe(1);
    expect(le64(b, 40)).toBe(65536);
    expect(le64(b, 48)).toBe(64 << 20);
    expect(b.length).toBe(327680); // as qemu-img create
    await img.close();
  });

  it("refuses cluster and table sizes outside the specification", async () => {
    for (const options of ["cluster_size=2048", "cluster_size=128M", "cluster_size=12k", "table_size=3", "table_size=32"]) {
      const err = await createImage(new MemoryBackend(), { format: "qed", size: 1 << 20, options }).catch((e) => e);
      expect(isImageError(err) && err.code, options).toBe("ERR_INVALID_OPTION");
    }
  });

  for (const options of ["cluster_size=4k,table_size=1", "cluster_size=4k,table_size=2", "", "cluster_size=16k,table_size=16"]) {
    it(`random writes and zero writes read back like the model; map and check agree (${options || "defaults"})`, async () => {
      const size = 3 * 1024 * 1024 + 1536;
      const mem = new MemoryBackend();
      const img = await createImage(mem, { format: "qed", size, options });
      const model = new Uint8Array(size);
      await randomOps(img, model, rng(11), { ops: 100, maxLength: 30000, zeroShare: 0.25, flushes: true });
      await expectContents(img, model);
      await expectExtentsAgree(img, model);
      const c = await img.check();
      expect([c.corruptions, c.leaks, c.checkErrors]).toEqual([0, 0, 0]);
      await img.close();
      // Closed cleanly: the need-check bit is clear.
      expect(mem.bytes()[16] & NEED_CHECK).toBe(0);
      const again = await reopen(mem.bytes(), { readOnly: true });
      await expectContents(again, model);
      await again.close();
    });
  }

  it("the need-check bit is set while allocations are unflushed and cleared by flush", async () => {
    const mem = new MemoryBackend();
    const img = await createImage(mem, { format: "qed", size: 1 << 20, options: "cluster_size=4k" });
    expect(mem.bytes()[16] & NEED_CHECK).toBe(0);
    await img.write(100, pattern(5000, 1));
    expect(mem.bytes()[16] & NEED_CHECK).toBe(NEED_CHECK);
    expect((await img.info()).dirty).toBe(true);
    await img.flush();
    expect(mem.bytes()[16] & NEED_CHECK).toBe(0);
    // Overwriting allocated clusters changes no metadata: the bit stays clear.
    await img.write(200, pattern(100, 2));
    expect(mem.bytes()[16] & NEED_CHECK).toBe(0);
    await img.close();
  });

  it("zero writes over a backing file become zero clusters (entry 1), hiding the backing data", async () => {
    const base = pattern(1 << 20, 42);
    const opener = memoryOpener({ "base.raw": base });
    const mem = new MemoryBackend(new Uint8Array(0), { name: "top.qed" });
    const img = await createImage(mem, {
      format: "qed",
      options: "cluster_size=4k",
      backingFile: "base.raw",
      backingFormat: "raw",
      backing: "any",
      openFile: opener,
    });
    const model = base.slice();
    await img.writeZeroes(8192, 3 * 4096);
    model.fill(0, 8192, 8192 + 3 * 4096);
    await img.write(70000, pattern(9000, 3));
    model.set(pattern(9000, 3), 70000);
    await expectContents(img, model);
    const zeroExtent = [];
    for await (const e of img.extents()) if (e.zero && e.present && e.depth === 0) zeroExtent.push(e);
    expect(zeroExtent).toEqual([expect.objectContaining({ offset: 8192, length: 3 * 4096 })]);
    const c = await img.check();
    expect(c.corruptions).toBe(0);
    expect(c.allocatedClusters).toBe(3); // zero clusters are not allocated
    await img.close();
    const b = mem.bytes();
    // Backing format raw is recorded as the no-probe feature bit.
    expect(b[16] & 0x05).toBe(0x05);
    const { l2 } = firstTables(b);
    expect(le64(b, l2 + 2 * 8)).toBe(1);
    const again = await openImage(new MemoryBackend(b.slice(), { name: "top.qed" }), { backing: "any", openFile: opener, readOnly: true });
    await expectContents(again, model);
    await again.close();
  });

  it("an image left with need-check set is repaired on a read-write open and read alike read-only", async () => {
    const mem = new MemoryBackend();
    const img = await createImage(mem, { format: "qed", size: 1 << 20, options: "cluster_size=4k" });
    await img.write(0, pattern(8192, 4));
    await img.close();
    const b = mem.bytes().slice();
    const { l2 } = firstTables(b);
    // A crash: the entry for cluster 2 points past the end of the file, the bit is still set.
    new DataView(b.buffer).setBigUint64(l2 + 16, BigInt(b.length + 4096 * 10), true);
    b[16] |= NEED_CHECK;
    const expected = new Uint8Array(1 << 20);
    expected.set(pattern(8192, 4));

    const ro = await reopen(b, { readOnly: true, warn: () => {} });
    await expectContents(ro, expected);
    expect((await ro.check()).corruptions).toBe(1);
    await ro.close();

    const warnings: string[] = [];
    const mem2 = new MemoryBackend(b.slice());
    const rw = await openImage(mem2, { format: "qed", warn: (m) => warnings.push(m) });
    expect(warnings.join()).toMatch(/not closed cleanly/);
    expect(mem2.bytes()[16] & NEED_CHECK).toBe(0);
    await expectContents(rw, expected);
    const c = await rw.check();
    expect([c.corruptions, c.leaks]).toEqual([0, 0]);
    await rw.close();
  });

  it("check -r counts repairs as qemu-img does and leaves leaks alone", async () => {
    const mem = new MemoryBackend();
    const img = await createImage(mem, { format: "qed", size: 16 << 20, options: "cluster_size=4k" });
    await img.write(0, pattern(8192, 1));
    await img.write(3 << 20, pattern(4096, 2));
    await img.close();
    const b = mem.bytes();
    const grown = new Uint8Array(b.length + 2 * 4096);
    grown.set(b);
    const { l2, data } = firstTables(grown);
    const v = new DataView(grown.buffer);
    v.setBigUint64(l2 + 5 * 8, 0x10000000n, true); // past the end
    v.setBigUint64(l2 + 6 * 8, BigInt(data), true); // duplicate
    const img2 = await reopen(grown);
    const c = await img2.check();
    expect({ corruptions: c.corruptions, leaks: c.leaks, allocated: c.allocatedClusters }).toEqual({
      corruptions: 2,
      leaks: 2,
      allocated: 5,
    });
    const r = await img2.check("leaks");
    expect({ corruptions: r.corruptions, fixed: r.corruptionsFixed, leaks: r.leaks, leaksFixed: r.leaksFixed }).toEqual({
      corruptions: 1,
      fixed: 1,
      leaks: 2,
      leaksFixed: 0,
    });
    await img2.close();
  });

  it("opens images with unknown compat bits, clears unknown autoclear bits when writable, refuses unknown features", async () => {
    const mem = new MemoryBackend();
    await (await createImage(mem, { format: "qed", size: 1 << 20, options: "cluster_size=4k" })).close();
    const b = mem.bytes().slice();
    b[24] = 0x80; // compat
    b[32] = 0x40; // autoclear
    const mem2 = new MemoryBackend(b.slice());
    await (await openImage(mem2, { format: "qed" })).close();
    expect(mem2.bytes()[24]).toBe(0x80);
    expect(mem2.bytes()[32]).toBe(0);
    const bad = b.slice();
    bad[23] = 0x01; // feature bit 56
    const err = await reopen(bad).catch((e) => e);
    expect(isImageError(err) && err.code).toBe("ERR_UNSUPPORTED_FEATURE");
    expect(String(err.message)).toMatch(/Unsupported QED features: 0x100000000000000/);
  });

  it("resize() grows the disk (qemu-img resize semantics) and refuses to shrink it", async () => {
    const mem = new MemoryBackend();
    const img = await createImage(mem, { format: "qed", size: 1 << 20, options: "cluster_size=4k" });
    await img.write(0, pattern(5000, 1));
    await img.resize!(3 * 1024 * 1024 + 1000);
    expect(img.size).toBe(3 * 1024 * 1024 + 1024);
    expect((await img.read(1 << 20, 4096)).every((x) => x === 0)).toBe(true);
    await img.write(img.size - 3000, pattern(3000, 2));
    const err = await img.resize!(1 << 20).catch((e) => e);
    expect(isImageError(err) && err.code).toBe("ERR_UNSUPPORTED_FEATURE");
    await img.close();
    const again = await reopen(mem.bytes(), { readOnly: true });
    expect(again.size).toBe(3 * 1024 * 1024 + 1024);
    expect(await again.read(again.size - 3000, 3000)).toEqual(pattern(3000, 2));
    expect(await again.read(0, 5000)).toEqual(pattern(5000, 1));
    await again.close();
  });

  it("table_size=1 images work end to end (qemu 7.2 cannot open them)", async () => {
    const mem = new MemoryBackend();
    const img = await createImage(mem, { format: "qed", size: 8 << 20, options: "table_size=1,cluster_size=4k" });
    // One 4 KiB table addresses 512 clusters: 2 MiB per L2 table.
    await img.write((2 << 20) - 10, pattern(20, 9));
    await img.close();
    expect(le32(mem.bytes(), 8)).toBe(1);
    const again = await reopen(mem.bytes());
    expect(await again.read((2 << 20) - 10, 20)).toEqual(pattern(20, 9));
    expect((await again.check()).corruptions).toBe(0);
    await again.close();
  });
});

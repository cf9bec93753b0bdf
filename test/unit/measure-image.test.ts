/**
 * measureImage() as a library function: the figures of qemu-img measure from a device opened
 * by the library, the size/source/options contract, progress and cancellation.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MemoryBackend, createImage, measureImage, openImage, type BlockDevice } from "../../src/node.js";
import { countTouchedUnits } from "../../src/core/measure.js";
import { HAVE_QEMU, qemuImg, qemuIo, tempDir } from "../helpers/qemu.js";

describe("countTouchedUnits()", () => {
  it("counts each unit a range touches once", () => {
    expect(countTouchedUnits([], 4096)).toBe(0);
    expect(countTouchedUnits([{ offset: 0, length: 1 }], 4096)).toBe(1);
    expect(countTouchedUnits([{ offset: 4095, length: 2 }], 4096)).toBe(2);
    // Two ranges in one unit, then one in the next two.
    expect(countTouchedUnits([{ offset: 10, length: 10 }, { offset: 100, length: 10 }, { offset: 8000, length: 1000 }], 4096)).toBe(3);
    expect(countTouchedUnits([{ offset: 0, length: 8192 }, { offset: 8192, length: 1 }], 4096)).toBe(3);
  });
});

describe("measureImage()", () => {
  it("measures from a size: qemu-img's numbers for qcow2 and raw", async () => {
    expect(await measureImage({ format: "qcow2", size: 2 ** 30 })).toEqual({ required: 393216, fullyAllocated: 1074135040 });
    expect(await measureImage({ format: "raw", size: 1000 })).toEqual({ required: 1024, fullyAllocated: 1024 });
    // Options as text and as values are the same; `size` may come from the options.
    const a = await measureImage({ format: "qcow2", options: "cluster_size=4k,refcount_bits=64", size: 5 * 2 ** 30 });
    const b = await measureImage({ format: "qcow2", options: { cluster_size: 4096, refcount_bits: 64 }, size: 5 * 2 ** 30 });
    const c = await measureImage({ format: "qcow2", options: "cluster_size=4k,refcount_bits=64,size=5G" });
    expect(b).toEqual(a);
    expect(c).toEqual(a);
  });

  it("rejects mistakes with the documented errors", async () => {
    await expect(measureImage({ format: "nope", size: 1 })).rejects.toMatchObject({ code: "ERR_UNKNOWN_FORMAT" });
    await expect(measureImage({ format: "qcow2", options: "bogus=1", size: 1 })).rejects.toMatchObject({ code: "ERR_INVALID_OPTION" });
    await expect(measureImage({ format: "qcow2", options: "cluster_size=3k", size: 1 })).rejects.toMatchObject({
      code: "ERR_INVALID_OPTION",
      message: "Cluster size must be a power of two between 512 and 2048k",
    });
    await expect(measureImage({ format: "qcow2" })).rejects.toBeInstanceOf(TypeError);
    const src = await createImage(new MemoryBackend(), { format: "raw", size: 4096 });
    await expect(measureImage({ format: "qcow2", size: 1, source: src })).rejects.toBeInstanceOf(TypeError);
    await expect(measureImage({ format: "qcow2", size: -1 })).rejects.toBeInstanceOf(RangeError);
    // Sizes create refuses are refused by measure too.
    await expect(measureImage({ format: "gow1", size: 1000 })).rejects.toMatchObject({ code: "ERR_OUT_OF_RANGE" });
    await expect(measureImage({ format: "gow1", size: 65 * 2 ** 30 })).rejects.toMatchObject({ code: "ERR_OUT_OF_RANGE" });
    await expect(measureImage({ format: "vpc", size: 3 * 2 ** 40 })).rejects.toBeInstanceOf(RangeError);
    await expect(measureImage({ format: "vhdx", size: 65 * 2 ** 40 })).rejects.toMatchObject({ code: "ERR_INVALID_OPTION" });
    await expect(measureImage({ format: "vdi", size: 2 ** 52 })).rejects.toMatchObject({ code: "ERR_INVALID_OPTION" });
  });

  it("counts the clusters a source's data touches, not its zeros", async () => {
    const mem = new MemoryBackend();
    const dev = await createImage(mem, { format: "qcow2", size: 64 << 20, options: { cluster_size: 4096 } });
    await dev.write(1000, new Uint8Array(5000).fill(1)); // touches 4 KiB clusters 0 and 1
    await dev.write(10 << 20, new Uint8Array(1).fill(2)); // one more
    await dev.writeZeroes(20 << 20, 1 << 20); // zeros do not count
    const m = await measureImage({ format: "raw", source: dev });
    expect(m).toEqual({ required: 64 << 20, fullyAllocated: 64 << 20 });
    const empty = await measureImage({ format: "qcow2", options: "cluster_size=64k", size: 64 << 20 });
    const q = await measureImage({ format: "qcow2", options: "cluster_size=64k", source: dev });
    // Three source clusters fall into two 64 KiB clusters of the target.
    expect(q.required - empty.required).toBe(2 * 65536);
    expect(q.bitmaps).toBe(0);
    await dev.close();
  });

  it("reports progress from 0 to the source size and stops when aborted", async () => {
    const dev = await createImage(new MemoryBackend(), { format: "qcow2", size: 256 << 20, options: { cluster_size: 4096 } });
    for (let i = 0; i < 64; i++) await dev.write(i * (4 << 20), new Uint8Array(512).fill(i + 1));
    const seen: number[] = [];
    await measureImage({ format: "qcow2", source: dev, onProgress: (p) => { expect(p.total).toBe(256 << 20); seen.push(p.done); } });
    expect(seen[0]).toBe(0);
    expect(seen[seen.length - 1]).toBe(256 << 20);
    for (let i = 1; i < seen.length; i++) expect(seen[i]).toBeGreaterThanOrEqual(seen[i - 1]);

    const early = new AbortController();
    early.abort();
    await expect(measureImage({ format: "qcow2", source: dev, signal: early.signal })).rejects.toMatchObject({ name: "AbortError" });
    const mid = new AbortController();
    const run = measureImage({
      format: "qcow2",
      source: dev,
      signal: mid.signal,
      onProgress: (p) => { if (p.done > 64 << 20) mid.abort(); },
    });
    const error = await run.then(() => undefined, (e: unknown) => e);
    expect(mid.signal.aborted).toBe(true);
    expect(error).toBe(mid.signal.reason);
    expect(error).toMatchObject({ name: "AbortError" });
    await dev.close();
  });
});

describe.skipIf(!HAVE_QEMU)("measureImage() on images made by qemu-img", () => {
  const t = tempDir("vdisk-measure-lib-");
  let dev: BlockDevice;
  beforeAll(async () => {
    qemuImg("create", "-q", "-f", "qcow2", "-o", "cluster_size=16k", t.path("a.qcow2"), "3G");
    qemuIo("qcow2", t.path("a.qcow2"), ["write -P 1 7k 100k", "write -z 1M 1M", "write -P 2 2G 33k"]);
    dev = await openImage(t.path("a.qcow2"), { readOnly: true });
  });
  afterAll(async () => {
    await dev.close();
    t.cleanup();
  });

  it.each(["", "cluster_size=512", "cluster_size=2M,extended_l2=on", "compat=0.10", "refcount_bits=8,preallocation=metadata"])(
    "-O qcow2 -o '%s' equals qemu-img measure",
    async (o) => {
      const ref = JSON.parse(qemuImg("measure", "--output=json", "-O", "qcow2", ...(o ? ["-o", o] : []), t.path("a.qcow2"))) as Record<string, number>;
      const m = await measureImage({ format: "qcow2", options: o, source: dev });
      expect({ required: m.required, fullyAllocated: m.fullyAllocated, bitmaps: m.bitmaps }).toEqual({
        required: ref.required,
        fullyAllocated: ref["fully-allocated"],
        bitmaps: ref.bitmaps,
      });
    },
  );
});

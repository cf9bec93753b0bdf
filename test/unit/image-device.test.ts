import { describe, expect, it } from "vitest";
import { ImageDevice } from "../../src/core/image-device.js";
import type { BlockDevice } from "../../src/core/block-device.js";
import { tsKernel } from "../../src/kernel/ts-kernel.js";
import { MemoryBackend } from "../../src/io/memory.js";
import { createImage } from "../../src/index.js";
import { ToyInstance } from "./toy-format.js";

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

async function rawBase(size: number, fill: (i: number) => number): Promise<BlockDevice> {
  const dev = await createImage(new MemoryBackend(), { format: "raw", size });
  const buf = new Uint8Array(size).map((_, i) => fill(i));
  await dev.write(0, buf);
  return dev;
}

describe("ImageDevice", () => {
  it("read-modify-write keeps the backing bytes around a partial cluster write", async () => {
    const base = await rawBase(8192, (i) => (i % 251) + 1);
    const toy = new ToyInstance(8192, 1024, { name: "base" });
    const dev = new ImageDevice(toy, { readOnly: false, kernel: tsKernel, backing: base, name: "toy" });
    await dev.write(1500, new Uint8Array(100).fill(0xee));
    const got = await dev.read(0, 8192);
    for (let i = 0; i < 8192; i++) {
      const want = i >= 1500 && i < 1600 ? 0xee : (i % 251) + 1;
      if (got[i] !== want) throw new Error(`byte ${i}: ${got[i]} != ${want}`);
    }
    // Only the cluster that holds the write was allocated, and committed once.
    expect([...toy.map.keys()]).toEqual([1]);
    expect(toy.commits).toEqual([1024]);
  });

  it("a random workload over a backing device matches a flat model", async () => {
    const size = 64 * 1024 + 777;
    const base = await rawBase(size - 5000, (i) => (i * 13) & 0xff); // shorter base: tail reads zeros
    const toy = new ToyInstance(size, 4096, { name: "base" });
    const dev = new ImageDevice(toy, { readOnly: false, kernel: tsKernel, backing: base, name: "toy" });
    const model = new Uint8Array(size);
    model.set(await base.read(0, base.size));
    const r = rng(42);
    for (let step = 0; step < 300; step++) {
      const off = Math.floor(r() * size);
      const len = Math.max(1, Math.min(size - off, Math.floor(r() * 12000)));
      const op = r();
      if (op < 0.6) {
        const data = new Uint8Array(len).map(() => Math.floor(r() * 256));
        await dev.write(off, data);
        model.set(data, off);
      } else if (op < 0.8) {
        await dev.writeZeroes(off, len);
        model.fill(0, off, off + len);
      } else {
        const got = await dev.read(off, len);
        expect(Buffer.compare(got, model.subarray(off, off + len))).toBe(0);
      }
    }
    expect(Buffer.compare(await dev.read(0, size), model)).toBe(0);
  });

  it("concurrent writes into the same unallocated cluster are both kept", async () => {
    const toy = new ToyInstance(65536, 65536);
    const dev = new ImageDevice(toy, { readOnly: false, kernel: tsKernel, name: "toy" });
    await Promise.all([
      dev.write(0, new Uint8Array(100).fill(1)),
      dev.write(200, new Uint8Array(100).fill(2)),
      dev.write(60000, new Uint8Array(100).fill(3)),
    ]);
    const got = await dev.read(0, 65536);
    expect(got[50]).toBe(1);
    expect(got[250]).toBe(2);
    expect(got[60050]).toBe(3);
    expect(got[150]).toBe(0);
    expect(toy.map.size).toBe(1);
  });

  it("writeZeroes uses zero clusters for aligned ranges and writes zeros at the edges", async () => {
    const base = await rawBase(16384, () => 0x5a);
    const toy = new ToyInstance(16384, 4096, { name: "base" });
    const dev = new ImageDevice(toy, { readOnly: false, kernel: tsKernel, backing: base, name: "toy" });
    await dev.writeZeroes(1000, 10000);
    const got = await dev.read(0, 16384);
    for (let i = 0; i < 16384; i++) {
      const want = i >= 1000 && i < 11000 ? 0 : 0x5a;
      if (got[i] !== want) throw new Error(`byte ${i}: ${got[i]} != ${want}`);
    }
    expect(toy.map.get(1)).toBe(-1); // cluster 1 (4096..8192) became a zero cluster
    expect(toy.map.get(0)).toBeGreaterThanOrEqual(0); // the head cluster holds data
  });

  it("extents() merges like qemu-img map and reports backing depth", async () => {
    const base = await rawBase(16384, () => 1);
    const toy = new ToyInstance(16384, 4096, { name: "base" });
    const dev = new ImageDevice(toy, { readOnly: false, kernel: tsKernel, backing: base, name: "toy" });
    await dev.write(0, new Uint8Array(8192).fill(9));
    await dev.writeZeroes(8192, 4096);
    const ext = [];
    for await (const e of dev.extents()) ext.push(e);
    expect(ext.map((e) => [e.offset, e.length, e.depth, e.present, e.zero, e.data])).toEqual([
      [0, 8192, 0, true, false, true],
      [8192, 4096, 0, true, true, false],
      [12288, 4096, 1, true, false, true],
    ]);
    expect(ext[0].fileOffset).toBe(0);
  });

  it("discard releases whole clusters only, and reads then show backing data", async () => {
    const base = await rawBase(16384, () => 7);
    const toy = new ToyInstance(16384, 4096, { name: "base" });
    const dev = new ImageDevice(toy, { readOnly: false, kernel: tsKernel, backing: base, name: "toy" });
    await dev.write(0, new Uint8Array(16384).fill(3));
    await dev.discard(1000, 8000); // covers cluster 1 only
    const got = await dev.read(0, 16384);
    expect(got[0]).toBe(3);
    expect(got[4096]).toBe(7);
    expect(got[9000]).toBe(3);
  });

  it("refuses writes when read-only, and ranges past the end", async () => {
    const toy = new ToyInstance(4096, 512);
    const dev = new ImageDevice(toy, { readOnly: true, kernel: tsKernel, name: "toy" });
    await expect(dev.write(0, new Uint8Array(1))).rejects.toMatchObject({ code: "ERR_READ_ONLY" });
    await expect(dev.read(4000, 100)).rejects.toBeInstanceOf(RangeError);
  });
});

describe("ImageDevice with concurrentAllocation", () => {
  /** A toy format whose data writes take a while, so allocating writes really overlap. */
  class SlowToy extends ToyInstance {
    readonly concurrentAllocation = true;
    active = 0;
    maxActive = 0;
    constructor(size: number, unit: number) {
      super(size, unit);
      const write = this.file.write.bind(this.file);
      this.file.write = async (off: number, data: Uint8Array) => {
        this.active++;
        this.maxActive = Math.max(this.maxActive, this.active);
        await new Promise((r) => setTimeout(r, 2));
        await write(off, data);
        this.active--;
      };
    }
  }

  it("overlaps data writes of different clusters and allocates each cluster once", async () => {
    const toy = new SlowToy(16 * 4096, 4096);
    const dev = new ImageDevice(toy, { readOnly: false, kernel: tsKernel, name: "toy" });
    await Promise.all(Array.from({ length: 16 }, (_, i) => dev.write(i * 4096, new Uint8Array(4096).fill(i + 1))));
    expect(toy.maxActive).toBeGreaterThan(1);
    expect(toy.map.size).toBe(16);
    expect(toy.commits.length).toBe(16);
    for (let i = 0; i < 16; i++) expect((await dev.read(i * 4096 + 100, 1))[0]).toBe(i + 1);
  });

  it("never allocates one cluster twice when writes into it overlap in time", async () => {
    const toy = new SlowToy(65536, 65536);
    const dev = new ImageDevice(toy, { readOnly: false, kernel: tsKernel, name: "toy" });
    const model = new Uint8Array(65536);
    const r = rng(7);
    const writes = Array.from({ length: 20 }, (_, i) => {
      const off = Math.floor(r() * 60000);
      const d = new Uint8Array(1 + Math.floor(r() * 4000)).fill(i + 1);
      return { off, d };
    });
    // Non-overlapping byte ranges, so the final contents do not depend on completion order.
    const used = new Uint8Array(65536);
    const chosen = writes.filter(({ off, d }) => {
      if (used.subarray(off, off + d.length).some((b) => b)) return false;
      used.fill(1, off, off + d.length);
      return true;
    });
    await Promise.all(chosen.map(({ off, d }) => dev.write(off, d)));
    for (const { off, d } of chosen) model.set(d, off);
    expect(toy.commits).toEqual([0]);
    expect(Buffer.compare(await dev.read(0, 65536), model)).toBe(0);
  });

  it("flush() and writeZeroes() run only after an allocation in flight is committed", async () => {
    const toy = new SlowToy(8 * 4096, 4096);
    const dev = new ImageDevice(toy, { readOnly: false, kernel: tsKernel, name: "toy" });
    const seen: Record<string, number> = {};
    toy.flush = async () => {
      seen.flush = toy.commits.length;
    };
    const zeroRange = toy.zeroRange.bind(toy);
    toy.zeroRange = async (o: number, l: number) => {
      seen.zero = toy.commits.length;
      return zeroRange(o, l);
    };
    await dev.write(4096, new Uint8Array(4096).fill(9)); // cluster 1 holds data, so zeroing it is real work
    const w = dev.write(0, new Uint8Array(4096).fill(5));
    // Let the write reach its data write (allocated, not yet committed).
    while (toy.active === 0) await new Promise((r) => setTimeout(r, 0));
    await Promise.all([w, dev.flush(), dev.writeZeroes(4096, 4096)]);
    expect(seen).toEqual({ flush: 2, zero: 2 });
    expect((await dev.read(0, 1))[0]).toBe(5);
    expect(toy.map.get(1)).toBe(-1);
  });
});

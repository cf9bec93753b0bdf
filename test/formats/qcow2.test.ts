/**
 * The life of qcow2 images against an in-memory model: create with many option combinations,
 * random unaligned / cross-cluster writes, zero writes (with and without unmap), discards and
 * compressed writes, then read back, map, check clean, reopen.
 */
import { describe, expect, it } from "vitest";
import { MemoryBackend, createImageOn, openImageOn, type ImageDevice } from "../../src/index.js";

/** A tiny deterministic PRNG so failures reproduce. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function fill(len: number, r: () => number): Uint8Array {
  const b = new Uint8Array(len);
  // Runs of a byte value so that compression has something to find, plus noise.
  let v = Math.floor(r() * 256);
  for (let i = 0; i < len; i++) {
    if (r() < 0.01) v = Math.floor(r() * 256);
    b[i] = r() < 0.9 ? v : Math.floor(r() * 256);
  }
  return b;
}

async function expectSame(img: ImageDevice, model: Uint8Array): Promise<void> {
  const got = await img.read(0, model.length);
  if (Buffer.compare(Buffer.from(got), Buffer.from(model)) !== 0) {
    let i = 0;
    while (got[i] === model[i]) i++;
    throw new Error(`first difference at ${i}: got ${got[i]}, want ${model[i]}`);
  }
}

interface Combo {
  opts: string;
  size: number;
  /** Operations in the workload (default 60; fewer for 2 MiB clusters, which are slow to compress). */
  ops?: number;
}

const combos: Combo[] = [
  { opts: "", size: 3 << 20 },
  { opts: "compat=0.10", size: 3 << 20 },
  { opts: "cluster_size=512", size: 1 << 20 },
  { opts: "cluster_size=512,refcount_bits=1", size: 1 << 20 },
  { opts: "cluster_size=4k,refcount_bits=64", size: 2 << 20 },
  { opts: "cluster_size=2M", size: 4 << 20, ops: 20 },
  { opts: "extended_l2=on", size: 3 << 20 },
  { opts: "extended_l2=on,cluster_size=16k", size: 2 << 20 },
  { opts: "lazy_refcounts=on", size: 3 << 20 },
  { opts: "refcount_bits=8,cluster_size=1k", size: 1 << 20 },
  { opts: "preallocation=metadata,cluster_size=4k", size: 1 << 20 },
  { opts: "compat=0.10,cluster_size=1k", size: 1 << 20 },
];

describe("qcow2 life cycle against an in-memory model", () => {
  for (const { opts, size, ops } of combos) {
    it(`random writes, zeroes, discards and compressed writes read back (-o ${opts || "defaults"})`, async () => {
      const r = rng(opts.length * 7919 + size);
      const mem = new MemoryBackend();
      let img = await createImageOn(mem, { format: "qcow2", size: size - 777, options: opts });
      const model = new Uint8Array(img.size);
      const info = await img.info();
      const cs = info.clusterSize!;
      for (let op = 0; op < (ops ?? 60); op++) {
        const kind = r();
        const off = Math.floor(r() * model.length);
        const len = Math.min(model.length - off, 1 + Math.floor(r() * (r() < 0.3 ? 4 * cs : 3000)));
        if (kind < 0.6) {
          const d = fill(len, r);
          await img.write(off, d);
          model.set(d, off);
        } else if (kind < 0.75) {
          await img.writeZeroes(off, len, { unmap: r() < 0.5 });
          model.fill(0, off, off + len);
        } else if (kind < 0.85) {
          // Discard reads back as zeros on images without a backing file.
          await img.discard(off, len);
          const unit = img.capabilities.allocationUnit;
          const s = Math.ceil(off / unit) * unit;
          const e = off + len === model.length ? model.length : Math.floor((off + len) / unit) * unit;
          if (e > s) {
            // qcow2 discards whole clusters only.
            const cs2 = cs;
            const s2 = Math.ceil(s / cs2) * cs2;
            const e2 = e === model.length ? e : Math.floor(e / cs2) * cs2;
            if (e2 > s2) model.fill(0, s2, e2);
          }
        } else {
          const unit = img.capabilities.compressionUnit || img.capabilities.allocationUnit;
          const o = Math.floor(off / unit) * unit;
          const l = Math.min(model.length - o, unit * (1 + Math.floor(r() * 3)));
          const d = fill(l, r);
          await img.writeCompressed(o, d);
          model.set(d, o);
        }
        if (op % 20 === 19) {
          await expectSame(img, model);
          const c = await img.check();
          expect(c.corruptions, c.messages.join("\n")).toBe(0);
          expect(c.leaks, c.messages.join("\n")).toBe(0);
        }
      }
      await expectSame(img, model);
      // The map agrees with the data: ranges reported as zero read as zeros.
      for await (const e of img.extents()) {
        if (e.zero) expect(model.subarray(e.offset, e.offset + e.length).every((b) => b === 0)).toBe(true);
      }
      await img.close();
      img = await openImageOn(new MemoryBackend(mem.bytes().slice()), { format: "qcow2" });
      await expectSame(img, model);
      const c = await img.check();
      expect(c.corruptions + c.leaks + c.checkErrors, c.messages.join("\n")).toBe(0);
      expect((await img.info()).dirty).toBe(false);
      await img.close();
    });
  }

  it("probes by magic and reports qemu-img's format-specific info", async () => {
    const mem = new MemoryBackend();
    const img = await createImageOn(mem, { format: "qcow2", size: 1 << 20, options: "lazy_refcounts=on,refcount_bits=4" });
    await img.close();
    const again = await openImageOn(new MemoryBackend(mem.bytes().slice()));
    expect(again.format).toBe("qcow2");
    const info = await again.info();
    expect(info.clusterSize).toBe(65536);
    expect(info.formatSpecific).toEqual({
      type: "qcow2",
      data: {
        compat: "1.1",
        "compression-type": "zlib",
        "lazy-refcounts": true,
        "refcount-bits": 4,
        corrupt: false,
        "extended-l2": false,
      },
    });
    await again.close();
  });

  it("rejects invalid option combinations like qemu-img", async () => {
    for (const o of ["compat=0.10,lazy_refcounts=on", "compat=0.10,refcount_bits=8", "cluster_size=1000", "extended_l2=on,cluster_size=4k", "refcount_bits=3", "compat=0.10,compression_type=zstd"]) {
      await expect(createImageOn(new MemoryBackend(), { format: "qcow2", size: 1 << 20, options: o }), o).rejects.toMatchObject({ code: "ERR_INVALID_OPTION" });
    }
  });

  it("grows the refcount table (relocating it) when the image outgrows it", async () => {
    // 512-byte clusters with 64-bit refcounts: one refcount block covers 64 clusters and one
    // table cluster covers 64 blocks, so 2 MiB of data needs a larger table.
    const mem = new MemoryBackend();
    const img = await createImageOn(mem, { format: "qcow2", size: 4 << 20, options: "cluster_size=512,refcount_bits=64" });
    const first = new DataView(mem.bytes().buffer).getBigUint64(48);
    const data = new Uint8Array(3 << 20).map((_, i) => (i * 13) & 0xff);
    await img.write(0, data);
    await img.flush();
    const moved = new DataView(mem.bytes().buffer, mem.bytes().byteOffset).getBigUint64(48);
    expect(moved).not.toBe(first);
    expect(Buffer.compare(Buffer.from(await img.read(0, data.length)), Buffer.from(data))).toBe(0);
    const c = await img.check();
    expect(c.corruptions + c.leaks, c.messages.join("\n")).toBe(0);
    await img.close();
  });
});

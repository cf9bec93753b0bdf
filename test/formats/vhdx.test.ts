/**
 * VHDX life cycle against an in-memory model: create (dynamic/fixed, 512/4096-byte sectors,
 * block_state_zero on/off), random writes, zero writes and discards, reopen, map, check; and
 * differencing images over a parent.
 */
import { describe, expect, it } from "vitest";
import { MemoryBackend, createImage, openImage, type BlockDevice } from "../../src/index.js";
import type { FileOpener, IoBackend } from "../../src/io/backend.js";
import { firstDiff, pattern, rng } from "../helpers/random.js";


async function expectModel(img: BlockDevice, model: Uint8Array): Promise<void> {
  const all = await img.read(0, img.size);
  expect(firstDiff(all, model), "first differing byte").toBe(-1);
  for (let off = 0; off < img.size; off += 1_048_573) {
    const n = Math.min(70_001, img.size - off);
    expect(firstDiff(await img.read(off, n), model.subarray(off, off + n))).toBe(-1);
  }
}

/** Random guest operations applied to the image and the model. */
async function randomOps(img: BlockDevice, model: Uint8Array, r: () => number, ops: number): Promise<void> {
  const MiB = 1 << 20;
  for (let i = 0; i < ops; i++) {
    const roll = r();
    const len = 1 + Math.floor(r() * (r() < 0.2 ? 3 * MiB : 70_000));
    const off = Math.floor(r() * Math.max(1, img.size - len));
    const n = Math.min(len, img.size - off);
    if (roll < 0.12) {
      await img.writeZeroes(off, n, { unmap: r() < 0.5 });
      model.fill(0, off, off + n);
    } else if (roll < 0.2) {
      // Discard drops whole blocks only; what the rest reads stays as it was. Dropped blocks read
      // zeros, in a differencing image too (never the parent's data).
      const info = await img.info();
      const bs = info.clusterSize!;
      await img.discard(off, n);
      const fixed = (info.formatSpecific?.data as Record<string, unknown>).subformat === "fixed";
      if (!fixed) {
        const first = Math.ceil(off / bs) * bs;
        const end = off + n >= img.size ? img.size : Math.floor((off + n) / bs) * bs;
        if (end > first) model.fill(0, first, end);
      }
    } else {
      const data = pattern(n, i + 1);
      await img.write(off, data);
      model.set(data, off);
    }
    if (r() < 0.1) await img.flush();
  }
}

const MiB = 1 << 20;

describe("vhdx life cycle", () => {
  const configs = [
    { name: "dynamic 512 zero-state", options: "block_size=1M", lss: 512 },
    { name: "dynamic 4096 not-present", options: "block_size=2M,block_state_zero=off,logical_sector_size=4096", lss: 4096 },
    { name: "fixed 512", options: "subformat=fixed,block_size=1M", lss: 512 },
    { name: "fixed 4096", options: "subformat=fixed,block_size=1M,logical_sector_size=4096,log_size=2M", lss: 4096 },
  ];
  for (const cfg of configs) {
    it(`${cfg.name}: random writes, zeroes and discards read back after reopen; check is clean`, async () => {
      const size = 13 * MiB + 3 * 4096; // a short last block
      const mem = new MemoryBackend();
      const img = await createImage(mem, { format: "vhdx", size, options: cfg.options });
      expect(img.size).toBe(size);
      const model = new Uint8Array(size);
      await randomOps(img, model, rng(size + cfg.lss), 60);
      await expectModel(img, model);
      await img.close();

      const again = await openImage(new MemoryBackend(mem.bytes().slice()), { format: "vhdx" });
      expect(again.size).toBe(size);
      await expectModel(again, model);
      const info = await again.info();
      expect((info.formatSpecific!.data as Record<string, unknown>)["logical-sector-size"]).toBe(cfg.lss);
      const check = await again.check();
      expect(check.messages).toEqual([]);
      expect(check.corruptions).toBe(0);
      // The map covers the disk and agrees with the contents: zero extents read as zeros.
      let pos = 0;
      for await (const e of again.extents()) {
        expect(e.offset).toBe(pos);
        pos += e.length;
        if (e.zero) expect(model.subarray(e.offset, e.offset + e.length).every((b) => b === 0)).toBe(true);
      }
      expect(pos).toBe(size);
      await again.close();
    });
  }

  it("an unwritten dynamic image maps as zero, present with block_state_zero and absent without", async () => {
    for (const [opt, present] of [["block_state_zero=on", true], ["block_state_zero=off", false]] as const) {
      const img = await createImage(new MemoryBackend(), { format: "vhdx", size: 8 * MiB, options: `block_size=1M,${opt}` });
      const ext = [];
      for await (const e of img.extents()) ext.push(e);
      expect(ext).toEqual([{ offset: 0, length: 8 * MiB, depth: 0, present, zero: true, data: false }]);
      await img.close();
    }
  });

  it("a write allocates one block and the map reports only that block as data", async () => {
    const img = await createImage(new MemoryBackend(), { format: "vhdx", size: 16 * MiB, options: "block_size=1M" });
    await img.write(5 * MiB + 100, new Uint8Array(10).fill(7));
    const data = [];
    for await (const e of img.extents()) if (e.data) data.push([e.offset, e.length]);
    expect(data).toEqual([[5 * MiB, MiB]]);
    const info = (await img.info()).formatSpecific!.data as Record<string, unknown>;
    expect([info["allocated-blocks"], info["total-blocks"]]).toEqual([1, 16]);
    await img.close();
  });

  it("writes survive a reopen after flush only (no close), by replaying the log or reading it", async () => {
    const mem = new MemoryBackend();
    const img = await createImage(mem, { format: "vhdx", size: 8 * MiB, options: "block_size=1M" });
    await img.write(3 * MiB, pattern(MiB + 5, 3));
    await img.flush();
    const copy = mem.bytes().slice();
    const ro = await openImage(new MemoryBackend(copy.slice(), { readOnly: true }), { format: "vhdx", readOnly: true });
    expect(firstDiff(await ro.read(3 * MiB, MiB + 5), pattern(MiB + 5, 3))).toBe(-1);
    expect((await ro.info()).dirty).toBe(false);
    await ro.close();
    await img.close();
  });

  it("size 0 and sizes that are not sector multiples", async () => {
    const zero = await createImage(new MemoryBackend(), { format: "vhdx", size: 0 });
    expect(zero.size).toBe(0);
    expect((await zero.check()).corruptions).toBe(0);
    await zero.close();
    const odd = await createImage(new MemoryBackend(), { format: "vhdx", size: 1000 });
    expect(odd.size).toBe(1024);
    await odd.close();
    const odd4k = await createImage(new MemoryBackend(), { format: "vhdx", size: 5000, options: "logical_sector_size=4096" });
    expect(odd4k.size).toBe(8192);
    await odd4k.close();
  });

  it("create refuses bad options with qemu's messages", async () => {
    const bad = async (size: number, options: string) =>
      createImage(new MemoryBackend(), { format: "vhdx", size, options }).then(
        () => "",
        (e: Error) => e.message,
      );
    expect(await bad(64 * 2 ** 40 + 512, "")).toMatch(/Image size too large; max of 64TB/);
    expect(await bad(MiB, "block_size=3M")).toMatch(/Block size must be a power of two/);
    expect(await bad(MiB, "block_size=512M")).toMatch(/Block size must not exceed 268435456/);
    expect(await bad(MiB, "log_size=4G")).toMatch(/Log size must be smaller than 4 GB/);
    expect(await bad(MiB, "logical_sector_size=1024")).toMatch(/logical_sector_size/);
    expect(await bad(MiB, "subformat=sparse")).toMatch(/subformat/);
  });
});

describe("vhdx resize", () => {
  for (const opts of ["block_size=1M", "block_size=2M,logical_sector_size=4096", "subformat=fixed,block_size=1M"]) {
    it(`grows and shrinks keeping data; the regrown range reads zeros (-o ${opts})`, async () => {
      const mem = new MemoryBackend();
      const img = await createImage(mem, { format: "vhdx", size: 5 * MiB + 8192, options: opts });
      const model = new Uint8Array(12 * MiB);
      const d = pattern(5 * MiB + 8192, 5);
      await img.write(0, d);
      model.set(d, 0);
      await img.resize!(12 * MiB);
      expect(img.size).toBe(12 * MiB);
      await img.write(11 * MiB, pattern(MiB, 6));
      model.set(pattern(MiB, 6), 11 * MiB);
      await expectModel(img, model);
      await img.resize!(3 * MiB + 4096);
      model.fill(0, 3 * MiB + 4096);
      await img.resize!(7 * MiB);
      expect(firstDiff(await img.read(0, 7 * MiB), model.subarray(0, 7 * MiB))).toBe(-1);
      await img.close();
      const again = await openImage(new MemoryBackend(mem.bytes().slice()), { format: "vhdx" });
      expect(again.size).toBe(7 * MiB);
      expect(firstDiff(await again.read(0, 7 * MiB), model.subarray(0, 7 * MiB))).toBe(-1);
      expect((await again.check()).corruptions).toBe(0);
      await again.close();
    });
  }

  it("refuses to grow past the BAT region and to resize a differencing image", async () => {
    const img = await createImage(new MemoryBackend(), { format: "vhdx", size: 64 * MiB, options: "block_size=1M" });
    // A 1 MiB BAT region holds 131072 entries: about 127 GiB of 1 MiB blocks.
    await expect(img.resize!(200 * 2 ** 30)).rejects.toThrow(/BAT region of 1 MiB holds 131072 entries/);
    await img.resize!(100 * 2 ** 30);
    expect(img.size).toBe(100 * 2 ** 30);
    await img.close();
  });
});

/** An opener over named in-memory files (each open gets its own view of the bytes). */
function memoryOpener(files: Map<string, MemoryBackend>): FileOpener {
  return async (req) => {
    const f = files.get(req.name);
    if (!f) throw Object.assign(new Error(`no file ${req.name}`), { name: "ImageError", code: "ERR_IO" });
    return new MemoryBackend(f.bytes(), { name: req.name, readOnly: !req.writable }) as IoBackend;
  };
}

describe("vhdx differencing images", () => {
  async function makeParent(size: number, lss: number): Promise<{ files: Map<string, MemoryBackend>; model: Uint8Array }> {
    const parentMem = new MemoryBackend(new Uint8Array(0), { name: "base.vhdx" });
    const parent = await createImage(parentMem, { format: "vhdx", size, options: `block_size=1M,logical_sector_size=${lss}` });
    const model = new Uint8Array(size);
    for (let i = 0; i < 6; i++) {
      const off = i * 1_300_000 + 17;
      if (off >= size) break;
      const data = pattern(Math.min(400_000, size - off), 100 + i);
      await parent.write(off, data);
      model.set(data, off);
    }
    await parent.close();
    return { files: new Map([["base.vhdx", parentMem]]), model };
  }

  for (const lss of [512, 4096]) {
    it(`reads through the parent and keeps sector-granular writes (${lss}-byte sectors)`, async () => {
      const size = 9 * MiB;
      const { files, model } = await makeParent(size, lss);
      const opener = memoryOpener(files);
      const childMem = new MemoryBackend(new Uint8Array(0), { name: "child.vhdx" });
      const child = await createImage(childMem, {
        format: "vhdx",
        backingFile: "base.vhdx",
        openFile: opener,
        backing: "any",
      });
      expect(child.size).toBe(size);
      expect(child.backing?.format).toBe("vhdx");
      await expectModel(child, model);
      // One sector in the middle of a parent block: the rest of the block still comes from the parent.
      await child.write(1_300_000 + lss * 3, new Uint8Array(lss).fill(0xee));
      model.fill(0xee, 1_300_000 + lss * 3, 1_300_000 + lss * 4);
      await randomOps(child, model, rng(lss), 40);
      await expectModel(child, model);
      const info = await child.info();
      const data = info.formatSpecific!.data as Record<string, unknown>;
      expect(data.subformat).toBe("differencing");
      expect((data["parent-locator"] as Record<string, string>).relative_path).toBe(".\\base.vhdx");
      await child.close();

      const again = await openImage(new MemoryBackend(childMem.bytes().slice(), { name: "child.vhdx" }), {
        format: "vhdx",
        openFile: opener,
        backing: "any",
      });
      await expectModel(again, model);
      expect((await again.check()).corruptions).toBe(0);
      // Ranges the child does not hold come from depth 1.
      let sawParent = false;
      let sawChild = false;
      for await (const e of again.extents()) {
        if (e.depth === 1 && e.data) sawParent = true;
        if (e.depth === 0 && e.data) sawChild = true;
      }
      expect(sawParent && sawChild).toBe(true);
      await again.close();
    });
  }

  it("a discarded block of a differencing image reads zeros, not the parent, also after a write into it", async () => {
    const { files, model } = await makeParent(4 * MiB, 512);
    const opener = memoryOpener(files);
    const child = await createImage(new MemoryBackend(new Uint8Array(0), { name: "child.vhdx" }), {
      format: "vhdx",
      options: "block_size=1M",
      backingFile: "base.vhdx",
      openFile: opener,
      backing: "any",
    });
    // The parent holds data here (its third pattern run covers 2.6M-3.0M).
    await child.write(2_700_288, new Uint8Array(512).fill(0x31));
    await child.flush();
    await child.discard(2 * MiB, MiB);
    model.fill(0, 2 * MiB, 3 * MiB);
    expect(firstDiff(await child.read(2 * MiB, MiB), model.subarray(2 * MiB, 3 * MiB))).toBe(-1);
    await child.write(2 * MiB + 8192, new Uint8Array(512).fill(0x32));
    model.fill(0x32, 2 * MiB + 8192, 2 * MiB + 8704);
    expect(firstDiff(await child.read(2 * MiB, MiB), model.subarray(2 * MiB, 3 * MiB))).toBe(-1);
    await child.close();
  });

  it("warns when the parent changed since the child was made (parent_linkage)", async () => {
    const { files } = await makeParent(4 * MiB, 512);
    const opener = memoryOpener(files);
    const childMem = new MemoryBackend(new Uint8Array(0), { name: "child.vhdx" });
    const child = await createImage(childMem, { format: "vhdx", backingFile: "base.vhdx", openFile: opener, backing: "any" });
    await child.close();
    // Writing to the parent gives it a new DataWriteGuid.
    const pm = new MemoryBackend(files.get("base.vhdx")!.bytes().slice(), { name: "base.vhdx" });
    const parent = await openImage(pm, { format: "vhdx" });
    await parent.write(0, new Uint8Array(512).fill(1));
    await parent.close();
    files.set("base.vhdx", new MemoryBackend(pm.bytes(), { name: "base.vhdx" }));
    const warnings: string[] = [];
    const again = await openImage(new MemoryBackend(childMem.bytes().slice(), { name: "child.vhdx" }), {
      format: "vhdx",
      openFile: opener,
      backing: "any",
      warn: (m) => warnings.push(m),
    });
    expect(warnings.join("\n")).toMatch(/DataWriteGuid .* the parent changed/);
    await again.close();
  });

  it("the library's default policy refuses to open the parent", async () => {
    const { files } = await makeParent(4 * MiB, 512);
    const opener = memoryOpener(files);
    const childMem = new MemoryBackend(new Uint8Array(0), { name: "child.vhdx" });
    await (await createImage(childMem, { format: "vhdx", backingFile: "base.vhdx", openFile: opener, backing: "any" })).close();
    await expect(openImage(new MemoryBackend(childMem.bytes().slice(), { name: "child.vhdx" }), { format: "vhdx", openFile: opener })).rejects.toMatchObject({
      code: "ERR_OPEN_DENIED",
    });
  });
});

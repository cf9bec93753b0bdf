/**
 * Crash consistency of VHDX writes: for every cut point of the write stream (and torn
 * multi-sector writes) the image opens read-write (replaying its log), checks without
 * corruptions and reads back everything flushed before the crash; opened read-only (log
 * replayed in memory) it reads the same bytes.
 */
import { describe, expect, it } from "vitest";
import { FaultBackend } from "../../src/io/fault-backend.js";
import { MemoryBackend, createImageOn, openImageOn } from "../../src/index.js";
import { runCrashHarness } from "../helpers/crash-harness.js";

const MiB = 1 << 20;

describe("vhdx crash consistency", () => {
  const cases: Array<[string, number, boolean]> = [
    ["block_size=1M", 4 * MiB, true],
    ["block_size=1M,block_state_zero=off,logical_sector_size=4096", 4 * MiB, true],
    ["subformat=fixed,block_size=1M", 4 * MiB, false],
  ];
  for (const [options, size, discardReadsZero] of cases) {
    it(`survives a crash at any write (-o ${options})`, async () => {
      const rep = await runCrashHarness({
        format: "vhdx",
        options,
        size,
        seed: options.length,
        operations: 20,
        maxLength: 250_000,
        ops: ["write", "write", "zero", "discard"],
        maxCuts: 150,
        discardReadsZero,
      });
      expect(rep.mutations).toBeGreaterThan(20);
      expect(rep.flushes).toBeGreaterThan(2);
      expect(rep.tornChecked).toBeGreaterThan(0);
    }, 60_000);
  }

  it("at every cut, a read-only open (log replayed in memory) reads what a read-write open (log written back) reads", async () => {
    const base = new MemoryBackend();
    await (await createImageOn(base, { format: "vhdx", size: 4 * MiB, options: "block_size=1M" })).close();
    const fault = FaultBackend.over(base.bytes());
    const img = await openImageOn(fault, { format: "vhdx" });
    for (let i = 0; i < 6; i++) {
      await img.write(i * 700_000 + 1234, new Uint8Array(200_000).fill(i + 1));
      if (i % 2 === 1) await img.flush();
    }
    await img.close();
    let dirty = 0;
    for (let n = 0; n <= fault.mutationCount; n++) {
      const rw = await openImageOn(await fault.replay({ ops: n }), { format: "vhdx" });
      const ro = await openImageOn(new MemoryBackend((await fault.replay({ ops: n })).bytes(), { readOnly: true }), { format: "vhdx", readOnly: true });
      if ((await ro.info()).dirty) dirty++;
      expect(Buffer.compare(await rw.read(0, rw.size), await ro.read(0, ro.size)), `cut ${n}`).toBe(0);
      await rw.close();
      await ro.close();
    }
    expect(dirty, "some cuts left a log to replay").toBeGreaterThan(0);
  }, 60_000);

  it("a failed data write or metadata commit surfaces as an error and the image stays consistent", async () => {
    for (const failAt of ["write", "flush"] as const) {
      const base = new MemoryBackend();
      await (await createImageOn(base, { format: "vhdx", size: 4 * MiB, options: "block_size=1M" })).close();
      const fault = FaultBackend.over(base.bytes());
      const img = await openImageOn(fault, { format: "vhdx" });
      await img.write(0, new Uint8Array(10000).fill(1));
      await img.flush();
      if (failAt === "write") {
        fault.failFromWrite(0);
        await expect(img.write(2 * MiB, new Uint8Array(50000).fill(2))).rejects.toMatchObject({ code: "ERR_IO" });
      } else {
        await img.write(2 * MiB, new Uint8Array(50000).fill(2));
        fault.failFromWrite(0);
        await expect(img.flush()).rejects.toMatchObject({ code: "ERR_IO" });
        // Metadata in memory no longer matches the file: further writes and flushes are refused.
        fault.failFromWrite(undefined);
        await expect(img.write(3 * MiB, new Uint8Array(10).fill(3))).rejects.toMatchObject({ code: "ERR_CORRUPT_IMAGE" });
        await expect(img.flush()).rejects.toMatchObject({ code: "ERR_CORRUPT_IMAGE" });
        await img.close().catch(() => {});
      }
      const after = await openImageOn(await fault.replay({ ops: fault.mutationCount }), { format: "vhdx" });
      expect((await after.check()).corruptions).toBe(0);
      expect(Array.from(await after.read(0, 4))).toEqual([1, 1, 1, 1]);
      await after.close();
    }
  });

  it("a differencing image survives a crash at any write (sector bitmaps and BAT through the log)", async () => {
    const parentMem = new MemoryBackend(new Uint8Array(0), { name: "p.vhdx" });
    const parent = await createImageOn(parentMem, { format: "vhdx", size: 4 * MiB, options: "block_size=1M" });
    await parent.write(0, new Uint8Array(4 * MiB).fill(0xaa));
    await parent.close();
    const openFile = async () => new MemoryBackend(parentMem.bytes(), { name: "p.vhdx", readOnly: true });
    const childMem = new MemoryBackend(new Uint8Array(0), { name: "c.vhdx" });
    await (await createImageOn(childMem, { format: "vhdx", backingFile: "p.vhdx", openFile, backing: "any" })).close();
    const fault = FaultBackend.over(childMem.bytes());
    const img = await openImageOn(fault, { format: "vhdx", openFile, backing: "any" });
    const model = new Uint8Array(4 * MiB).fill(0xaa);
    const epochs: Array<{ at: number; model: Uint8Array; touched: Array<[number, number]> }> = [{ at: 0, model: model.slice(), touched: [] }];
    for (let i = 0; i < 12; i++) {
      const off = ((i * 977) % 8000) * 512;
      const len = 512 * (1 + ((i * 37) % 40));
      epochs[epochs.length - 1].touched.push([off, off + len]);
      await img.write(off, new Uint8Array(len).fill(i + 1));
      model.fill(i + 1, off, off + len);
      if (i % 4 === 3) {
        await img.flush();
        epochs.push({ at: fault.mutationCount, model: model.slice(), touched: [] });
      }
    }
    await img.close();
    for (let n = 0; n <= fault.mutationCount; n++) {
      for (const tear of n % 3 === 0 ? [undefined, 2048] : [undefined]) {
        const mem = await fault.replay({ ops: n, tear });
        const child = await openImageOn(mem, { format: "vhdx", openFile, backing: "any" });
        expect((await child.check()).corruptions, `cut ${n}`).toBe(0);
        let e = epochs[0];
        for (const x of epochs) if (x.at <= n) e = x;
        const got = await child.read(0, child.size);
        const stable = new Uint8Array(child.size).fill(1);
        for (const [a, b] of e.touched) stable.fill(0, a, b);
        for (let i = 0; i < got.length; i++) {
          if (stable[i] && got[i] !== e.model[i]) throw new Error(`cut ${n}${tear ? " torn" : ""}: byte ${i} reads ${got[i]}, flushed ${e.model[i]}`);
          // Unflushed ranges read the parent or some write, never zeros (nothing wrote zeros).
          if (got[i] === 0) throw new Error(`cut ${n}: byte ${i} reads 0`);
        }
        await child.close();
      }
    }
  }, 60_000);
});

/**
 * The qcow2 write-back table cache: dirty tables stay cached until written, writes carry a
 * copy of the bytes as they were, a table whose write is on its way cannot be evicted (a reader
 * would reload the old bytes), and a failed write leaves the table dirty.
 */
import { describe, expect, it } from "vitest";
import { Qcow2TableCache } from "../../src/formats/qcow2/table-cache.js";

function harness(maxTables: number) {
  const disk = new Map<number, Uint8Array>();
  const loads: number[] = [];
  const cache = new Qcow2TableCache(maxTables, async (off) => {
    loads.push(off);
    return (disk.get(off) ?? new Uint8Array(8)).slice();
  });
  return { disk, loads, cache };
}

describe("Qcow2TableCache", () => {
  it("never evicts a dirty table, and evicts it once written back", async () => {
    const { disk, loads, cache } = harness(1);
    const a = await cache.get(0);
    a[3] = 7;
    cache.markDirty(0, 3, 4);
    await cache.get(100); // over capacity: only the clean table may go
    expect(await cache.get(0)).toBe(a);
    expect(loads).toEqual([0, 100]);
    expect(cache.dirtyCount).toBe(1);
    const written: Array<[number, number[]]> = [];
    expect(await cache.writeBack(async (off, bytes) => {
      written.push([off, Array.from(bytes)]);
      disk.set(0, a.slice());
    })).toBe(true);
    expect(written).toEqual([[3, [7]]]);
    expect(cache.dirtyCount).toBe(0);
    expect(await cache.writeBack(async () => { throw new Error("nothing to write"); })).toBe(false);
    await cache.get(200);
    await cache.get(0); // evicted after the write-back: loaded again, with the written byte
    expect(loads).toEqual([0, 100, 200, 0]);
    expect((await cache.get(0))[3]).toBe(7);
  });

  it("writes the bytes as they were when the write-back began; later changes stay dirty", async () => {
    const { cache } = harness(4);
    const t = await cache.get(0);
    t[0] = 1;
    cache.markDirty(0, 0, 1);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const written: number[][] = [];
    const wb = cache.writeBack(async (_off, bytes) => {
      await gate;
      written.push(Array.from(bytes));
    });
    t[0] = 2; // a change while the write is on its way
    cache.markDirty(0, 0, 1);
    release();
    await wb;
    expect(written).toEqual([[1]]);
    expect(cache.dirtyCount).toBe(1);
  });

  it("keeps a table whose write is in flight, so a reader cannot reload the old bytes", async () => {
    const { disk, loads, cache } = harness(1);
    const a = await cache.get(0);
    a[0] = 9;
    cache.markDirty(0, 0, 1);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const wb = cache.writeBack(async (off, bytes) => {
      await gate;
      disk.set(off, bytes.slice());
    });
    await cache.get(100); // would evict table 0 if it were not held
    expect((await cache.get(0))[0]).toBe(9);
    expect(loads.filter((o) => o === 0)).toHaveLength(1);
    release();
    await wb;
  });

  it("marks a table dirty again when its write fails, and reports the failure", async () => {
    const { cache } = harness(2);
    const t = await cache.get(0);
    t[5] = 1;
    cache.markDirty(0, 5, 6);
    await expect(cache.writeBack(async () => { throw new Error("EIO"); })).rejects.toThrow("EIO");
    expect(cache.dirtyCount).toBe(1);
    const written: number[] = [];
    await cache.writeBack(async (off) => { written.push(off); });
    expect(written).toEqual([5]);
  });

  it("drop forgets a dirty table (its cluster was freed); reset forgets everything", async () => {
    const { cache } = harness(2);
    await cache.get(0);
    cache.markDirty(0, 0, 8);
    cache.drop(0);
    expect(cache.dirtyCount).toBe(0);
    await cache.get(8);
    cache.markDirty(8, 0, 1);
    cache.reset();
    expect(cache.dirtyCount).toBe(0);
    expect(() => cache.markDirty(8, 0, 1)).toThrow(/not cached/);
  });
});

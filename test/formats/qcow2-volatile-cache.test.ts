/**
 * qcow2 under a volatile disk cache: a new L2 table and its refcount are flushed before the
 * L1 entry that points at them, and `check -r all` drops L2 entries whose data a crash left
 * past the end of the file (qemu-img reports those and cannot repair them).
 */
import { writeFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { FaultBackend } from "../../src/io/fault-backend.js";
import { MemoryBackend, createImageOn, openImageOn } from "../../src/index.js";
import { HAVE_QEMU, qemuCheck, tempDir } from "../helpers/qemu.js";

const CS = 4096;

async function emptyImage(options: string): Promise<Uint8Array> {
  const mem = new MemoryBackend();
  await (await createImageOn(mem, { format: "qcow2", size: 1 << 20, options })).close();
  return mem.bytes().slice();
}

describe("qcow2 with a volatile write cache", () => {
  for (const options of ["cluster_size=4k", "cluster_size=4k,lazy_refcounts=on"]) {
    it(`the L1 entry of a new L2 table is written only after a flush (-o ${options})`, async () => {
      const fault = FaultBackend.over(await emptyImage(options));
      const img = await openImageOn(fault, { format: "qcow2" });
      await img.write(0, new Uint8Array(CS).fill(7));
      const l1 = img.instance as unknown as { map: { l1TableOffset: number } };
      const l1Offset = l1.map.l1TableOffset;
      await img.close();
      // Every write before the L1 entry's is followed by a flush before the L1 write.
      let n = 0;
      let lastFlush = -1;
      let l1Write = -1;
      for (const op of fault.log) {
        if (op.kind === "flush") lastFlush = n;
        else {
          if (op.kind === "write" && op.offset === l1Offset && l1Write < 0) l1Write = n;
          n++;
        }
        if (l1Write >= 0) break;
      }
      expect(l1Write).toBeGreaterThan(0);
      expect(lastFlush).toBe(l1Write);
      // So any subset of the writes after that flush opens read-write and checks clean.
      const points = fault.flushPoints();
      const durable = points.filter((p) => p <= l1Write).at(-1)!;
      const next = points.find((p) => p > durable) ?? fault.mutationCount;
      const count = next - durable;
      expect(count).toBeLessThan(12);
      for (let mask = 0; mask < 1 << count; mask++) {
        const keep = new Set<number>();
        for (let b = 0; b < count; b++) if (mask & (1 << b)) keep.add(durable + b);
        const crashed = await openImageOn(await fault.replaySubset({ durable, keep }), { format: "qcow2" });
        const c = await crashed.check();
        expect(c.corruptions, `kept ${[...keep]}: ${c.messages.join("; ")}`).toBe(0);
        await crashed.close();
      }
    });
  }

  it("check -r all drops an L2 entry whose data cluster is past the end of the file", async () => {
    const mem = new MemoryBackend(await emptyImage("cluster_size=4k"));
    const img = await openImageOn(mem, { format: "qcow2" });
    await img.write(0, new Uint8Array(2 * CS).fill(5));
    await img.close();
    // The last data cluster's write was lost: the file ends before it.
    const cut = mem.bytes().slice(0, mem.bytes().length - CS);
    const tmp = tempDir();
    try {
      if (HAVE_QEMU) {
        writeFileSync(tmp.path("a.qcow2"), cut);
        expect(qemuCheck(tmp.path("a.qcow2")).status).toBe(2);
      }
      const file = new MemoryBackend(cut.slice());
      const crashed = await openImageOn(file, { format: "qcow2" });
      const before = await crashed.check();
      expect(before.corruptions).toBeGreaterThan(0);
      const fixed = await crashed.check("all");
      expect(fixed.corruptions).toBe(0);
      expect(fixed.corruptionsFixed).toBeGreaterThan(0);
      expect((await crashed.check()).corruptions).toBe(0);
      expect(Array.from(await crashed.read(0, 4))).toEqual([5, 5, 5, 5]);
      expect(Array.from(await crashed.read(CS, 4))).toEqual([0, 0, 0, 0]);
      await crashed.close();
      if (HAVE_QEMU) {
        writeFileSync(tmp.path("b.qcow2"), file.bytes());
        // 0: clean, 3: leaks only.
        expect([0, 3]).toContain(qemuCheck(tmp.path("b.qcow2")).status);
      }
    } finally {
      tmp.cleanup();
    }
  });
});

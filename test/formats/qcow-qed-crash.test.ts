/**
 * Crash consistency of QCOW (v1) and QED: a crash after any write of a random workload (and a
 * torn last write) leaves an image that opens, checks without corruptions (leaks allowed) and
 * reads every byte flushed before the crash as it was written.
 */
import { describe, expect, it } from "vitest";
import { FaultBackend } from "../../src/io/fault-backend.js";
import { MemoryBackend, createImageOn, openImageOn } from "../../src/index.js";
import { runCrashHarness } from "../helpers/crash-harness.js";
import { firstDifference, memoryOpener, pattern } from "./image-model.js";

describe("crash consistency", () => {
  for (const [format, options, ops] of [
    ["qcow", "", ["write", "zero", "compressed"]],
    ["qcow", "cluster_size=512", ["write", "zero"]],
    ["qed", "cluster_size=4k", ["write", "zero"]],
    ["qed", "cluster_size=4k,table_size=1", ["write", "zero"]],
    ["qed", "", ["write", "zero"]],
  ] as const) {
    it(`${format} ${options || "defaults"}: every crash point opens, checks clean and keeps flushed data`, async () => {
      const report = await runCrashHarness({
        format,
        options,
        size: 1 << 20,
        seed: 1234 + options.length,
        operations: 24,
        flushEvery: 4,
        ops: [...ops],
        maxLength: 30000,
        maxCuts: 50,
      });
      expect(report.cutsChecked).toBeGreaterThan(15);
      expect(report.flushes).toBeGreaterThan(4);
    });
  }
});

describe("qcow makeEmpty (the emptying after commit)", () => {
  it("a crash at any write, or a torn L1 write, leaves an image that checks clean and reads as its backing file", async () => {
    const size = 1 << 20;
    const baseBytes = pattern(size, 7);
    const opener = memoryOpener({ "base.raw": baseBytes });
    const mem = new MemoryBackend(new Uint8Array(0), { name: "top.qcow" });
    const top = await createImageOn(mem, {
      format: "qcow",
      options: "cluster_size=512",
      backingFile: "base.raw",
      backingFormat: "raw",
      backing: "any",
      openFile: opener,
    });
    // What commit left behind: the top holds the data its backing file now holds too.
    for (const off of [0, 40_000, 300_000, 700_000, size - 5000]) await top.write(off, baseBytes.subarray(off, off + 5000));
    await top.close();
    const fault = FaultBackend.over(mem.bytes());
    const img = await openImageOn(fault, { format: "qcow", backing: "any", openFile: opener });
    expect(img.capabilities.makeEmpty).toBe(true);
    await img.makeEmpty();
    await img.close();
    const total = fault.mutationCount;
    expect(total).toBeGreaterThan(1);
    const cuts: Array<{ ops: number; tear?: number }> = [];
    for (let n = 0; n <= total; n++) cuts.push({ ops: n });
    for (let n = 0; n < total; n++) {
      const op = fault.mutation(n);
      if (op?.kind === "write" && op.data.length > 8) cuts.push({ ops: n, tear: 8 * Math.floor(op.data.length / 16) });
    }
    for (const cut of cuts) {
      const after = await openImageOn(await fault.replay(cut), { format: "qcow", backing: "any", openFile: opener });
      const chk = await after.check();
      expect(chk.corruptions, `corruptions after a crash at ${JSON.stringify(cut)}`).toBe(0);
      const got = await after.read(0, size);
      expect(firstDifference(got, baseBytes), `reads after a crash at ${JSON.stringify(cut)}`).toBe(-1);
      await after.close();
    }
    const emptied = await openImageOn(await fault.replay({ ops: total }), { format: "qcow", backing: "any", openFile: opener });
    for await (const e of emptied.extents()) expect(e.depth, `extent at ${e.offset}`).toBe(1);
    await emptied.close();
  });
});

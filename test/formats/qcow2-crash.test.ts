/**
 * Crash consistency of qcow2 writes: for every cut point of the write stream (and torn
 * multi-sector writes), the image opens, checks without corruptions, and all data flushed
 * before the crash reads back.
 */
import { describe, expect, it } from "vitest";
import { FaultBackend } from "../../src/io/fault-backend.js";
import { MemoryBackend, createImageOn, openImageOn } from "../../src/index.js";
import { runCrashHarness } from "../helpers/crash-harness.js";

describe("qcow2 crash consistency", () => {
  const cases: Array<[string, number]> = [
    ["cluster_size=4k", 1 << 20],
    ["cluster_size=512,refcount_bits=64", 256 << 10],
    ["cluster_size=16k,extended_l2=on", 1 << 20],
    ["cluster_size=4k,lazy_refcounts=on", 1 << 20],
    ["compat=0.10,cluster_size=4k", 1 << 20],
  ];
  for (const [options, size] of cases) {
    it(`survives a crash at any write (-o ${options})`, async () => {
      const rep = await runCrashHarness({
        format: "qcow2",
        options,
        size,
        seed: options.length,
        operations: 24,
        maxLength: 20000,
        ops: ["write", "write", "zero", "discard", "compressed"],
        maxCuts: 1000,
      });
      expect(rep.mutations).toBeGreaterThan(20);
      expect(rep.flushes).toBeGreaterThan(2);
      expect(rep.tornChecked).toBeGreaterThan(0);
    });
  }

  it("a failed write surfaces as an error and the image stays consistent", async () => {
    const base = new MemoryBackend();
    await (await createImageOn(base, { format: "qcow2", size: 1 << 20, options: "cluster_size=4k" })).close();
    const fault = FaultBackend.over(base.bytes());
    const img = await openImageOn(fault, { format: "qcow2" });
    await img.write(0, new Uint8Array(10000).fill(1));
    await img.flush();
    fault.failFromWrite(fault.mutationCount + 1);
    await expect(img.write(200000, new Uint8Array(50000).fill(2))).rejects.toMatchObject({ code: "ERR_IO" });
    const after = await openImageOn(await fault.replay({ ops: fault.mutationCount }), { format: "qcow2" });
    const c = await after.check();
    expect(c.corruptions).toBe(0);
    expect(Array.from(await after.read(0, 4))).toEqual([1, 1, 1, 1]);
  });
});

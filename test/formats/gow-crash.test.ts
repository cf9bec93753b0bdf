/**
 * GOW under power cuts: a cut anywhere in a random workload (the crashable backend drops any
 * subset of the sectors written since the last flush) leaves an image that reopens with every
 * flushed write and checks without corruption.
 */
import { describe, expect, it } from "vitest";
import { FaultBackend } from "../../src/io/fault-backend.js";
import { MemoryBackend, createImage, createImageOn, openImage, openImageOn } from "../../src/index.js";
import { runCrashHarness } from "../helpers/crash-harness.js";
import { runCrashTrials } from "./gow-fvd-helpers.js";

const BLOCK = 65536;

describe("gow crash consistency", () => {
  it("a power cut anywhere keeps flushed writes and leaves no corruption", { timeout: 60000 }, async () => {
    for (const format of ["gow1", "gow2"]) {
      const size = 24 * BLOCK;
      await runCrashTrials(
        {
          label: format,
          size,
          make: (io) => createImage(io, { format, size }),
          reopen: (bytes, readOnly) => openImage(new MemoryBackend(bytes), { format, readOnly }),
        },
        { trials: format === "gow1" ? 14 : 3, ops: 14, seed: format === "gow1" ? 1 : 2 },
      );
    }
  });

  for (const format of ["gow1", "gow2"]) {
    it(`${format} survives a crash at any write of the stream, torn writes and a volatile cache included`, { timeout: 60000 }, async () => {
      const rep = await runCrashHarness({
        format,
        size: 16 * BLOCK,
        seed: 11,
        operations: 20,
        maxLength: 100000,
        ops: ["write", "write", "zero"],
        maxCuts: format === "gow1" ? 50 : 10,
        // A check scans the whole map (a million entries or more): fewer images than elsewhere.
        volatile: 20,
      });
      expect(rep.flushes).toBeGreaterThan(2);
      expect(rep.volatileChecked).toBe(20);
    });
  }

  it("the allocated counter is durable before the map entries that use its slots", async () => {
    const mem = new MemoryBackend();
    await (await createImageOn(mem, { format: "gow1", size: 8 * BLOCK })).close();
    const fault = FaultBackend.over(mem.bytes().slice());
    const img = await openImageOn(fault, { format: "gow1" });
    await img.write(2 * BLOCK, new Uint8Array(4096).fill(9));
    await img.write(5 * BLOCK, new Uint8Array(4096).fill(8));
    await img.close();
    // Every subset of the writes between two flushes (none needs a repair).
    const bounds = [0, ...fault.flushPoints(), fault.mutationCount];
    let images = 0;
    for (let b = 0; b + 1 < bounds.length; b++) {
      const count = bounds[b + 1] - bounds[b];
      expect(count).toBeLessThan(12);
      for (let mask = 0; mask < 1 << count; mask++) {
        const keep = new Set<number>();
        for (let k = 0; k < count; k++) if (mask & (1 << k)) keep.add(bounds[b] + k);
        const crashed = await openImageOn(await fault.replaySubset({ durable: bounds[b], keep }), { format: "gow1", readOnly: true });
        const c = await crashed.check();
        expect(c.corruptions, `kept [${[...keep]}] after ${bounds[b]}: ${c.messages.join("; ")}`).toBe(0);
        await crashed.close();
        images++;
      }
    }
    expect(images).toBeGreaterThan(4);
  });
});

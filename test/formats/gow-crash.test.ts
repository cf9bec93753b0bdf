/**
 * GOW under power cuts: a cut anywhere in a random workload (the crashable backend drops any
 * subset of the sectors written since the last flush) leaves an image that reopens with every
 * flushed write and checks without corruption.
 */
import { describe, expect, it } from "vitest";
import { MemoryBackend, createImage, openImage } from "../../src/index.js";
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
        volatile: 40,
      });
      expect(rep.flushes).toBeGreaterThan(2);
      expect(rep.volatileChecked).toBe(40);
    });
  }
});

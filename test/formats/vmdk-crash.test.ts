/**
 * monolithicSparse under power cuts: a cut at any write of a random workload (grain data,
 * grain table entries in both copies, the CID change of the descriptor), torn writes
 * included, leaves an image that opens, checks without corruption and keeps every flushed
 * write.
 */
import { describe, expect, it } from "vitest";
import { runCrashHarness } from "../helpers/crash-harness.js";

const GRAIN = 65536;

describe("vmdk crash consistency", () => {
  for (const [label, options, seed] of [["monolithicSparse", "", 21], ["monolithicSparse with zeroed grains", "zeroed_grain=on", 22]] as const) {
    it(`${label}: a crash anywhere keeps flushed writes and leaves no corruption`, { timeout: 60_000 }, async () => {
      const rep = await runCrashHarness({
        format: "vmdk",
        options,
        size: 24 * GRAIN + 512,
        seed,
        operations: 24,
        maxLength: 3 * GRAIN,
        ops: ["write", "write", "zero"],
        maxCuts: 60,
      });
      expect(rep.flushes).toBeGreaterThan(2);
      expect(rep.cutsChecked).toBeGreaterThan(20);
    });
  }
});

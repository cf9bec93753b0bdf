/**
 * Crash consistency of vpc, vdi and parallels writes (the shared harness): at every sampled
 * cut of the write stream, and with multi-sector writes torn, the image opens read-write
 * (parallels and VHD repair what the crash left, as QEMU's parallels driver does), checks
 * without corruptions (leaks allowed) and reads back everything flushed before the crash.
 */
import { describe, expect, it } from "vitest";
import { runCrashHarness } from "../helpers/crash-harness.js";

const MIB = 1 << 20;

describe("crash consistency of vpc, vdi and parallels", () => {
  const cases: Array<[string, string, number, Array<"write" | "zero" | "discard">]> = [
    ["vpc", "force_size=on", 7 * MIB, ["write", "write", "zero"]],
    ["vpc", "subformat=fixed,force_size=on", 3 * MIB, ["write", "zero"]],
    ["vdi", "", 5 * MIB, ["write", "write", "zero"]],
    ["vdi", "static=on", 3 * MIB, ["write", "zero"]],
    ["parallels", "cluster_size=64k", 3 * MIB, ["write", "write", "zero", "discard"]],
    ["parallels", "cluster_size=1M", 5 * MIB, ["write", "write", "zero", "discard"]],
  ];
  for (const [format, options, size, ops] of cases) {
    it(`${format} (-o ${options || "defaults"}) survives a crash at any write`, async () => {
      const rep = await runCrashHarness({
        format,
        options,
        size,
        seed: format.length * 31 + options.length,
        operations: 18,
        maxLength: 700_000,
        ops,
        maxCuts: 60,
        repairInOrder: format === "vdi",
      });
      expect(rep.mutations).toBeGreaterThan(10);
      expect(rep.flushes).toBeGreaterThan(2);
      expect(rep.cutsChecked).toBeGreaterThan(10);
    }, 60_000);
  }
});

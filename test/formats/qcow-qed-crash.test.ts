/**
 * Crash consistency of QCOW (v1) and QED: a crash after any write of a random workload (and a
 * torn last write) leaves an image that opens, checks without corruptions (leaks allowed) and
 * reads every byte flushed before the crash as it was written.
 */
import { describe, expect, it } from "vitest";
import { runCrashHarness } from "../helpers/crash-harness.js";

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

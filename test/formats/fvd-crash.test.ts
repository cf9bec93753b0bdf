/**
 * FVD under power cuts. Two models: the project's crash harness (every prefix of the write
 * stream, torn writes) and the crashable backend (any subset of the sectors written since the
 * last flush survives). In both, the reopened image (journal replayed) holds every flushed
 * write, a read-only open reads the same, and check finds no corruption.
 */
import { describe, expect, it } from "vitest";
import { MemoryBackend, createImage, openImage } from "../../src/index.js";
import type { IoBackend } from "../../src/io/backend.js";
import { runCrashHarness } from "../helpers/crash-harness.js";
import { fillPattern, runCrashTrials } from "./gow-fvd-helpers.js";

const KiB = 1024;
const MiB = 1 << 20;

function baseFile(): { data: Uint8Array; open: () => Promise<IoBackend> } {
  const data = fillPattern(768 * KiB, 77);
  data.fill(0, 100 * KiB, 200 * KiB);
  return { data, open: async () => new MemoryBackend(data.slice(), { name: "base.raw" }) };
}

describe("fvd crash consistency (prefix cuts and torn writes)", () => {
  for (const options of ["", "compact_image=on,chunk_size=4k,storage_grow_unit=16k,journal_size=4k"]) {
    it(`survives a crash at any write (-o ${options || "(plain)"})`, { timeout: 60000 }, async () => {
      const rep = await runCrashHarness({
        format: "fvd",
        options,
        size: MiB,
        seed: options.length + 3,
        operations: 24,
        maxLength: 40000,
        ops: ["write", "write", "zero"],
        maxCuts: 120,
      });
      expect(rep.flushes).toBeGreaterThan(2);
      expect(rep.cutsChecked).toBeGreaterThan(20);
    });
  }
});

describe("fvd crash consistency (unordered loss of unflushed sectors)", () => {
  const size = MiB + 64 * KiB;
  const scenarios: Array<[string, string, boolean]> = [
    ["plain", "", false],
    ["compact, 4 KiB chunks, recycling journal", "compact_image=on,chunk_size=4k,storage_grow_unit=8k,journal_size=4k", false],
    ["over a base", "journal_size=4k", true],
    ["compact over a base", "compact_image=on,chunk_size=16k,storage_grow_unit=32k,journal_size=4k", true],
  ];
  for (const [label, options, withBase] of scenarios) {
    it(`keeps flushed writes and leaves no corruption (${label})`, { timeout: 60000 }, async () => {
      const base = baseFile();
      const initial = new Uint8Array(size);
      if (withBase) initial.set(base.data);
      const opener = async (): Promise<IoBackend> => base.open();
      await runCrashTrials(
        {
          label,
          size,
          initial,
          make: (io) =>
            createImage(io, {
              format: "fvd",
              size,
              options,
              backingFile: withBase ? "base.raw" : undefined,
              backingFormat: withBase ? "raw" : undefined,
              backing: "any",
              openFile: opener,
            }),
          reopen: (bytes, readOnly) => openImage(new MemoryBackend(bytes), { format: "fvd", readOnly, backing: "any", openFile: opener }),
        },
        { trials: 16, ops: 14, seed: label.length, maxLength: 48 * KiB },
      );
    });
  }
});

/**
 * `check` for FVD (spec "Project decisions"): table entries in range, no physical chunk mapped
 * twice, leaked chunks below the highest used index, the data storage long enough. The header
 * rules of §1 are enforced at open (an image that breaks them does not open). Nothing is
 * repairable: FVD never relocates or frees chunks.
 * @module
 */
import type { CheckResult, RepairMode } from "../../core/format.js";
import type { FvdInstance } from "./instance.js";
import { FVD_EMPTY_TABLE, FVD_MAX_CHUNK_INDEX } from "./layout.js";

const MAX_MESSAGES = 100;

/** Checks the open image `inst` (metadata as in memory, which the caller flushed). */
export async function checkFvdImage(inst: FvdInstance, repair?: RepairMode): Promise<CheckResult> {
  const r: CheckResult = { corruptions: 0, leaks: 0, checkErrors: 0, corruptionsFixed: 0, leaksFixed: 0, messages: [] };
  const note = (m: string): void => {
    if (r.messages.length < MAX_MESSAGES) r.messages.push(m);
  };
  const g = inst.geo;
  const t = inst.table;
  if (t) {
    const list: number[] = [];
    for (let c = 0; c < t.length; c++) {
      const p = t.get(c);
      if (p === FVD_EMPTY_TABLE) continue;
      if (p > FVD_MAX_CHUNK_INDEX) {
        r.corruptions++;
        note(`ERROR table: chunk ${c} maps to the impossible index ${p}`);
        continue;
      }
      list.push(p);
    }
    const used = Uint32Array.from(list).sort();
    const twice = new Set<number>();
    let prev = -1;
    let leaks = 0;
    for (const p of used) {
      if (p === prev) {
        r.corruptions++;
        twice.add(p);
        continue;
      }
      if (p > prev + 1) {
        leaks += p - prev - 1;
        note(`Leaked physical chunks ${prev + 1}..${p - 1}: no table entry maps them`);
      }
      prev = p;
    }
    if (twice.size > 0) {
      const owners = new Map<number, number[]>();
      for (let c = 0; c < t.length; c++) {
        const p = t.get(c);
        if (twice.has(p)) owners.set(p, [...(owners.get(p) ?? []), c]);
      }
      for (const [p, chunks] of owners) note(`ERROR table: physical chunk ${p} is mapped by chunks ${chunks.join(", ")}`);
    }
    r.leaks += leaks;
    if (prev >= 0) {
      const need = g.dataBase + (prev + 1) * g.chunkSize;
      const have = await inst.dataFile.size();
      if (have < need) {
        r.corruptions++;
        note(`ERROR data: ${inst.dataFile.name} is ${have} bytes, but physical chunk ${prev} ends at ${need}`);
      }
    }
    r.totalClusters = t.length;
    r.allocatedClusters = used.length;
    if (repair && leaks > 0) note(`Leaked chunks cannot be reclaimed: FVD never relocates chunks`);
  }
  r.imageEndOffset = await inst.file.size();
  return r;
}

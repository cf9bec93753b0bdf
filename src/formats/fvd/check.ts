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
/** Table entries named per chunk that several map. */
const MAX_OWNERS_LISTED = 16;

/** Checks the open image `inst` (metadata as in memory, which the caller flushed). */
export async function checkFvdImage(inst: FvdInstance, repair?: RepairMode): Promise<CheckResult> {
  const r: CheckResult = { corruptions: 0, leaks: 0, checkErrors: 0, corruptionsFixed: 0, leaksFixed: 0, messages: [] };
  const note = (m: string): void => {
    if (r.messages.length < MAX_MESSAGES) r.messages.push(m);
  };
  const g = inst.geo;
  const t = inst.table;
  if (t) {
    // Typed arrays only, and owners listed for the first reported chunks alone: a table of
    // millions of entries that all map one chunk checks in bounded time and memory.
    const all = new Uint32Array(t.length);
    let count = 0;
    for (let c = 0; c < t.length; c++) {
      const p = t.get(c);
      if (p === FVD_EMPTY_TABLE) continue;
      if (p > FVD_MAX_CHUNK_INDEX) {
        r.corruptions++;
        note(`ERROR table: chunk ${c} maps to the impossible index ${p}`);
        continue;
      }
      all[count++] = p;
    }
    const used = all.subarray(0, count).sort();
    const twice = new Set<number>(); // at most MAX_MESSAGES chunks, the ones whose owners are listed
    let prev = -1;
    let leaks = 0;
    for (const p of used) {
      if (p === prev) {
        r.corruptions++;
        if (twice.size < MAX_MESSAGES) twice.add(p);
        continue;
      }
      if (p > prev + 1) {
        leaks += p - prev - 1;
        note(`Leaked physical chunks ${prev + 1}..${p - 1}: no table entry maps them`);
      }
      prev = p;
    }
    if (twice.size > 0) {
      const owners = new Map<number, { chunks: number[]; more: number }>();
      for (let c = 0; c < t.length; c++) {
        const p = t.get(c);
        if (!twice.has(p)) continue;
        let o = owners.get(p);
        if (!o) owners.set(p, (o = { chunks: [], more: 0 }));
        if (o.chunks.length < MAX_OWNERS_LISTED) o.chunks.push(c);
        else o.more++;
      }
      for (const [p, o] of owners) {
        const more = o.more > 0 ? ` and ${o.more} more` : "";
        note(`ERROR table: physical chunk ${p} is mapped by chunks ${o.chunks.join(", ")}${more}`);
      }
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

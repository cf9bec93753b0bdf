/**
 * Consistency check of a QCOW (v1) image. qemu-img has none for this format; this one checks
 * what can go wrong with QCOW's append-only allocation:
 * - every L1/L2 entry lies inside the file and is cluster-aligned (compressed data: inside);
 * - no cluster is referenced twice (compressed streams may share clusters with each other, but
 *   not with tables or data clusters);
 * - space that nothing references is a leak (harmless: a crash between reserving and linking
 *   a cluster leaves one).
 *
 * Repair (`-r leaks` or `all`) truncates leaked space at the end of the file; `all` also clears
 * entries that point outside the file and grows the file under a cluster cut short by it.
 * Clusters referenced twice and misaligned entries are reported, not repaired.
 * @module
 */
import type { CheckResult, RepairMode } from "../../core/format.js";
import type { IoBackend } from "../../io/backend.js";
import { CheckMessages, ClusterBitmap, emptyCheckResult } from "../shared/check-tools.js";
import type { QcowLayout } from "./header.js";
import { encodeQcowL2Entry } from "./layout.js";
import type { QcowTables } from "./tables.js";

interface Pass {
  result: CheckResult;
  /** Repairs made (entries cleared, file grown or shrunk). */
  fixes: number;
  leaksFixed: number;
}

async function checkPass(tables: QcowTables, file: IoBackend, layout: QcowLayout, repair?: RepairMode): Promise<Pass> {
  const fixAll = repair === "all";
  const { clusterSize: cs, l2Bytes, l2Entries, l2Span, clusterBits } = tables.geo;
  let fileSize = await file.size();
  const nClusters = Math.ceil(fileSize / cs);
  const used = new ClusterBitmap(nClusters);
  const packed = new ClusterBitmap(nClusters);
  const msgs = new CheckMessages();
  const result: CheckResult = { ...emptyCheckResult(Math.ceil(tables.size / cs)), compressedClusters: 0 };
  let fixes = 0;
  const corrupt = (fixed: boolean, line: string) => {
    if (fixed) {
      result.corruptionsFixed++;
      fixes++;
      msgs.add("repair", `Repairing ${line}`);
    } else {
      result.corruptions++;
      msgs.add("error", `ERROR ${line}`);
    }
  };
  const clusterOf = (off: number) => Math.floor(off / cs);
  const touched = (off: number, len: number) => clusterOf(off + len - 1) - clusterOf(off) + 1;

  // Header, backing name and L1 table: metadata that may share clusters with each other.
  const h = layout.header;
  // QEMU writes the L1 table padded to whole sectors.
  let metaEnd = h.l1TableOffset + Math.ceil((tables.l1Entries * 8) / 512) * 512;
  if (layout.backingName !== undefined) metaEnd = Math.max(metaEnd, h.backingFileOffset + h.backingFileSize);
  used.setRange(0, touched(0, metaEnd));
  let refEnd = metaEnd;

  let lastData = -1;
  for (let i = 0; i < tables.l1Entries; i++) {
    const l2 = tables.l1Entry(i);
    if (l2 === 0) continue;
    if (!Number.isFinite(l2) || l2 % cs !== 0 || l2 + l2Bytes > fileSize) {
      const why = !Number.isFinite(l2) || l2 + l2Bytes > fileSize
        ? `lies outside the file (${fileSize} bytes)`
        : `is not aligned to the cluster size ${cs}`;
      const canFix = fixAll && why.startsWith("lies");
      if (canFix) await tables.setL1Entry(i, 0);
      corrupt(canFix, `L1 entry ${i}: L2 table at offset ${l2} ${why}`);
      continue;
    }
    if (used.setRange(clusterOf(l2), touched(l2, l2Bytes)) > 0) {
      corrupt(false, `L1 entry ${i}: L2 table at offset ${l2} overlaps other metadata or data`);
      continue;
    }
    refEnd = Math.max(refEnd, l2 + l2Bytes);
    let table: Uint8Array;
    try {
      table = await tables.l2Table(l2, i);
    } catch (e) {
      result.checkErrors++;
      msgs.add("error", `ERROR reading L2 table at offset ${l2}: ${(e as Error).message}`);
      continue;
    }
    let dirty = false;
    const view = new DataView(table.buffer, table.byteOffset, table.byteLength);
    for (let j = 0; j < l2Entries; j++) {
      const e = tables.l2Entry(table, j);
      if (e.kind === "unallocated") continue;
      const guest = i * l2Span + j * cs;
      result.allocatedClusters!++;
      if (e.kind === "compressed") {
        result.compressedClusters!++;
        if (e.compressedSize === 0 || !(e.offset + e.compressedSize <= fileSize)) {
          if (fixAll) {
            encodeQcowL2Entry(view, j * 8, { kind: "unallocated" }, clusterBits);
            dirty = true;
          }
          corrupt(fixAll, `compressed cluster for guest offset ${guest} at offset ${e.offset} (${e.compressedSize} bytes) lies outside the file`);
          continue;
        }
        packed.setRange(clusterOf(e.offset), touched(e.offset, e.compressedSize));
        refEnd = Math.max(refEnd, e.offset + e.compressedSize);
        continue;
      }
      if (lastData >= 0 && e.offset !== lastData + cs) result.fragmentedClusters!++;
      lastData = e.offset;
      if (!Number.isFinite(e.offset) || e.offset >= fileSize) {
        if (fixAll) {
          encodeQcowL2Entry(view, j * 8, { kind: "unallocated" }, clusterBits);
          dirty = true;
        }
        corrupt(fixAll, `L2 entry for guest offset ${guest}: cluster at offset ${e.offset} lies outside the file (${fileSize} bytes)`);
        continue;
      }
      if (e.offset % cs !== 0) {
        corrupt(false, `L2 entry for guest offset ${guest}: cluster offset ${e.offset} is not aligned to the cluster size ${cs}`);
      } else if (e.offset + cs > fileSize) {
        if (fixAll) {
          await file.truncate(e.offset + cs);
          fileSize = e.offset + cs;
          tables.setFileLength(fileSize);
        }
        corrupt(fixAll, `L2 entry for guest offset ${guest}: cluster at offset ${e.offset} is cut short by the end of the file`);
      }
      if (used.setRange(clusterOf(e.offset), touched(e.offset, cs)) > 0) {
        corrupt(false, `cluster at offset ${e.offset} (guest offset ${guest}) is referenced twice`);
      }
      refEnd = Math.max(refEnd, e.offset + cs);
    }
    if (dirty) await file.write(l2, table);
  }

  for (let c = 0; c < nClusters; c++) {
    if (used.has(c) && packed.has(c)) corrupt(false, `compressed data overlaps the cluster at offset ${c * cs}`);
  }
  let leaksFixed = 0;
  for (let c = 0; c < nClusters; c++) {
    if (used.has(c) || packed.has(c)) continue;
    result.leaks++;
    msgs.add("leak", `Leaked cluster at offset ${c * cs}`);
  }
  if (repair && result.leaks > 0 && fileSize > refEnd) {
    // Only space past the last reference can go without moving anything.
    leaksFixed = nClusters - Math.ceil(refEnd / cs);
    await file.truncate(refEnd);
    fileSize = refEnd;
    tables.setFileLength(refEnd);
    fixes++;
  }
  if (fixes > 0) tables.invalidate();
  result.imageEndOffset = refEnd;
  result.messages = msgs.finish();
  return { result, fixes, leaksFixed };
}

/**
 * Checks the image and, with `repair`, repairs what can be repaired, then checks again: the
 * counts returned are what remains, `corruptionsFixed`/`leaksFixed` what was repaired.
 */
export async function checkQcow(
  tables: QcowTables,
  file: IoBackend,
  layout: QcowLayout,
  repair?: RepairMode,
): Promise<CheckResult> {
  const first = await checkPass(tables, file, layout, repair);
  if (!repair || first.fixes === 0) return first.result;
  await file.flush();
  const again = await checkPass(tables, file, layout);
  return {
    ...again.result,
    corruptionsFixed: first.result.corruptionsFixed,
    leaksFixed: first.leaksFixed,
    messages: [...first.result.messages, ...again.result.messages],
  };
}

/**
 * QED consistency check with qemu-img's semantics (`block/qed-check.c` behaviour, QEMU 7.2):
 * - every L1 entry names a table that lies in whole clusters after the header and inside the
 *   file; every L2 entry other than 0 and 1 (zero cluster) names such a cluster;
 * - no cluster is referenced twice (a table that overlaps an earlier reference is skipped);
 * - clusters after the header that nothing references are leaks (never repaired: QED has no
 *   way to free space, and leaks are harmless).
 *
 * Repairing (either `-r leaks` or `-r all`, as qemu-img) clears invalid entries; duplicates stay
 * corruptions. Counts of allocated and fragmented clusters follow qemu-img's.
 * @module
 */
import type { CheckResult } from "../../core/format.js";
import { CheckMessages, ClusterBitmap, emptyCheckResult } from "../shared/check-tools.js";
import { qedClusterOffsetValid, qedTableOffsetValid } from "./header.js";
import { QED_ZERO_CLUSTER, readQedEntry, writeQedEntry } from "./layout.js";
import type { QedTables } from "./tables.js";

/**
 * One pass over the tables. With `fix`, invalid entries are cleared in the file (and counted in
 * `corruptionsFixed` instead of `corruptions`).
 */
export async function checkQedTables(tables: QedTables, fix: boolean): Promise<CheckResult> {
  const { clusterSize: cs, tableSize, tableEntries, headerBytes } = tables.geo;
  await tables.refreshEnd();
  const fileClusters = tables.fileClusters;
  const nClusters = fileClusters / cs;
  const used = new ClusterBitmap(nClusters);
  const msgs = new CheckMessages();
  const result = emptyCheckResult(Math.ceil(tables.size / cs));
  const invalid = (line: string) => {
    if (fix) {
      result.corruptionsFixed++;
      msgs.add("repair", `Repairing ${line}`);
    } else {
      result.corruptions++;
      msgs.add("error", `ERROR ${line}`);
    }
  };
  const markUsed = (offset: number, count: number, what: string): boolean => {
    const dup = used.setRange(offset / cs, count);
    if (dup > 0) {
      result.corruptions += dup;
      msgs.add("error", `ERROR ${what} at offset ${offset} is referenced more than once`);
    }
    return dup === 0;
  };

  markUsed(tables.l1TableOffset, tableSize, "L1 table");
  let l1Changed = false;
  for (let i = 0; i < tableEntries; i++) {
    const l2 = tables.l1Entry(i);
    if (l2 === 0) continue;
    if (!qedTableOffsetValid(tables.geo, l2, fileClusters)) {
      invalid(`L1 entry ${i}: invalid L2 table offset ${l2}`);
      if (fix) {
        tables.setL1EntryInMemory(i, 0);
        l1Changed = true;
      }
      continue;
    }
    if (!markUsed(l2, tableSize, "L2 table")) continue;
    let table: Uint8Array;
    try {
      table = await tables.readL2(l2);
    } catch (e) {
      result.checkErrors++;
      msgs.add("error", `ERROR reading L2 table at offset ${l2}: ${(e as Error).message}`);
      continue;
    }
    let copy: Uint8Array | undefined;
    const view = new DataView(table.buffer, table.byteOffset, table.byteLength);
    let last = 0;
    for (let j = 0; j < tableEntries; j++) {
      const off = readQedEntry(view, j);
      if (off === 0 || off === QED_ZERO_CLUSTER) continue;
      result.allocatedClusters!++;
      if (last !== 0 && last + cs !== off) result.fragmentedClusters!++;
      last = off;
      if (!qedClusterOffsetValid(tables.geo, off, fileClusters)) {
        invalid(`L2 table at ${l2}, entry ${j}: invalid cluster offset ${off}`);
        if (fix) {
          copy ??= table.slice();
          writeQedEntry(new DataView(copy.buffer), j, 0);
        }
        continue;
      }
      markUsed(off, 1, "cluster");
    }
    if (copy) await tables.storeL2(l2, copy);
  }
  if (l1Changed) await tables.writeL1();
  if (result.checkErrors === 0) {
    for (let c = headerBytes / cs; c < nClusters; c++) {
      if (!used.has(c)) {
        result.leaks++;
        msgs.add("leak", `Leaked cluster at offset ${c * cs}`);
      }
    }
  }
  result.messages = msgs.finish();
  return result;
}

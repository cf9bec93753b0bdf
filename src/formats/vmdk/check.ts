/**
 * `check` with QEMU's semantics: every grain of every extent is looked up; the first grain
 * table that cannot be read or the first grain that points past the end of its file is one
 * corruption, and the walk stops there. QEMU's check then fails ("Check failed", exit code 1),
 * so the result also counts one check error. A data grain that ends past the end of the file
 * (vdisk's own finding) is a corruption only. VMDK has no allocation bookkeeping, so there are
 * no leaks to find.
 * @module
 */
import { pushCheckMessage } from "../../core/check-messages.js";
import type { CheckResult } from "../../core/format.js";
import type { VmdkExtent } from "./extent.js";
import { VMDK_SECTOR_SIZE } from "./layout.js";
import { VMDK_FILE_TOO_SHORT } from "./sparse-extent.js";

/** Checks `extents` (which start at the guest offsets `starts`). */
export async function checkVmdk(extents: readonly VmdkExtent[], starts: readonly number[]): Promise<CheckResult> {
  const result: CheckResult = { corruptions: 0, leaks: 0, checkErrors: 0, corruptionsFixed: 0, leaksFixed: 0, messages: [] };
  for (let i = 0; i < extents.length; i++) {
    const problem = await extents[i].check(starts[i] / VMDK_SECTOR_SIZE);
    if (problem) {
      result.corruptions = 1;
      // A file that ends inside a grain is vdisk's finding (qemu-img does not look): a plain
      // corruption that `-r all` repairs, not a failed check.
      result.checkErrors = problem.endsWith(VMDK_FILE_TOO_SHORT) ? 0 : 1;
      pushCheckMessage(result.messages, problem);
      break;
    }
  }
  return result;
}

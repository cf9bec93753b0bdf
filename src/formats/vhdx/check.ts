/**
 * `check` for VHDX. Like qemu: a log replayed on open counts as one corruption fixed, and BAT
 * entries pointing past the end of the file are corruptions. vdisk also reports invalid header
 * and region table copies (and repairs them with `-r all`), invalid block states, blocks over
 * the log or metadata, and blocks sharing file space.
 * @module
 */
import { pushCheckMessage, pushCheckMessages } from "../../core/check-messages.js";
import type { CheckResult, RepairMode } from "../../core/format.js";
import type { VhdxOpenState } from "./instance.js";
import { VHDX_REGION_TABLE_OFFSETS } from "./region-table.js";

const entries = (n: number) => `${n} ${n === 1 ? "entry" : "entries"}`;

/** Checks (and with `repair === "all"` repairs) the image described by `state`. */
export async function checkVhdx(state: VhdxOpenState, repair: RepairMode | undefined, dropCaches: () => void): Promise<CheckResult> {
  const r: CheckResult = { corruptions: 0, leaks: 0, checkErrors: 0, corruptionsFixed: 0, leaksFixed: 0, messages: [] };
  const fix = repair === "all" && state.writable && state.journal;

  if (state.logState === "replayed") {
    r.corruptionsFixed++;
    pushCheckMessage(r.messages, `VHDX log (${entries(state.logEntries)}) was replayed when the image was opened`);
  } else if (state.logState === "replayed-in-memory") {
    r.corruptions++;
    pushCheckMessage(r.messages, `VHDX log holds ${entries(state.logEntries)} never replayed (read in memory; check -r all writes them)`);
  }

  const headerProblems = state.headers.problems();
  if (headerProblems.length > 0) {
    if (fix) {
      await state.journal!.rewriteHeaders();
      r.corruptionsFixed += headerProblems.length;
      pushCheckMessages(r.messages, headerProblems.map((p) => `${p}: rewritten`));
    } else {
      r.corruptions += headerProblems.length;
      pushCheckMessages(r.messages, headerProblems);
    }
  }

  if (state.regions.problems.length > 0) {
    if (fix) {
      await state.journal!.beginFileWrite();
      for (const o of VHDX_REGION_TABLE_OFFSETS) await state.rawFile.write(o, state.regions.raw);
      await state.rawFile.flush();
      r.corruptionsFixed += state.regions.problems.length;
      pushCheckMessages(r.messages, state.regions.problems.map((p) => `${p}: rewritten from region table ${state.regions.copy}`));
      state.regions.problems.length = 0;
    } else {
      r.corruptions += state.regions.problems.length;
      pushCheckMessages(r.messages, state.regions.problems);
    }
  }

  const fileSize = await state.file.size();
  const scan = state.bat.scan(fileSize, state.reserved, true);
  for (const p of scan.problems) {
    r.corruptions++;
    pushCheckMessage(r.messages, p.message);
  }
  dropCaches();
  // Like qemu, no allocation totals or image end offset: `info` shows the block counts.
  return r;
}

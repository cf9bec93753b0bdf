/**
 * `vdisk check`: consistency check with optional repair (qemu-img check), qemu-img's exit
 * codes: 0 clean, 1 check failed, 2 corruptions, 3 leaks only, 63 no check for the format.
 * @module
 */
import type { CheckResult, RepairMode } from "../../core/format.js";
import { checkImage } from "../../ops/check.js";
import { formatF } from "../../ops/number-format.js";
import { optFlag, optString } from "../args.js";
import { FORCE_SHARE_OPTION, HELP_OPTION, OUTPUT_OPTION, UNSUPPORTED_OPTIONS, outputFormat, parseCommandArgs } from "../common.js";
import type { Command, CommandContext } from "../context.js";
import { CliError, UsageError, errorText } from "../errors.js";
import { closingAfter, openCliImage } from "../open-image.js";
import { toQemuJson, type QJson } from "../qemu-json.js";

const SPECS = [
  HELP_OPTION,
  OUTPUT_OPTION,
  FORCE_SHARE_OPTION,
  ...UNSUPPORTED_OPTIONS,
  { key: "format", short: "f", long: "format", value: true },
  { key: "repair", short: "r", long: "repair", value: true },
  { key: "quiet", short: "q", long: "quiet" },
  { key: "cache", short: "T", long: "cache", value: true },
];

/** Exit code of `qemu-img check` for a completed check. */
export function checkExitCode(r: CheckResult): number {
  if (r.checkErrors > 0) return 1;
  if (r.corruptions > 0) return 2;
  if (r.leaks > 0) return 3;
  return 0;
}

/** The `qemu-img check --output=json` object. */
export function checkJson(r: CheckResult, filename: string, format: string): QJson {
  const nz = (n: number | undefined): number | undefined => (n ? n : undefined);
  return {
    filename,
    format,
    "check-errors": r.checkErrors,
    "image-end-offset": nz(r.imageEndOffset),
    corruptions: nz(r.corruptions),
    leaks: nz(r.leaks),
    "corruptions-fixed": nz(r.corruptionsFixed),
    "leaks-fixed": nz(r.leaksFixed),
    "total-clusters": nz(r.totalClusters),
    "allocated-clusters": nz(r.allocatedClusters),
    "fragmented-clusters": nz(r.fragmentedClusters),
    "compressed-clusters": nz(r.compressedClusters),
  };
}

/** The human summary of `qemu-img check` (after the repair notice, if any). */
export function checkHuman(r: CheckResult): string {
  let s = "";
  if (r.corruptions === 0 && r.leaks === 0 && r.checkErrors === 0) {
    s += "No errors were found on the image.\n";
  } else {
    if (r.corruptions) {
      s += `\n${r.corruptions} errors were found on the image.\nData may be corrupted, or further writes to the image may corrupt it.\n`;
    }
    if (r.leaks) {
      s += `\n${r.leaks} leaked clusters were found on the image.\nThis means waste of disk space, but no harm to data.\n`;
    }
    if (r.checkErrors) s += `\n${r.checkErrors} internal errors have occurred during the check.\n`;
  }
  const total = r.totalClusters ?? 0;
  const alloc = r.allocatedClusters ?? 0;
  if (total !== 0 && alloc !== 0) {
    const pct = (n: number, d: number): string => formatF((n * 100) / d, 2);
    s += `${alloc}/${total} = ${pct(alloc, total)}% allocated, ${pct(r.fragmentedClusters ?? 0, alloc)}% fragmented, ${pct(r.compressedClusters ?? 0, alloc)}% compressed clusters\n`;
  }
  if (r.imageEndOffset) s += `Image end offset: ${r.imageEndOffset}\n`;
  return s;
}

/** `vdisk check`: qemu-img check: consistency check and repair, with its exit codes. */
export const checkCommand: Command = {
  name: "check",
  synopsis: "check [-f FMT] [-r leaks|all] [--output=human|json] [-q] [-U] FILE",
  help: `usage: vdisk check [-f FMT] [-r leaks|all] [--output=human|json] [-q] [-U] FILE

Checks an image's metadata for consistency and optionally repairs it.
Exit codes: 0 no problems, 1 the check could not complete, 2 corruptions found, 3 only leaked
clusters found, 63 the format has no check.

  -f, --format FMT   image format (probed when absent)
  -r, --repair MODE  leaks: free leaked clusters; all: also fix corruptions (opens read-write)
  --output=FMT       human (default) or json
  -q, --quiet        print nothing but errors
  -U, --force-share  accepted for qemu-img compatibility
`,
  async run(argv: string[], ctx: CommandContext): Promise<number> {
    const args = parseCommandArgs(this, argv, SPECS, ctx);
    if (!args) return 0;
    const output = outputFormat(args);
    const repairText = optString(args, "repair");
    let repair: RepairMode | undefined;
    if (repairText !== undefined) {
      if (repairText !== "leaks" && repairText !== "all") {
        throw new UsageError(`Unknown option value for -r (expecting 'leaks' or 'all'): ${repairText}`);
      }
      repair = repairText;
    }
    if (args.operands.length !== 1) throw new UsageError("Expecting one image file name");
    const quiet = optFlag(args, "quiet");
    const path = args.operands[0];
    const { device } = await openCliImage(path, {
      format: optString(args, "format"),
      readOnly: !repair,
      warn: ctx.warn,
    });
    return closingAfter(() => [device], async () => {
      let outcome;
      try {
        outcome = await checkImage(device, repair);
      } catch (e) {
        throw new CliError(`Check failed: ${errorText(e)}`, 1, { cause: e });
      }
      if (!outcome.supported) throw new CliError("This image format does not support checks", 63);
      for (const m of outcome.messages) ctx.err(`${m}\n`);
      const r = outcome.result;
      if (output === "json") {
        ctx.out(toQemuJson(checkJson(r, path, device.format)) + "\n");
      } else if (!quiet) {
        if (outcome.repaired) {
          ctx.out(
            `The following inconsistencies were found and repaired:\n\n    ${r.leaksFixed} leaked clusters\n    ${r.corruptionsFixed} corruptions\n\nDouble checking the fixed image now...\n`,
          );
        }
        ctx.out(checkHuman(r));
      }
      if (r.checkErrors > 0) throw new CliError("Check failed");
      return checkExitCode(r);
    });
  },
};

/**
 * `vdisk rebase`: changes the backing file of an image (qemu-img rebase), safe (copying what
 * differs between the old and the new backing file first) or unsafe (`-u`, the reference only).
 * `-b ""` rebases onto no backing file; for FVD it is the format's flatten.
 * @module
 */
import type { BackingReference } from "../../core/format.js";
import { findDriver } from "../../formats/registry.js";
import { canRebase, rebaseImage, whyNoRebase } from "../../ops/rebase.js";
import { optFlag, optString, parseArgs } from "../args.js";
import { FORCE_SHARE_OPTION, HELP_OPTION, UNSUPPORTED_OPTIONS, rejectUnsupported } from "../common.js";
import type { Command, CommandContext } from "../context.js";
import { CliError, UsageError, errorText } from "../errors.js";
import { combineBackingPath, openCliImage, type CliImage } from "../open-image.js";
import { interruptible } from "../interrupt.js";
import { progressPrinter } from "../progress.js";

const SPECS = [
  HELP_OPTION,
  FORCE_SHARE_OPTION,
  ...UNSUPPORTED_OPTIONS,
  { key: "format", short: "f", long: "format", value: true },
  { key: "backing", short: "b", long: "backing", value: true },
  { key: "backing-format", short: "F", long: "backing-format", value: true },
  { key: "unsafe", short: "u", long: "unsafe" },
  { key: "progress", short: "p", long: "progress" },
  { key: "quiet", short: "q", long: "quiet" },
  { key: "cache", short: "t", long: "cache", value: true },
  { key: "src-cache", short: "T", long: "src-cache", value: true },
];

/** `vdisk rebase`: qemu-img rebase. */
export const rebaseCommand: Command = {
  name: "rebase",
  synopsis: "rebase [-f FMT] [-u] -b BACKING [-F BACKING_FMT] [-p] [-q] FILE",
  help: `usage: vdisk rebase [-f FMT] [-u] -b BACKING [-F BACKING_FMT] [-p] [-q] FILE

Changes the backing file of FILE to BACKING, a name relative to FILE's directory unless
absolute, with format BACKING_FMT (required with a non-empty BACKING). BACKING "" rebases onto
no backing file: FILE then holds all its data itself. qcow2 and qed record a new backing file;
for fvd only -b "" (safe mode) is possible: it pulls the base image's remaining blocks in and
marks the image as no longer using it.

Safe mode (the default) keeps FILE's contents: ranges FILE reads from its backing file and where
the old and the new backing file differ are copied into FILE first. It needs the old backing
file. Unsafe mode (-u) only changes the name: use it when the file was moved or renamed.

  -f, --format FMT           format of FILE (probed when absent)
  -b, --backing BACKING      the new backing file ("" for none; -u without -b means "")
  -F, --backing-format FMT   format of the new backing file
  -u, --unsafe               change the reference only
  -p, --progress             show progress
  -q, --quiet                print nothing but errors
  -t, -T CACHE               accepted for qemu-img compatibility
  -U, --force-share          accepted for qemu-img compatibility
`,
  async run(argv: string[], ctx: CommandContext): Promise<number> {
    const args = parseArgs(argv, SPECS);
    if (optFlag(args, "help")) {
      ctx.out(this.help);
      return 0;
    }
    rejectUnsupported(args);
    const unsafe = optFlag(args, "unsafe");
    const backingArg = optString(args, "backing");
    if (!unsafe && backingArg === undefined) throw new UsageError("Must specify backing file (-b) or use unsafe mode (-u)");
    if (args.operands.length !== 1) throw new UsageError("Expecting one image file name");
    const backingName = backingArg ?? "";
    const backingFormat = optString(args, "backing-format");
    const quiet = optFlag(args, "quiet");
    const path = args.operands[0];
    const cannotChange = (why: string): CliError => new CliError(`Could not change the backing file to '${backingName}': ${why}`);

    const image = await openCliImage(path, { format: optString(args, "format"), noBacking: unsafe, warn: ctx.warn });
    let newBacking: CliImage | undefined;
    const progress = progressPrinter(ctx, optFlag(args, "progress") && !quiet);
    try {
      let ref: BackingReference | undefined;
      if (backingName !== "") {
        if (backingFormat === undefined) throw cannotChange("backing format must be specified");
        if (!findDriver(backingFormat)) throw new CliError(`Invalid format name: '${backingFormat}'`);
        ref = { name: backingName, format: backingFormat };
      }
      const device = image.device;
      if (!canRebase(device, ref, unsafe)) {
        throw cannotChange(device.capabilities.flatten ? whyNoRebase(device) : "Operation not supported");
      }
      if (ref && !unsafe) {
        const newPath = combineBackingPath(path, ref.name);
        try {
          newBacking = await openCliImage(newPath, { format: ref.format, readOnly: true, warn: ctx.warn });
        } catch (e) {
          throw new CliError(`Could not open new backing file '${ref.name}': ${errorText(e)}`, 1, { cause: e });
        }
      }
      try {
        await interruptible(progress, (signal) =>
          rebaseImage(device, ref, {
            unsafe,
            newBacking: newBacking?.device,
            signal,
            onProgress: progress.update,
          }),
        );
      } catch (e) {
        throw new CliError(errorText(e), 1, { cause: e });
      }
      return 0;
    } finally {
      progress.done();
      await newBacking?.device.close();
      await image.device.close();
    }
  },
};

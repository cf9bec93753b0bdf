/**
 * `vdisk compare`: are two images' guest contents the same (qemu-img compare)? Exit codes:
 * 0 identical, 1 different, 2 an image could not be opened, 3/4 an error while comparing.
 * @module
 */
import { compareImages } from "../../ops/compare.js";
import { optFlag, optString } from "../args.js";
import { FORCE_SHARE_OPTION, HELP_OPTION, UNSUPPORTED_OPTIONS, cliKernel, parseCommandArgs } from "../common.js";
import type { Command, CommandContext } from "../context.js";
import { CliError, UsageError, errorText } from "../errors.js";
import { closingAfter, openCliImage, type CliImage } from "../open-image.js";
import { progressPrinter } from "../progress.js";

const SPECS = [
  HELP_OPTION,
  FORCE_SHARE_OPTION,
  ...UNSUPPORTED_OPTIONS,
  { key: "a-format", short: "f", long: "a-format", value: true },
  { key: "b-format", short: "F", long: "b-format", value: true },
  { key: "strict", short: "s", long: "strict" },
  { key: "quiet", short: "q", long: "quiet" },
  { key: "progress", short: "p", long: "progress" },
  { key: "cache", short: "T", long: "cache", value: true },
];

async function open(path: string, format: string | undefined): Promise<CliImage> {
  try {
    return await openCliImage(path, { format, readOnly: true });
  } catch (e) {
    throw new CliError(errorText(e), 2, { cause: e });
  }
}

/** `vdisk compare`: qemu-img compare: guest contents of two images, with its exit codes. */
export const compareCommand: Command = {
  name: "compare",
  synopsis: "compare [-f FMT] [-F FMT] [-s] [-p] [-q] [-U] FILE1 FILE2",
  help: `usage: vdisk compare [-f FMT] [-F FMT] [-s] [-p] [-q] [-U] FILE1 FILE2

Compares the guest contents of two images. When their sizes differ, the extra part of the larger
one must read as zeros. Exit codes: 0 identical, 1 different, 2 an image could not be opened,
3 or 4 an error while comparing.

  -f, --a-format FMT  format of FILE1 (probed when absent)
  -F, --b-format FMT  format of FILE2 (probed when absent)
  -s, --strict        also fail when sizes or allocation status differ
  -p, --progress      show progress
  -q, --quiet         print nothing but errors
  -U, --force-share   accepted for qemu-img compatibility
`,
  async run(argv: string[], ctx: CommandContext): Promise<number> {
    const args = parseCommandArgs(this, argv, SPECS, ctx);
    if (!args) return 0;
    if (args.operands.length !== 2) throw new UsageError("Expecting two image file names");
    const quiet = optFlag(args, "quiet");
    const say = (t: string): void => {
      if (!quiet) ctx.out(t);
    };
    const progress = progressPrinter(ctx, optFlag(args, "progress") && !quiet);
    const [p1, p2] = args.operands;
    let a: CliImage | undefined;
    let b: CliImage | undefined;
    try {
      return await closingAfter(() => [b?.device, a?.device], async () => {
        a = await open(p1, optString(args, "a-format"));
        b = await open(p2, optString(args, "b-format"));
        let result;
        try {
          result = await compareImages(a.device, b.device, {
            strict: optFlag(args, "strict"),
            kernel: await cliKernel(),
            onProgress: progress.update,
            equal: (x, y) => Buffer.from(x.buffer, x.byteOffset, x.length).equals(Buffer.from(y.buffer, y.byteOffset, y.length)),
          });
        } catch (e) {
          throw new CliError(errorText(e), 4, { cause: e });
        }
        switch (result.kind) {
          case "size-mismatch":
            say("Strict mode: Image size mismatch!\n");
            return 1;
          case "status-mismatch":
            say(`Strict mode: Offset ${result.offset} block status mismatch!\n`);
            return 1;
          case "content-mismatch":
            if (result.sizeMismatch) say("Warning: Image size mismatch!\n");
            say(`Content mismatch at offset ${result.offset}!\n`);
            return 1;
          case "identical":
            if (result.sizeMismatch) say("Warning: Image size mismatch!\n");
            say("Images are identical.\n");
            return 0;
        }
      });
    } finally {
      progress.done();
    }
  },
};

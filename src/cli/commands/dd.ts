/**
 * `vdisk dd`: qemu-img dd — copy blocks of an image (`bs=`, `count=`, `skip=`) into a new image
 * of any format. The copy is the library's `ddImage`.
 * @module
 */
import { parseSize } from "../../core/options.js";
import { ddImage, ddPlan } from "../../ops/dd.js";
import { optString } from "../args.js";
import { FORCE_SHARE_OPTION, HELP_OPTION, UNSUPPORTED_OPTIONS, cliKernel, parseCommandArgs } from "../common.js";
import { PROGRAM, type Command, type CommandContext } from "../context.js";
import { CliError } from "../errors.js";
import { interruptible } from "../interrupt.js";
import { closingAfter, createCliImage, openCliImage, type CliImage } from "../open-image.js";
import { progressPrinter } from "../progress.js";
import { requireFormat } from "./create.js";

const SPECS = [
  HELP_OPTION,
  FORCE_SHARE_OPTION,
  ...UNSUPPORTED_OPTIONS,
  { key: "format", short: "f", long: "format", value: true },
  { key: "output-format", short: "O", long: "output-format", value: true },
];

const SUFFIX_HINT = "You may use k, M, G, T, P or E suffixes for kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.";

/** A `bs=`/`count=`/`skip=` value (size suffixes allowed, as qemu-img's cvtnum). */
function number(text: string, what: "bs" | "count" | "skip"): number {
  let v: number;
  try {
    v = parseSize(text);
  } catch {
    v = NaN;
  }
  if (what === "bs") {
    if (!(v >= 1 && v <= 0x7fffffff)) throw new CliError("Invalid bs specified. Must be between 1 and 2147483647.");
  } else if (!(v >= 0)) {
    throw new CliError(`Invalid ${what} specified. ${SUFFIX_HINT}`);
  }
  return v;
}

/** `vdisk dd`: qemu-img dd. */
export const ddCommand: Command = {
  name: "dd",
  synopsis: "dd [-f FMT] [-O FMT] [bs=N] [count=N] [skip=N] if=INPUT of=OUTPUT",
  help: `usage: vdisk dd [-f FMT] [-O FMT] [bs=BLOCK_SIZE] [count=BLOCKS] [skip=BLOCKS] if=INPUT of=OUTPUT

Creates OUTPUT (format -O, default raw) and copies into it COUNT blocks of BLOCK_SIZE bytes of
INPUT, starting SKIP blocks in (all of INPUT after the skipped blocks without count=). Sizes take
the suffixes k, M, G, T, P and E. Zero ranges are not written, so OUTPUT stays sparse.

  -f, --format FMT          format of INPUT (probed when absent)
  -O, --output-format FMT   format of OUTPUT (default raw)
  bs=BLOCK_SIZE             bytes per block (default 512)
  count=BLOCKS              blocks to copy
  skip=BLOCKS               blocks of INPUT to skip first
  -U, --force-share         accepted for qemu-img compatibility
`,
  async run(argv: string[], ctx: CommandContext): Promise<number> {
    const args = parseCommandArgs(this, argv, SPECS, ctx);
    if (!args) return 0;
    const values = new Map<string, string>();
    for (const op of args.operands) {
      const eq = op.indexOf("=");
      const key = eq < 0 ? op : op.slice(0, eq);
      if (eq < 0 || !["bs", "count", "skip", "if", "of"].includes(key)) throw new CliError(`unrecognized operand ${key}`);
      values.set(key, op.slice(eq + 1));
    }
    const blockSize = values.has("bs") ? number(values.get("bs")!, "bs") : 512;
    const count = values.has("count") ? number(values.get("count")!, "count") : undefined;
    const skip = values.has("skip") ? number(values.get("skip")!, "skip") : 0;
    const input = values.get("if");
    const output = values.get("of");
    if (!input || !output) throw new CliError("Must specify both input and output files");
    const outDriver = requireFormat(optString(args, "output-format") ?? "raw");
    let src: CliImage | undefined;
    let dst: CliImage | undefined;
    const progress = progressPrinter(ctx, false);
    return closingAfter(() => [dst?.device, src?.device], async () => {
      src = await openCliImage(input, { format: optString(args, "format"), readOnly: true, warn: ctx.warn });
      const plan = ddPlan(src.device.size, { blockSize, count, skip });
      try {
        dst = await createCliImage(output, { format: outDriver.name, size: plan.targetSize, warn: ctx.warn });
      } catch (e) {
        throw new CliError(`${output}: error while creating output image: ${e instanceof Error ? e.message : String(e)}`, 1, { cause: e });
      }
      if (plan.skipPastEnd) {
        // qemu-img's behaviour: the (empty) output stays, the message is printed, exit 0.
        ctx.err(`${PROGRAM}: ${input}: cannot skip to specified offset\n`);
        return 0;
      }
      await cliKernel();
      await interruptible(progress, (signal) => ddImage(src!.device, dst!.device, { blockSize, count, skip, signal }));
      return 0;
    });
  },
};

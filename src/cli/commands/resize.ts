/**
 * `vdisk resize`: changes the virtual size of an image (qemu-img resize), with its messages and
 * exit codes: "Image resized." and 0, or one error line and 1.
 * @module
 */
import { parseSize } from "../../core/options.js";
import { isImageError } from "../../errors.js";
import { canResize, resizeImage, resizeTarget, type ResizeRequest } from "../../ops/resize.js";
import { optFlag, optString, parseArgs } from "../args.js";
import { HELP_OPTION, UNSUPPORTED_OPTIONS, rejectUnsupported } from "../common.js";
import { PROGRAM, type Command, type CommandContext } from "../context.js";
import { CliError, UsageError, errorText } from "../errors.js";
import { openCliImage } from "../open-image.js";

const SPECS = [
  HELP_OPTION,
  ...UNSUPPORTED_OPTIONS,
  { key: "format", short: "f", long: "format", value: true },
  { key: "quiet", short: "q", long: "quiet" },
  { key: "shrink", long: "shrink" },
  { key: "preallocation", long: "preallocation", value: true },
];

const PREALLOCATION_MODES = ["off", "metadata", "falloc", "full"];

const SIZE_ERROR = [
  "Parameter 'size' expects a non-negative number below 2^64",
  "Optional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-",
  "and exabytes, respectively.",
].join("\n");

/** Parses `[+|-]SIZE` as qemu-img resize does (a fraction needs a unit suffix). */
export function parseResizeSize(text: string): ResizeRequest {
  const sign = text.startsWith("+") ? 1 : text.startsWith("-") ? -1 : 0;
  const body = sign === 0 ? text : text.slice(1);
  const m = /^(\d+)(\.\d+)?([a-zA-Z]*)$/.exec(body);
  if (!m || (m[2] && !/^[kmgtpe]/i.test(m[3]))) throw new CliError(SIZE_ERROR);
  let bytes: number;
  try {
    bytes = parseSize(body);
  } catch {
    throw new CliError(SIZE_ERROR);
  }
  return { bytes, sign };
}

/** `vdisk resize`: qemu-img resize. */
export const resizeCommand: Command = {
  name: "resize",
  synopsis: "resize [-f FMT] [--shrink] [--preallocation=off] [-q] FILE [+|-]SIZE",
  help: `usage: vdisk resize [-f FMT] [--shrink] [--preallocation=off] [-q] FILE [+|-]SIZE

Changes the virtual size of an image to SIZE, or by SIZE with a leading + or -. Sizes take the
suffixes k, M, G, T, P and E (powers of 1024). Growing adds space that reads as zeros (or as the
backing file where the format reads unallocated space from it). Shrinking is refused unless
--shrink is given: the data past the new end is lost. Formats that cannot change their size
(vpc, vdi, vmdk, qcow, parallels) report it; qed cannot shrink.

  -f, --format FMT   image format (probed when absent)
  --shrink           allow a smaller size
  --preallocation=off  accepted for qemu-img compatibility (other modes are not supported)
  -q, --quiet        print nothing but errors
`,
  async run(argv: string[], ctx: CommandContext): Promise<number> {
    if (argv.includes("-h") || argv.includes("--help")) {
      ctx.out(this.help);
      return 0;
    }
    // The size is always the last argument, taken before options are parsed so that a
    // negative size is not read as an option (as qemu-img does).
    if (argv.length < 2) throw new UsageError("Not enough arguments");
    const sizeText = argv[argv.length - 1];
    const args = parseArgs(argv.slice(0, -1), SPECS);
    if (optFlag(args, "help")) {
      ctx.out(this.help);
      return 0;
    }
    rejectUnsupported(args);
    if (args.operands.length !== 1) throw new UsageError("Expecting image file name and size");
    const prealloc = optString(args, "preallocation");
    if (prealloc !== undefined) {
      if (!PREALLOCATION_MODES.includes(prealloc)) throw new CliError(`Invalid preallocation mode '${prealloc}'`);
      if (prealloc !== "off") throw new CliError(`Preallocation mode '${prealloc}' is not supported by vdisk resize`);
    }
    const request = parseResizeSize(sizeText);
    const quiet = optFlag(args, "quiet");
    const path = args.operands[0];
    const { device } = await openCliImage(path, { format: optString(args, "format"), warn: ctx.warn });
    try {
      const target = resizeTarget(device.size, request);
      if (target <= 0) throw new CliError("New image size must be positive");
      if (target < device.size && !optFlag(args, "shrink")) {
        ctx.err(`${PROGRAM}: Use the --shrink option to perform a shrink operation.\n`);
        ctx.warn(
          "Shrinking an image will delete all data beyond the shrunken image's end. Before performing such an operation, make sure there is no important data there.",
        );
        return 1;
      }
      if (!canResize(device)) throw new CliError("Image format driver does not support resize");
      try {
        await resizeImage(device, target, { shrink: true });
      } catch (e) {
        if (isImageError(e) || e instanceof RangeError) throw new CliError(errorText(e), 1, { cause: e });
        throw e;
      }
      if (!quiet) ctx.out("Image resized.\n");
      return 0;
    } finally {
      await device.close();
    }
  },
};

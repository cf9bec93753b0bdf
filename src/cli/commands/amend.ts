/**
 * `vdisk amend`: changes options of an existing image (qemu-img amend): qcow2's amendable
 * options, FVD's header attributes. Other formats: "Format driver 'X' does not support option
 * amendment", exit code 1.
 * @module
 */
import type { CreateOptionSpec } from "../../core/format.js";
import { splitOptionString } from "../../core/options.js";
import { amendImage, amendOptions } from "../../ops/amend.js";
import { optFlag, optString, parseArgs } from "../args.js";
import { HELP_OPTION, UNSUPPORTED_OPTIONS, rejectUnsupported } from "../common.js";
import { PROGRAM, type Command, type CommandContext } from "../context.js";
import { CliError, UsageError, errorText } from "../errors.js";
import { openCliImage } from "../open-image.js";

const SPECS = [
  HELP_OPTION,
  ...UNSUPPORTED_OPTIONS,
  { key: "format", short: "f", long: "format", value: true },
  { key: "options", short: "o", long: "options", value: true, repeat: true },
  { key: "progress", short: "p", long: "progress" },
  { key: "quiet", short: "q", long: "quiet" },
  { key: "cache", short: "t", long: "cache", value: true },
  { key: "force", long: "force" },
];

const TYPE_LABEL: Record<CreateOptionSpec["type"], string> = {
  size: "size",
  number: "num",
  bool: "bool (on/off)",
  string: "str",
  enum: "str",
};

/** The `-o help` text for `format`, as qemu-img amend prints it. */
function amendHelp(format: string): string {
  const specs = amendOptions(format);
  if (!specs) throw new CliError(`Format driver '${format}' does not support option amendment`);
  const lines = specs.map((s) => `  ${`${s.name}=<${TYPE_LABEL[s.type]}>`.padEnd(22)} - ${s.help}`);
  return `Amend options for '${format}':\n${lines.join("\n")}\n`;
}

/** `vdisk amend`: qemu-img amend. */
export const amendCommand: Command = {
  name: "amend",
  synopsis: "amend [-f FMT] -o OPTIONS [-q] FILE",
  help: `usage: vdisk amend [-f FMT] -o OPTIONS [-q] FILE

Changes options of an existing image: OPTIONS is name=value,... ('-o help' lists the options of
FILE's format).
  qcow2: lazy_refcounts=on|off and size (growing or shrinking); compat, refcount_bits,
         backing_file, backing_fmt, data_file and data_file_raw only with the image's current
         value (use 'rebase' to change the backing file).
  fvd:   the header attributes of FVD's 'qemu-img update' (size, base_img, data_file,
         need_zero_init, copy_on_read, clean_shutdown and the prefetch settings).
Other formats have no amendable options.

  -f, --format FMT   image format (probed when absent)
  -o, --options OPTS options to change (repeatable; joined with commas)
  -q, --quiet        print nothing but errors
  -p, -t CACHE, --force  accepted for qemu-img compatibility
`,
  async run(argv: string[], ctx: CommandContext): Promise<number> {
    const args = parseArgs(argv, SPECS);
    if (optFlag(args, "help")) {
      ctx.out(this.help);
      return 0;
    }
    rejectUnsupported(args);
    const list = args.lists.get("options") ?? [];
    if (list.length === 0) throw new UsageError("Must specify options (-o)");
    const options = list.join(",");
    const wantsHelp = splitOptionString(options).some(([k]) => k === "help" || k === "?");
    const format = optString(args, "format");
    if (wantsHelp && format !== undefined) {
      ctx.out(amendHelp(format));
      return 0;
    }
    if (args.operands.length !== 1) throw new UsageError("Expecting one image file name");
    const path = args.operands[0];
    // Amending never reads guest data: the backing chain is not opened (a moved base image can
    // be renamed in an FVD header).
    const { device } = await openCliImage(path, { format, noBacking: true, warn: ctx.warn });
    try {
      if (wantsHelp) {
        ctx.out(amendHelp(device.format));
        return 0;
      }
      try {
        await amendImage(device, options);
      } catch (e) {
        const hint = (e as { hint?: unknown }).hint;
        if (typeof hint === "string") {
          ctx.err(`${PROGRAM}: ${errorText(e)}\n${hint}\n`);
          return 1;
        }
        throw new CliError(errorText(e), 1, { cause: e });
      }
      return 0;
    } finally {
      await device.close();
    }
  },
};

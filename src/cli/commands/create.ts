/**
 * `vdisk create`: a new, empty image (qemu-img create).
 * @module
 */
import type { CreateOptionSpec, FormatDriver } from "../../core/format.js";
import { parseCreateOptions, parseSize, splitOptionString } from "../../core/options.js";
import { findDriver } from "../../formats/registry.js";
import { optFlag, optString, type ParsedArgs } from "../args.js";
import { HELP_OPTION, UNSUPPORTED_OPTIONS, parseCommandArgs } from "../common.js";
import type { Command, CommandContext } from "../context.js";
import { CliError, UsageError, errorText } from "../errors.js";
import { combineBackingPath, createCliImage, openCliImage } from "../open-image.js";

const SPECS = [
  HELP_OPTION,
  ...UNSUPPORTED_OPTIONS,
  { key: "format", short: "f", long: "format", value: true },
  { key: "options", short: "o", long: "options", value: true, repeat: true },
  { key: "backing", short: "b", long: "backing", value: true },
  { key: "backing-format", short: "F", long: "backing-format", value: true },
  { key: "unsafe", short: "u", long: "unsafe" },
  { key: "quiet", short: "q", long: "quiet" },
];

const TYPE_LABEL: Record<CreateOptionSpec["type"], string> = {
  size: "size",
  number: "num",
  bool: "bool (on/off)",
  string: "str",
  enum: "str",
};

/** The driver for a `-f`/`-O` name (aliases accepted); a usage error naming it otherwise. */
export function requireFormat(name: string): FormatDriver {
  const d = findDriver(name);
  if (!d) throw new CliError(`Unknown file format '${name}'`);
  return d;
}

/** `-o help` text for `driver`: every option, sorted, as qemu-img lists them. */
export function createOptionsHelp(driver: FormatDriver): string {
  const specs: CreateOptionSpec[] = [
    ...driver.createOptions,
    { name: "size", type: "size", help: "Virtual disk size" },
  ];
  if (driver.supportsBacking) {
    specs.push(
      { name: "backing_file", type: "string", help: "File name of a base image" },
      { name: "backing_fmt", type: "string", help: "Image format of the base image" },
    );
  }
  specs.sort((x, y) => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0));
  const lines = specs.map((s) => {
    let help = s.help;
    if (s.type === "enum" && s.values && !help.includes("allowed values")) help += ` (allowed values: ${s.values.join(", ")})`;
    return `  ${`${s.name}=<${TYPE_LABEL[s.type]}>`.padEnd(22)} - ${help}`;
  });
  return `Supported ${driver.name} options:\n${lines.join("\n")}\n`;
}

/** All `-o` strings joined, as qemu-img merges repeated `-o`. */
export function joinedOptions(args: ParsedArgs): string | undefined {
  const list = args.lists.get("options");
  return list && list.length > 0 ? list.join(",") : undefined;
}

/** True for `-o help` / `-o ?`. */
export function wantsOptionHelp(options: string | undefined): boolean {
  return options !== undefined && splitOptionString(options).some(([k]) => k === "help" || k === "?");
}

/** Parses a size argument with qemu-img's message on failure. */
export function parseSizeArg(text: string): number {
  try {
    const v = parseSize(text);
    if (v < 0) throw new RangeError("negative");
    return v;
  } catch {
    throw new CliError(
      "Invalid image size specified. You may use k, M, G, T, P or E suffixes for kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.",
    );
  }
}

function optionValueText(v: string | number | boolean): string {
  return typeof v === "boolean" ? (v ? "on" : "off") : String(v);
}

/**
 * Splits `-o` text into the driver's own options (validated) and the generic ones qemu-img also
 * accepts there (`size`, `backing_file`, `backing_fmt`).
 */
export function splitCreateOptions(
  driver: FormatDriver,
  text: string | undefined,
): { values: Record<string, string | number | boolean>; size?: string; backingFile?: string; backingFormat?: string } {
  const rest: Array<[string, string]> = [];
  let size: string | undefined;
  let backingFile: string | undefined;
  let backingFormat: string | undefined;
  for (const [k, v] of splitOptionString(text ?? "")) {
    if (k === "size") size = v;
    else if (k === "backing_file") backingFile = v;
    else if (k === "backing_fmt") backingFormat = v;
    else rest.push([k, v]);
  }
  const values = { ...parseCreateOptions(driver.name, driver.createOptions, rest) };
  return { values, size, backingFile, backingFormat };
}

/** `vdisk create`: qemu-img create: a new empty image. */
export const createCommand: Command = {
  name: "create",
  synopsis: "create [-f FMT] [-o OPTIONS] [-b BACKING -F BACKING_FMT] [-u] [-q] FILE [SIZE]",
  help: `usage: vdisk create [-f FMT] [-o OPTIONS] [-b BACKING -F BACKING_FMT] [-u] [-q] FILE [SIZE]

Creates a new image of SIZE bytes (suffixes k, M, G, T, P, E: powers of 1024). With a backing
file the size defaults to the backing file's.

  -f, --format FMT           format to create (default raw)
  -o, --options OPTS         format options, name=value,... ('-o help' lists them)
  -b, --backing FILE         backing file to record (relative names are relative to FILE)
  -F, --backing-format FMT   the backing file's format (required with -b, as qemu-img 7.2)
  -u, --unsafe               record the backing file without opening it (SIZE is then required)
  -q, --quiet                do not print the "Formatting" line
`,
  async run(argv: string[], ctx: CommandContext): Promise<number> {
    const args = parseCommandArgs(this, argv, SPECS, ctx);
    if (!args) return 0;
    const formatName = optString(args, "format") ?? "raw";
    const optText = joinedOptions(args);
    if (wantsOptionHelp(optText)) {
      ctx.out(createOptionsHelp(requireFormat(formatName)));
      return 0;
    }
    if (args.operands.length < 1) throw new UsageError("Expecting image file name");
    if (args.operands.length > 2) throw new UsageError("Unexpected argument: " + args.operands[2]);
    const path = args.operands[0];
    const fail = (e: unknown): CliError =>
      e instanceof CliError ? new CliError(`${path}: ${e.message}`, e.exitCode) : new CliError(`${path}: ${errorText(e)}`, 1, { cause: e });
    let driver: FormatDriver;
    try {
      driver = requireFormat(formatName);
    } catch (e) {
      throw fail(e);
    }
    let opts;
    try {
      opts = splitCreateOptions(driver, optText);
    } catch (e) {
      throw fail(e);
    }
    const sizeText = args.operands[1] ?? opts.size;
    let size = sizeText !== undefined ? parseSizeArg(sizeText) : undefined;
    const backingFile = optString(args, "backing") ?? opts.backingFile;
    const backingFormat = optString(args, "backing-format") ?? opts.backingFormat;
    const unsafe = optFlag(args, "unsafe");
    if (backingFile !== undefined && unsafe) {
      if (!driver.supportsBacking) throw fail(new Error(`Backing file not supported for file format '${driver.name}'`));
      if (backingFormat === undefined) throw fail(new Error("Backing file specified without backing format"));
      if (size === undefined) throw fail(new Error("Image creation needs a size parameter"));
    } else if (backingFile !== undefined) {
      if (!driver.supportsBacking) throw fail(new Error(`Backing file not supported for file format '${driver.name}'`));
      if (backingFormat === undefined) throw fail(new Error("Backing file specified without backing format"));
      try {
        requireFormat(backingFormat);
        // Open the backing file first, as qemu-img does: a missing one leaves no new file behind.
        const base = await openCliImage(combineBackingPath(path, backingFile), { format: backingFormat, readOnly: true });
        size ??= base.device.size;
        await base.device.close();
      } catch (e) {
        throw fail(e);
      }
    } else if (size === undefined) {
      throw fail(new Error("Image creation needs a size parameter"));
    }
    if (!optFlag(args, "quiet")) {
      let line = `Formatting '${path}', fmt=${driver.name}`;
      line += ` size=${size}`;
      if (backingFile !== undefined) line += ` backing_file=${backingFile} backing_fmt=${backingFormat}`;
      for (const [k, v] of Object.entries(opts.values)) line += ` ${k}=${optionValueText(v)}`;
      ctx.out(line + "\n");
    }
    try {
      const { device } = await createCliImage(path, {
        format: driver.name,
        size,
        options: opts.values,
        backingFile,
        backingFormat,
        unsafeBacking: unsafe,
        warn: ctx.warn,
      });
      await device.close();
    } catch (e) {
      throw fail(e);
    }
    return 0;
  },
};

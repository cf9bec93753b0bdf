/**
 * `vdisk measure`: the file size a new image needs (qemu-img measure), for an empty image of a
 * given size or for a convert of an existing image.
 * @module
 */
import type { CreateOptionSpec, FormatDriver } from "../../core/format.js";
import type { MeasureResult } from "../../core/measure.js";
import { parseSize, splitOptionString } from "../../core/options.js";
import { findDriver } from "../../formats/registry.js";
import { measureImage } from "../../ops/measure.js";
import { optFlag, optString, type ParsedArgs } from "../args.js";
import { HELP_OPTION, OUTPUT_OPTION, outputFormat, parseCommandArgs } from "../common.js";
import { PROGRAM, type Command, type CommandContext } from "../context.js";
import { CliError, UsageError, errorText } from "../errors.js";
import { checkObjects, parseImageOpts, type ImageOptsTarget } from "../image-opts.js";
import { closingAfter, openCliImage } from "../open-image.js";
import { toQemuJson } from "../qemu-json.js";
import { joinedOptions } from "./create.js";

const SPECS = [
  HELP_OPTION,
  OUTPUT_OPTION,
  // Keys of their own: the shared check rejects `image-opts`/`object`, which measure takes.
  { key: "measure-image-opts", long: "image-opts" },
  { key: "measure-object", long: "object", value: true, repeat: true },
  { key: "format", short: "f", long: "format", value: true },
  { key: "output-format", short: "O", long: "output-format", value: true },
  { key: "options", short: "o", long: "options", value: true, repeat: true },
  { key: "size", long: "size", value: true },
  { key: "snapshot", short: "l", long: "snapshot", value: true },
  { key: "force-share", short: "U", long: "force-share" },
];

/** qemu's continuation of a multi-line error: later lines carry the program prefix too. */
const NEXT = `\n${PROGRAM}: `;

/** `--size` as qemu-img's cvtnum reads it, with its messages. */
function sizeOption(text: string): number {
  let bytes: number;
  try {
    bytes = parseSize(text);
  } catch (e) {
    if (/^\s*\d+(\.\d+)?\s*[bkmgtpe]?\s*$/i.test(text) && e instanceof RangeError && /too large/.test(e.message)) {
      throw new CliError("Invalid image size specified. Must be between 0 and 9223372036854775807.");
    }
    throw new CliError(
      "Invalid image size specified. You may use k, M, G, T, P or E suffixes for" +
        `${NEXT}kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.`,
    );
  }
  return bytes;
}

/** Options qemu-img takes from every target (generic, and the file protocol's create options). */
const GENERIC_OPTIONS: readonly CreateOptionSpec[] = [
  { name: "size", type: "size", help: "" },
  { name: "backing_file", type: "string", help: "" },
  { name: "backing_fmt", type: "string", help: "" },
  { name: "nocow", type: "bool", help: "" },
  { name: "extent_size_hint", type: "size", help: "" },
];

/**
 * Checks `-o` text the way qemu's option parser does before the driver sees it (names, and the
 * syntax of sizes, numbers and bools), with its messages; returns the pairs for the driver.
 */
function checkedOptions(driver: FormatDriver, formatName: string, text: string | undefined): Array<[string, string]> {
  const specs = [...(driver.measureOptions ?? driver.createOptions), ...GENERIC_OPTIONS];
  const out: Array<[string, string]> = [];
  const fail = (why: string): never => {
    throw new CliError(`${why}${NEXT}Invalid options for file format '${formatName}'`);
  };
  for (const [name, value] of splitOptionString(text ?? "")) {
    const spec = specs.find((s) => s.name === name);
    if (!spec) fail(`Invalid parameter '${name}'`);
    else if (spec.type === "size" && !/^\s*\d+(\.\d+)?\s*[bkmgtpe]?\s*$/i.test(value)) {
      fail(
        `Parameter '${name}' expects a non-negative number below 2^64\n` +
          "Optional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-\nand exabytes, respectively.",
      );
    } else if (spec.type === "number" && (value.trim() === "" || !Number.isFinite(Number(value)))) {
      fail(`Parameter '${name}' expects a number`);
    } else if (spec.type === "bool" && value !== "on" && value !== "off") {
      fail(`Parameter '${name}' expects 'on' or 'off'`);
    }
    if (name !== "nocow" && name !== "extent_size_hint") out.push([name, value]);
  }
  return out;
}

/** qemu-img's pair text for the op (commas escaped again). */
function optionText(pairs: Array<[string, string]>): string {
  return pairs.map(([k, v]) => `${k}=${v.replaceAll(",", ",,")}`).join(",");
}

/** `vdisk measure` result as qemu-img prints it. */
export function measureText(r: MeasureResult, output: "human" | "json"): string {
  if (output === "json") {
    return toQemuJson({ required: r.required, "fully-allocated": r.fullyAllocated, bitmaps: r.bitmaps }) + "\n";
  }
  let text = `required size: ${r.required}\nfully allocated size: ${r.fullyAllocated}\n`;
  if (r.bitmaps !== undefined) text += `bitmaps size: ${r.bitmaps}\n`;
  return text;
}

function sizeArgument(args: ParsedArgs): number | undefined {
  const text = optString(args, "size");
  return text === undefined ? undefined : sizeOption(text);
}

/** `vdisk measure`: qemu-img measure. */
export const measureCommand: Command = {
  name: "measure",
  synopsis:
    "measure [-f FMT] -O FMT [-o OPTIONS] [--size SIZE] [--output=human|json] [--image-opts] [--object OBJ] [FILE]",
  help: `usage: vdisk measure [--output=human|json] [-O FMT] [-o OPTIONS]
                     [--size SIZE | [--object OBJ] [--image-opts] [-f FMT] FILE]

Prints the file size a new image of format FMT needs: for an empty image of SIZE bytes, or for
a convert of FILE (its data clusters, through its backing chain). "required size" is what the
new image takes; "fully allocated size" what it takes once every byte is written; "bitmaps
size" (qcow2 sources and targets) the extra bytes for copying persistent bitmaps. raw and
qcow2 targets give qemu-img's figures; the other formats vdisk's own bounds (README).

  -O, --output-format FMT   format of the image to measure (default raw)
  -o, --options OPTS        its create options, name=value,... (as for create)
  --size SIZE               virtual size (suffixes k, M, G, T, P, E), instead of FILE
  -f, --format FMT          FILE's format (probed when absent)
  --image-opts              FILE is qemu's option text: driver=FMT,file.filename=PATH
  --object secret,id=ID,data=…  accepted for qemu-img compatibility (vdisk opens no encrypted
                            image, so secrets are checked and then unused)
  --output=FMT              human (default) or json (qemu-img's fields)
  -U, --force-share         accepted for qemu-img compatibility
`,
  async run(argv: string[], ctx: CommandContext): Promise<number> {
    const args = parseCommandArgs(this, argv, SPECS, ctx);
    if (!args) return 0;
    checkObjects(args.lists.get("measure-object") ?? []);
    let output: "human" | "json";
    try {
      output = outputFormat(args);
    } catch (e) {
      throw new CliError(errorText(e)); // qemu-img prints no hint to --help here
    }
    const size = sizeArgument(args);
    if (args.operands.length > 1) throw new CliError("At most one filename argument is allowed.");
    const path = args.operands[0];
    const imageOpts = optFlag(args, "measure-image-opts");
    if (path === undefined && (imageOpts || optString(args, "format") !== undefined || optFlag(args, "snapshot"))) {
      throw new CliError("--image-opts, -f, and -l require a filename argument.");
    }
    if (path !== undefined && size !== undefined) {
      throw new CliError("--size N cannot be used together with a filename.");
    }
    if (path === undefined && size === undefined) {
      throw new CliError("Either --size N or one filename must be specified.");
    }
    if (optFlag(args, "snapshot")) throw new UsageError("option '-l' is not supported by vdisk");
    const formatName = optString(args, "output-format") ?? "raw";
    const optText = joinedOptions(args);
    const measure = async (source?: Parameters<typeof measureImage>[0]["source"]): Promise<number> => {
      const driver = findDriver(formatName);
      if (!driver) throw new CliError(`Unknown file format '${formatName}'`);
      const pairs = checkedOptions(driver, formatName, optText);
      let result: MeasureResult;
      try {
        const options = optionText(pairs);
        result = await measureImage({ format: driver.name, options, size: source ? undefined : size, source });
      } catch (e) {
        throw new CliError(errorText(e), 1, { cause: e });
      }
      ctx.out(measureText(result, output));
      return 0;
    };
    if (path === undefined) return measure();
    let file: ImageOptsTarget = { path, format: optString(args, "format") };
    if (imageOpts) {
      if (file.format !== undefined) throw new CliError("--image-opts and --format are mutually exclusive");
      file = parseImageOpts(path);
    }
    let opened;
    try {
      opened = await openCliImage(file.path, { format: file.format, readOnly: true, warn: ctx.warn });
    } catch (e) {
      // qemu-img names the option text, then the file, when --image-opts named it.
      if (imageOpts) throw new CliError(`Could not open '${path}': ${errorText(e)}`, 1, { cause: e });
      throw e;
    }
    const { device } = opened;
    return closingAfter(() => [device], () => measure(device));
  },
};

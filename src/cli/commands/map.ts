/**
 * `vdisk map`: the allocation map of an image and its backing chain (qemu-img map).
 * @module
 */
import { parseSize } from "../../core/options.js";
import { mapImage, type MapEntry } from "../../ops/map.js";
import { optString } from "../args.js";
import { FORCE_SHARE_OPTION, HELP_OPTION, OUTPUT_OPTION, UNSUPPORTED_OPTIONS, outputFormat, parseCommandArgs } from "../common.js";
import type { Command, CommandContext } from "../context.js";
import { CliError, UsageError } from "../errors.js";
import { closingAfter, openCliImage } from "../open-image.js";

const SPECS = [
  HELP_OPTION,
  OUTPUT_OPTION,
  FORCE_SHARE_OPTION,
  ...UNSUPPORTED_OPTIONS,
  { key: "format", short: "f", long: "format", value: true },
  { key: "start-offset", short: "s", long: "start-offset", value: true },
  { key: "max-length", short: "l", long: "max-length", value: true },
];

/** One line of `qemu-img map --output=json`, without separator. */
export function mapEntryJson(e: MapEntry): string {
  const offset = e.offset !== undefined ? `, "offset": ${e.offset}` : "";
  return `{ "start": ${e.start}, "length": ${e.length}, "depth": ${e.depth}, "present": ${e.present}, "zero": ${e.zero}, "data": ${e.data}${offset}}`;
}

/** C's `%#x`: `0` for zero, else `0x…`. */
function hexAlt(n: number): string {
  return n === 0 ? "0" : `0x${n.toString(16)}`;
}

function sizeArg(text: string | undefined, what: string): number | undefined {
  if (text === undefined) return undefined;
  try {
    return parseSize(text);
  } catch {
    throw new UsageError(`Invalid ${what} specified: '${text}'`);
  }
}

/** `vdisk map`: qemu-img map: the allocation map, human or JSON records. */
export const mapCommand: Command = {
  name: "map",
  synopsis: "map [-f FMT] [--output=human|json] [--start-offset=OFF] [--max-length=LEN] [-U] FILE",
  help: `usage: vdisk map [-f FMT] [--output=human|json] [--start-offset=OFF] [--max-length=LEN] [-U] FILE

Prints which ranges of the virtual disk hold data, read as zeros, or come from a backing file,
and where they are stored.

  -f, --format FMT       image format (probed when absent)
  --output=FMT           human (default: data ranges with their file offsets) or json (every
                         range, qemu-img's records)
  -s, --start-offset OFF first guest byte to map
  -l, --max-length LEN   bytes to map
  -U, --force-share      accepted for qemu-img compatibility
`,
  async run(argv: string[], ctx: CommandContext): Promise<number> {
    const args = parseCommandArgs(this, argv, SPECS, ctx);
    if (!args) return 0;
    const output = outputFormat(args);
    if (args.operands.length !== 1) throw new UsageError("Expecting one image file name");
    const startOffset = sizeArg(optString(args, "start-offset"), "start offset") ?? 0;
    const maxLength = sizeArg(optString(args, "max-length"), "max length");
    const path = args.operands[0];
    const { device } = await openCliImage(path, { format: optString(args, "format"), readOnly: true });
    await closingAfter(() => [device], async () => {
      const start = Math.min(startOffset, device.size);
      const length = Math.min(device.size - start, maxLength ?? Number.MAX_SAFE_INTEGER);
      if (output === "json") {
        let first = true;
        let text = "";
        for await (const e of mapImage(device, start, length)) {
          text += (first ? "[" : ",\n") + mapEntryJson(e);
          first = false;
          if (text.length > 1 << 16) {
            ctx.out(text);
            text = "";
          }
        }
        ctx.out(text + (first ? "[]\n" : "]\n"));
      } else {
        ctx.out("Offset          Length          Mapped to       File\n");
        for await (const e of mapImage(device, start, length)) {
          if (e.data && e.offset === undefined) {
            throw new CliError("File contains external, encrypted or compressed clusters.");
          }
          if (e.data && !e.zero) {
            ctx.out(`${hexAlt(e.start).padEnd(16)}${hexAlt(e.length).padEnd(16)}${hexAlt(e.offset ?? 0).padEnd(16)}${e.filename ?? ""}\n`);
          }
        }
      }
    });
    return 0;
  },
};

/**
 * `vdisk bench`: qemu-img bench — a read or write benchmark on an image, with qemu-img's flags,
 * report lines and errors. The run is the library's `benchImage`.
 * @module
 */
import { parseSize } from "../../core/options.js";
import { benchImage, benchParameters, type BenchOptions } from "../../ops/bench.js";
import { optFlag, optString } from "../args.js";
import { FORCE_SHARE_OPTION, HELP_OPTION, UNSUPPORTED_OPTIONS, parseCommandArgs } from "../common.js";
import type { Command, CommandContext } from "../context.js";
import { CliError, UsageError, errorText } from "../errors.js";
import { closingAfter, openCliImage } from "../open-image.js";
import { formatF } from "../../ops/number-format.js";

const SPECS = [
  HELP_OPTION,
  FORCE_SHARE_OPTION,
  ...UNSUPPORTED_OPTIONS,
  { key: "count", short: "c", long: "count", value: true },
  { key: "depth", short: "d", long: "depth", value: true },
  { key: "format", short: "f", long: "format", value: true },
  { key: "flush-interval", long: "flush-interval", value: true },
  { key: "aio", short: "i", long: "aio", value: true },
  { key: "native", short: "n", long: "native" },
  { key: "no-drain", long: "no-drain" },
  { key: "offset", short: "o", long: "offset", value: true },
  { key: "pattern", long: "pattern", value: true },
  { key: "quiet", short: "q", long: "quiet" },
  { key: "size", short: "s", long: "size", value: true },
  { key: "step", short: "S", long: "step-size", value: true },
  { key: "cache", short: "t", long: "cache", value: true },
  { key: "write", short: "w", long: "write" },
];

/** An integer as C's strtoul with base 0 reads it: decimal, `0x` hex or `0` octal. */
function int(text: string | undefined, message: string): number | undefined {
  if (text === undefined) return undefined;
  const t = text.trim();
  const v = /^0x[0-9a-f]+$/i.test(t)
    ? parseInt(t.slice(2), 16)
    : /^0[0-7]+$/.test(t)
      ? parseInt(t.slice(1), 8)
      : /^\d+$/.test(t)
        ? Number(t)
        : NaN;
  if (!Number.isSafeInteger(v)) throw new CliError(message);
  return v;
}

function size(text: string | undefined, message: string): number | undefined {
  if (text === undefined) return undefined;
  try {
    return parseSize(text);
  } catch {
    throw new CliError(message);
  }
}

/** `vdisk bench`: qemu-img bench. */
export const benchCommand: Command = {
  name: "bench",
  synopsis: "bench [-c COUNT] [-d DEPTH] [-f FMT] [--flush-interval N] [-n] [-o OFFSET] [--pattern P] [-q] [-s SIZE] [-S STEP] [-t CACHE] [-w] FILE",
  help: `usage: vdisk bench [-c COUNT] [-d DEPTH] [-f FMT] [--flush-interval=N] [--no-drain] [-n] [-o OFFSET]
                   [--pattern=P] [-q] [-s SIZE] [-S STEP] [-t CACHE] [-w] [-U] FILE

Sends COUNT read (or, with -w, write) requests of SIZE bytes to FILE, DEPTH at a time, the
first at OFFSET and each STEP bytes after the one before (wrapping at the end of the disk), and
reports the time the run took.

  -c, --count COUNT       requests to send (default 75000)
  -d, --depth DEPTH       requests in flight (default 64)
  -f, --format FMT        image format (probed when absent)
  --flush-interval N      with -w: flush after every N requests (N at least DEPTH)
  --no-drain              with --flush-interval: flush without waiting for requests in flight
  -o, --offset OFFSET     offset of the first request (default 0)
  --pattern P             the byte written with -w (default 0)
  -q, --quiet             accepted; the report lines are printed anyway, as qemu-img does
  -s, --size SIZE         bytes per request (default 4k)
  -S, --step-size STEP    bytes between requests (default SIZE)
  -w, --write             write instead of reading
  -n, -i AIO, -t CACHE, -U  accepted for qemu-img compatibility
`,
  async run(argv: string[], ctx: CommandContext): Promise<number> {
    const args = parseCommandArgs(this, argv, SPECS, ctx);
    if (!args) return 0;
    if (args.operands.length !== 1) throw new UsageError("Expecting one image file name");
    const options: BenchOptions = {
      count: int(optString(args, "count"), "Invalid request count specified"),
      depth: int(optString(args, "depth"), "Invalid queue depth specified"),
      offset: size(optString(args, "offset"), "Invalid offset specified"),
      size: size(optString(args, "size"), "Invalid buffer size specified"),
      step: size(optString(args, "step"), "Invalid step size specified"),
      pattern: int(optString(args, "pattern"), "Invalid pattern byte specified"),
      flushInterval: int(optString(args, "flush-interval"), "Invalid flush interval specified"),
      write: optFlag(args, "write"),
      noDrain: optFlag(args, "no-drain"),
    };
    if (options.depth === 0) throw new CliError("Invalid queue depth specified");
    if (options.pattern !== undefined && options.pattern > 0xff) throw new CliError("Invalid pattern byte specified");
    if (options.flushInterval !== undefined && !options.write) throw new CliError("--flush-interval is only available in write tests");
    const p = benchParameters(options);
    if (p.flushInterval !== undefined && p.flushInterval < p.depth) throw new CliError("Flush interval can't be smaller than depth");
    const path = args.operands[0];
    const { device } = await openCliImage(path, { format: optString(args, "format"), readOnly: !p.write, warn: ctx.warn });
    return closingAfter(() => [device], async () => {
      // qemu-img prints its report lines with -q too; so does vdisk, for scripts that parse them.
      {
        ctx.out(`Sending ${p.count} ${p.write ? "write" : "read"} requests, ${p.size} bytes each, ${p.depth} in parallel (starting at offset ${p.offset}, step size ${p.step})\n`);
        if (p.flushInterval !== undefined) ctx.out(`Sending flush every ${p.flushInterval} requests\n`);
      }
      let result;
      try {
        result = await benchImage(device, options);
      } catch (e) {
        throw new CliError(`Failed request: ${errorText(e)}`, 1, { cause: e });
      }
      ctx.out(`Run completed in ${formatF(result.seconds, 3)} seconds.\n`);
      return 0;
    });
  },
};

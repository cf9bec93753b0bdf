/**
 * `vdisk convert`: copy an image into a new (or existing, `-n`) image of any format
 * (qemu-img convert). Sparse: unallocated and zero ranges are not written.
 * @module
 */
import type { BlockDevice } from "../../core/block-device.js";
import { ConcatDevice } from "../../filters/concat.js";
import { convertImage } from "../../ops/convert.js";
import { optFlag, optString } from "../args.js";
import { FORCE_SHARE_OPTION, HELP_OPTION, UNSUPPORTED_OPTIONS, cliKernel, parseCommandArgs } from "../common.js";
import type { Command, CommandContext } from "../context.js";
import { CliError, UsageError, errorText } from "../errors.js";
import { closingAfter, createCliImage, openCliImage, type CliImage } from "../open-image.js";
import { interruptible } from "../interrupt.js";
import { progressPrinter } from "../progress.js";
import { isStreamTarget, streamConvert } from "../stream-output.js";
import { joinedOptions, createOptionsHelp, parseSizeArg, requireFormat, splitCreateOptions, wantsOptionHelp } from "./create.js";

const SPECS = [
  HELP_OPTION,
  FORCE_SHARE_OPTION,
  ...UNSUPPORTED_OPTIONS,
  { key: "format", short: "f", long: "format", value: true },
  { key: "output-format", short: "O", long: "output-format", value: true },
  { key: "options", short: "o", long: "options", value: true, repeat: true },
  { key: "compress", short: "c", long: "compress" },
  { key: "sparse", short: "S", long: "sparse-size", value: true },
  { key: "no-create", short: "n", long: "no-create" },
  { key: "progress", short: "p", long: "progress" },
  { key: "quiet", short: "q", long: "quiet" },
  { key: "backing", short: "B", long: "backing", value: true },
  { key: "backing-format", short: "F", long: "backing-format", value: true },
  { key: "cache", short: "t", long: "cache", value: true },
  { key: "src-cache", short: "T", long: "source-cache", value: true },
  { key: "coroutines", short: "m", long: "coroutines", value: true },
  { key: "out-of-order", short: "W", long: "out-of-order" },
  { key: "copy-range", short: "C", long: "copy-range-offloading" },
  { key: "target-is-zero", long: "target-is-zero" },
  { key: "rate", short: "r", long: "rate-limit", value: true },
  { key: "snapshot", short: "l", long: "snapshot", value: true },
  { key: "salvage", long: "salvage" },
  { key: "bitmaps", long: "bitmaps" },
  { key: "target-image-opts", long: "target-image-opts" },
];

/** Largest `-S` qemu-img accepts (16 MiB). */
const MAX_SPARSE = 16 << 20;
/** Bytes per read request. */
const CHUNK = 2 << 20;

/**
 * The target's flush behaviour for a `-t` mode. qemu-img's default for convert is `unsafe` (no
 * flush: the kernel writes the data back in its own time). vdisk has no O_DIRECT, so the other
 * modes all mean "flushed to disk before convert exits".
 */
function targetCache(mode: string | undefined): "writeback" | "unsafe" {
  switch (mode ?? "unsafe") {
    case "unsafe":
      return "unsafe";
    case "writeback":
    case "none":
    case "writethrough":
    case "directsync":
      return "writeback";
    default:
      throw new CliError(`Invalid cache option: ${mode}`);
  }
}

/** `vdisk convert`: qemu-img convert: copy an image into another format, sparsely. */
export const convertCommand: Command = {
  name: "convert",
  synopsis: "convert [-f FMT] [-O FMT] [-o OPTIONS] [-B BACKING [-F FMT]] [-c] [-S SIZE] [-n] [-t CACHE] [-r RATE] [-p] [-q] SRC... DST",
  help: `usage: vdisk convert [-f FMT] [-O FMT] [-o OPTIONS] [-B BACKING [-F FMT]] [-c] [-S SIZE] [-n]
                     [-t CACHE] [-r RATE] [-p] [-q] [-m N] [-W] [--target-is-zero] [--salvage] SRC... DST

Copies the guest contents of SRC (with its backing chain) into DST, creating DST unless -n.
Unallocated and zero ranges of SRC are not written, so DST stays sparse.
DST '-' (standard output) or any non-seekable DST (a pipe, a FIFO) gets the image written front
to back: raw, qcow2, vpc and vmdk with -o subformat=streamOptimized can be streamed.

  -f, --format FMT          format of SRC (probed when absent)
  -O, --output-format FMT   format of DST (default raw)
  -o, --options OPTS        DST create options, name=value,... ('-o help' lists them)
  -B, --backing FILE        give DST this backing file and copy only what SRC's top image holds
  -F, --backing-format FMT  format of the -B backing file
  -c, --compress            write DST's clusters compressed (formats that support it)
  -S, --sparse-size SIZE    zero runs of SIZE bytes in SRC's data are not written (default 4k,
                            0 writes every allocated byte)
  -n, --no-create           DST exists already: write into it instead of creating it
  --target-is-zero          with -n: DST reads as zeros already, skip writing zeros
  -m, --coroutines N        requests in flight (1-16, default 2)
  -W, --out-of-order        allow writes out of guest order
  -p, --progress            show progress
  -q, --quiet               print nothing but errors
  -t, --cache MODE          DST's cache mode: unsafe (default, as qemu-img: DST is not flushed
                            to disk; the kernel writes it back later), writeback, none,
                            writethrough or directsync (all: DST is flushed before exit)
  -r, --rate-limit RATE     copy at most RATE bytes of SRC per second (k, M, G suffixes)
  --salvage                 read errors are warnings: unreadable sectors are written as zeros
  SRC...                    several sources are copied one after another into DST
  -T, -U, -C                accepted for qemu-img compatibility
`,
  async run(argv: string[], ctx: CommandContext): Promise<number> {
    const args = parseCommandArgs(this, argv, SPECS, ctx);
    if (!args) return 0;
    for (const k of ["snapshot", "bitmaps", "target-image-opts"]) {
      if (optFlag(args, k)) throw new UsageError(`option '${k === "snapshot" ? "-l" : `--${k}`}' is not supported by vdisk`);
    }
    const outDriver = requireFormat(optString(args, "output-format") ?? "raw");
    const optText = joinedOptions(args);
    if (wantsOptionHelp(optText)) {
      ctx.out(createOptionsHelp(outDriver));
      return 0;
    }
    if (args.operands.length < 2) throw new UsageError("Expecting image file name");
    // Several sources are copied one after another into one target, as qemu-img does.
    const srcPaths = args.operands.slice(0, -1);
    const dstPath = args.operands[args.operands.length - 1];
    const salvage = optFlag(args, "salvage");
    const quiet = optFlag(args, "quiet");
    const noCreate = optFlag(args, "no-create");
    const compress = optFlag(args, "compress");
    const targetIsZero = optFlag(args, "target-is-zero");
    if (targetIsZero && !noCreate) throw new UsageError("--target-is-zero requires use of -n flag");
    let sparse = 4096;
    const sparseText = optString(args, "sparse");
    if (sparseText !== undefined) {
      sparse = parseSizeArg(sparseText);
      if (sparse % 512 !== 0 || sparse > MAX_SPARSE) {
        throw new CliError("Invalid buffer size for sparse output specified. Valid sizes are multiples of 512 up to 16MB.");
      }
    }
    // Two requests in flight: one read ahead while the other's writes run. More only add
    // writers to the output file, which the kernel serialises on its inode lock while the
    // waiting threads spin: measured (4 GiB, settled runs) the same wall time with 4, at 15–30 %
    // more CPU time; deeper pipelines also let data go cold in the CPU caches.
    let parallel = 2;
    const co = optString(args, "coroutines");
    if (co !== undefined) {
      parallel = Number(co);
      if (!Number.isInteger(parallel) || parallel < 1 || parallel > 16) {
        throw new CliError("Invalid number of coroutines. Allowed number of coroutines is between 1 and 16");
      }
    }
    const cache = targetCache(optString(args, "cache"));
    const rateText = optString(args, "rate");
    let rate: number | undefined;
    if (rateText !== undefined) {
      try {
        rate = parseSizeArg(rateText);
      } catch {
        rate = NaN;
      }
      if (!(rate > 0)) throw new CliError("Invalid rate limit specified. You may use k, M, G, T, P or E suffixes for kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.");
    }
    const backingFile = optString(args, "backing");
    const backingFormat = optString(args, "backing-format");
    if (backingFile !== undefined && noCreate) throw new CliError("-B makes no sense when not creating the target (-n)");
    let createOpts;
    try {
      createOpts = splitCreateOptions(outDriver, optText);
    } catch (e) {
      throw new CliError(errorText(e), 1, { cause: e });
    }
    if (createOpts.size !== undefined) throw new CliError("Option size is not allowed for convert");
    if (isStreamTarget(dstPath)) {
      if (noCreate) throw new CliError("-n cannot be used with a non-seekable output (the image is written front to back)");
      if ((backingFile ?? createOpts.backingFile) !== undefined) throw new CliError("-B cannot be used with a non-seekable output");
      if (salvage) throw new CliError("--salvage cannot be used with a non-seekable output");
      return streamConvert({
        srcPaths, srcFormat: optString(args, "format"), dstPath, outDriver, options: createOpts.values, compress,
        sparseSize: sparse, progress: optFlag(args, "progress") && !quiet,
      }, ctx);
    }
    const kernel = await cliKernel();
    const progress = progressPrinter(ctx, optFlag(args, "progress") && !quiet);
    const sources: CliImage[] = [];
    let src: { device: BlockDevice; files: CliImage["files"] } | undefined;
    let dst: CliImage | undefined;
    try {
      await closingAfter(() => [dst?.device, ...sources.map((s) => s.device)], async () => {
        for (const p of srcPaths) sources.push(await openCliImage(p, { format: optString(args, "format"), readOnly: true }));
        src = sources.length === 1
          ? sources[0]
          : {
            device: new ConcatDevice(sources.map((s) => s.device)),
            files: new Map(sources.flatMap((s) => [...s.files])),
          };
        if (noCreate) {
          dst = await openCliImage(dstPath, { format: outDriver.name, warn: ctx.warn, cache });
        } else {
          const backing = backingFile ?? createOpts.backingFile;
          if (backing !== undefined && !outDriver.supportsBacking) {
            throw new CliError(`Backing file not supported for file format '${outDriver.name}'`);
          }
          try {
            dst = await createCliImage(dstPath, {
              format: outDriver.name,
              size: src.device.size,
              options: createOpts.values,
              backingFile: backing,
              backingFormat: backingFormat ?? createOpts.backingFormat,
              warn: ctx.warn,
            }, cache);
          } catch (e) {
            throw new CliError(`${dstPath}: ${errorText(e)}`, 1, { cause: e });
          }
        }
        const target = dst.device;
        const caps = target.capabilities;
        if (compress && !caps.compress) throw new CliError("Compression not supported for this file format");
        if (target.size < src.device.size) throw new CliError("Error: the target image is smaller than the source");
        const hasBacking = target.backing !== undefined;
        // Blocking source reads save a thread-pool round trip each, but the main thread then
        // cannot take a write's completion while it reads: a win when the target's writes
        // overlap (raw, qcow2), a loss when each allocating write must finish before the next
        // starts (measured: raw→vpc median 3.0 s blocking against 1.9 s pooled).
        for (const f of src.files.values()) f.blocking = caps.overlappingWrites;
        await interruptible(progress, (signal) =>
          convertImage(src!.device, target, {
            kernel,
            sparseSize: sparse,
            compress,
            targetIsZero: noCreate ? targetIsZero : !hasBacking,
            skipBacking: hasBacking && !noCreate,
            chunkSize: CHUNK,
            parallel,
            rateLimit: rate,
            onReadError: salvage
              ? (offset, e) => ctx.warn(`error while reading offset ${offset}: ${errorText(e)}`)
              : undefined,
            // Out of order only when asked; else the target's capability decides (raw has no
            // allocation order to keep, others get a sequential layout).
            ...(optFlag(args, "out-of-order") ? { inOrder: false } : {}),
            signal,
            onProgress: progress.update,
          }),
        );
      });
    } finally {
      progress.done();
    }
    return 0;
  },
};

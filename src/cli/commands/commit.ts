/**
 * `vdisk commit`: writes an image's data into a file of its backing chain (qemu-img commit),
 * then empties the image when it was committed into its immediate backing file.
 * @module
 */
import type { BlockDevice } from "../../core/block-device.js";
import { backingChain, commitImage } from "../../ops/commit.js";
import { optFlag, optString, parseArgs } from "../args.js";
import { HELP_OPTION, UNSUPPORTED_OPTIONS, rejectUnsupported } from "../common.js";
import type { Command, CommandContext } from "../context.js";
import { CliError, UsageError, errorText } from "../errors.js";
import { combineBackingPath, openCliImage } from "../open-image.js";
import { interruptible } from "../interrupt.js";
import { progressPrinter } from "../progress.js";

const SPECS = [
  HELP_OPTION,
  ...UNSUPPORTED_OPTIONS,
  { key: "format", short: "f", long: "format", value: true },
  { key: "base", short: "b", long: "base", value: true },
  { key: "drop", short: "d", long: "drop" },
  { key: "progress", short: "p", long: "progress" },
  { key: "quiet", short: "q", long: "quiet" },
  { key: "cache", short: "t", long: "cache", value: true },
  { key: "rate", short: "r", long: "rate-limit", value: true },
];

/** `path` with `.` and `..` segments and doubled slashes resolved textually. */
function normalizePath(path: string): string {
  const abs = path.startsWith("/");
  const out: string[] = [];
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === ".." && out.length > 0 && out[out.length - 1] !== "..") out.pop();
    else if (part !== ".." || !abs) out.push(part);
  }
  return (abs ? "/" : "") + out.join("/") || ".";
}

/** `path` made absolute against the working directory (the CLI runs in Node), normalised. */
function absolutePath(path: string): string {
  return normalizePath(path.startsWith("/") ? path : `${process.cwd()}/${path}`);
}

/**
 * The index in `chain` of the layer `base` names, as qemu-img finds it: the name stored in the
 * layer above it, or the same file once both are taken relative to that layer's directory
 * (compared as absolute paths, without resolving symbolic links).
 */
function findLayer(chain: readonly BlockDevice[], base: string): number {
  for (let i = 1; i < chain.length; i++) {
    const above = chain[i - 1];
    if (above.backingFile?.name === base) return i;
    const aboveName = above.name ?? "";
    if (absolutePath(combineBackingPath(aboveName, base)) === absolutePath(chain[i].name ?? "")) return i;
  }
  return -1;
}

/** `vdisk commit`: qemu-img commit. */
export const commitCommand: Command = {
  name: "commit",
  synopsis: "commit [-f FMT] [-b BASE] [-d] [-p] [-q] FILE",
  help: `usage: vdisk commit [-f FMT] [-b BASE] [-d] [-p] [-q] FILE

Writes the data FILE holds into its backing file (or into BASE, a file further down its
backing chain), growing it to FILE's size when smaller. Then FILE is emptied, so that it reads
everything from its backing file again, when its format can be emptied (qcow2 and qcow, as with
qemu-img; images of other formats keep their data, as qemu-img leaves them).
With -b, the images between FILE and BASE are not changed and FILE is not emptied: FILE keeps
its contents, while those images may no longer read as they did.

  -f, --format FMT   format of FILE (probed when absent)
  -b, --base BASE    the file of the backing chain to commit into (default: the backing file)
  -d, --drop         do not empty FILE afterwards
  -p, --progress     show progress
  -q, --quiet        print nothing but errors
  -t CACHE, -r RATE  accepted for qemu-img compatibility
`,
  async run(argv: string[], ctx: CommandContext): Promise<number> {
    const args = parseArgs(argv, SPECS);
    if (optFlag(args, "help")) {
      ctx.out(this.help);
      return 0;
    }
    rejectUnsupported(args);
    if (args.operands.length !== 1) throw new UsageError("Expecting one image file name");
    const quiet = optFlag(args, "quiet");
    const path = args.operands[0];
    const base = optString(args, "base");
    const { device } = await openCliImage(path, { format: optString(args, "format"), warn: ctx.warn });
    const progress = progressPrinter(ctx, optFlag(args, "progress") && !quiet);
    let ended = false;
    const endProgress = (): void => {
      if (!ended) progress.done();
      ended = true;
    };
    try {
      const chain = backingChain(device);
      if (chain.length < 2) throw new CliError("Image does not have a backing file");
      let depth = 1;
      if (base !== undefined) {
        depth = findLayer(chain, base);
        if (depth < 0) throw new CliError(`Did not find '${base}' in the backing chain of '${path}'`);
      }
      try {
        await interruptible(progress, (signal) =>
          commitImage(device, {
            baseDepth: depth,
            // qemu-img: -b implies -d (the image must keep its contents over the changed chain).
            keepData: optFlag(args, "drop") || base !== undefined,
            signal,
            onProgress: progress.update,
            openWritable: async (layer) => (await openCliImage(layer.name ?? "", { format: layer.format, warn: ctx.warn })).device,
          }),
        );
      } catch (e) {
        throw new CliError(errorText(e), 1, { cause: e });
      }
      endProgress();
      if (!quiet) ctx.out("Image committed.\n");
      return 0;
    } finally {
      endProgress();
      await device.close();
    }
  },
};

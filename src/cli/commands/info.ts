/**
 * `vdisk info`: what an image is (qemu-img info).
 * @module
 */
import { MAX_BACKING_CHAIN_DEPTH } from "../../core/limits.js";
import { describeImage, type ImageInfo } from "../../ops/info.js";
import { optFlag, optString } from "../args.js";
import { FORCE_SHARE_OPTION, HELP_OPTION, OUTPUT_OPTION, UNSUPPORTED_OPTIONS, outputFormat, parseCommandArgs } from "../common.js";
import type { Command, CommandContext } from "../context.js";
import { CliError, UsageError } from "../errors.js";
import { allocatedSizeOf, closingAfter, combineBackingPath, openCliImage } from "../open-image.js";
import { infoHuman, infoJson } from "../print-info.js";
import { toQemuJson } from "../qemu-json.js";

const SPECS = [
  HELP_OPTION,
  OUTPUT_OPTION,
  FORCE_SHARE_OPTION,
  ...UNSUPPORTED_OPTIONS,
  { key: "format", short: "f", long: "format", value: true },
  { key: "backing-chain", long: "backing-chain" },
];

async function describe(path: string, format: string | undefined): Promise<ImageInfo> {
  const { device, files } = await openCliImage(path, { format, readOnly: true, noBacking: true });
  return closingAfter(() => [device], async () => {
    return describeImage(device, {
      filename: path,
      actualSize: await allocatedSizeOf(files.get(path)),
      resolveBacking: (name) => combineBackingPath(path, name),
    });
  });
}

/** `vdisk info`: qemu-img info: format, sizes, backing file, snapshots and format details. */
export const infoCommand: Command = {
  name: "info",
  synopsis: "info [-f FMT] [--output=human|json] [--backing-chain] [-U] FILE",
  help: `usage: vdisk info [-f FMT] [--output=human|json] [--backing-chain] [-U] FILE

Shows the format, sizes, backing file, snapshots and format details of an image.

  -f, --format FMT     image format (probed when absent)
  --output=FMT         human (default) or json, with qemu-img's field names
  --backing-chain      describe every image of the backing chain, top first
  -U, --force-share    accepted for qemu-img compatibility
`,
  async run(argv: string[], ctx: CommandContext): Promise<number> {
    const args = parseCommandArgs(this, argv, SPECS, ctx);
    if (!args) return 0;
    const output = outputFormat(args);
    if (args.operands.length !== 1) throw new UsageError("Expecting one image file name");
    const path = args.operands[0];
    const chain: ImageInfo[] = [await describe(path, optString(args, "format"))];
    if (optFlag(args, "backing-chain")) {
      const seen = new Set([path]);
      for (let top = chain[0]; top.fullBackingFilename !== undefined; top = chain[chain.length - 1]) {
        const next = top.fullBackingFilename;
        if (seen.has(next)) throw new CliError(`Backing file '${next}' creates an infinite loop.`);
        if (chain.length > MAX_BACKING_CHAIN_DEPTH) {
          const limit = MAX_BACKING_CHAIN_DEPTH;
          throw new CliError(`Backing chain of '${path}' is deeper than the limit of ${limit} backing files`);
        }
        seen.add(next);
        chain.push(await describe(next, top.backingFormat));
      }
    }
    if (output === "json") {
      const value = optFlag(args, "backing-chain") ? chain.map(infoJson) : infoJson(chain[0]);
      ctx.out(toQemuJson(value) + "\n");
    } else {
      ctx.out(chain.map(infoHuman).join("\n"));
    }
    return 0;
  },
};

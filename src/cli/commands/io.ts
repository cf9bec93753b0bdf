/**
 * `vdisk io`: qemu-io's command set on an image — transfers with qemu-io's result lines,
 * asynchronous requests, allocation queries, truncate, open/close within one `-c` list.
 * Exit code 1 when any command failed, as qemu-io.
 * @module
 */
import { statSync } from "node:fs";
import { createInterface } from "node:readline";
import type { BlockDevice } from "../../core/block-device.js";
import { isImageError } from "../../errors.js";

import { IO_COMMANDS, createIoSession } from "../../ops/io-commands.js";
import { optFlag, optString } from "../args.js";
import { FORCE_SHARE_OPTION, HELP_OPTION, UNSUPPORTED_OPTIONS, parseCommandArgs } from "../common.js";
import { PROGRAM, type Command, type CommandContext } from "../context.js";
import { UsageError } from "../errors.js";
import { openCliImage } from "../open-image.js";

const SPECS = [
  HELP_OPTION,
  FORCE_SHARE_OPTION,
  ...UNSUPPORTED_OPTIONS,
  { key: "format", short: "f", long: "format", value: true },
  { key: "read-only", short: "r", long: "read-only" },
  { key: "cmd", short: "c", long: "cmd", value: true, repeat: true },
  { key: "nocache", short: "n", long: "nocache" },
  { key: "cache", short: "t", long: "cache", value: true },
  { key: "aio", short: "i", long: "aio", value: true },
  { key: "native-aio", short: "k", long: "native-aio" },
  { key: "misalign", short: "m", long: "misalign" },
  { key: "discard", short: "d", long: "discard", value: true },
  { key: "trace", short: "T", long: "trace", value: true },
];

/**
 * Why an image did not open, worded as qemu-io: the format's reason alone when the image was
 * refused ("Cluster size must be …"), "Could not open 'x': …" when the file itself could not.
 */
function openFailure(e: unknown): string {
  const cause = e instanceof Error ? e.cause : undefined;
  if (isImageError(cause) && cause.code !== "ERR_IO") return cause.message;
  return e instanceof Error ? e.message : String(e);
}

/**
 * What qemu's `file`, `host_device` and `host_cdrom` drivers demand of a path (a regular file;
 * a character or block device), with their messages. Opening a directory writable fails first.
 */
function checkProtocol(path: string, protocol: "file" | "host_device" | "host_cdrom", readOnly: boolean): void {
  let st;
  try {
    st = statSync(path);
  } catch (e) {
    throw new Error(`Could not open '${path}': ${e instanceof Error && "code" in e && e.code === "ENOENT" ? "No such file or directory" : String(e)}`);
  }
  if (!readOnly && st.isDirectory()) throw new Error(`Could not open '${path}': Is a directory`);
  if (protocol === "file" && !st.isFile()) throw new Error(`'file' driver requires '${path}' to be a regular file`);
  if (protocol !== "file" && !st.isCharacterDevice() && !st.isBlockDevice()) {
    throw new Error(`'${protocol}' driver requires '${path}' to be either a character or block device`);
  }
}

/** Lines of standard input as they arrive. */
async function* stdinLines(): AsyncGenerator<string> {
  const rl = createInterface({ input: process.stdin, crlfDelay: Infinity, terminal: false });
  for await (const line of rl) yield line;
}

/** `vdisk io`: qemu-io's commands on an image. */
export const ioCommand: Command = {
  name: "io",
  synopsis: "io [-f FMT] [-r] -c CMD [-c CMD ...] [FILE]",
  help: `usage: vdisk io [-f FMT] [-r] -c CMD [-c CMD ...] [FILE]

Runs qemu-io commands on an image, in order, printing qemu-io's result lines. Offsets and
lengths are byte counts with optional k, M, G, T, P, E suffixes, or hex (0x...). Without FILE,
an "open" command opens one. Asynchronous requests complete by aio_flush, before the next
other command, or at the end. Exit code 1 when any command failed.

  -f, --format FMT   image format (probed when absent)
  -r, --read-only    open the image read-only
  -c, --cmd CMD      a command (repeatable):
${Object.values(IO_COMMANDS).map((u) => `                       ${u}`).join("\n")}
  -n, -t, -i, -k, -m, -d, -T, -U   accepted for qemu-io compatibility (cache, AIO, discard modes)
`,
  async run(argv: string[], ctx: CommandContext): Promise<number> {
    const args = parseCommandArgs(this, argv, SPECS, ctx);
    if (!args) return 0;
    if (args.operands.length > 1) throw new UsageError("Expecting at most one image file name");
    const cmds = args.lists.get("cmd") ?? [];
    const format = optString(args, "format");
    const open = async (path: string, readOnly: boolean, fmt: string | undefined): Promise<BlockDevice> =>
      (await openCliImage(path, { format: fmt, readOnly, warn: ctx.warn }).catch((e: unknown) => {
        throw new Error(openFailure(e));
      })).device;
    const session = createIoSession(
      { out: (l) => ctx.out(l + "\n"), err: (l) => ctx.err(l + "\n") },
      {
        open: (r) => {
          if (r.protocol) checkProtocol(r.path, r.protocol, r.readOnly);
          return open(r.path, r.readOnly, r.format);
        },
        defaultFormat: format, programName: PROGRAM },
    );
    if (args.operands.length === 1) {
      const path = args.operands[0];
      try {
        session.device = await open(path, optFlag(args, "read-only"), format);
      } catch (e) {
        ctx.err(`${PROGRAM}: can't open device ${path}: ${openFailure(e)}\n`);
        return 1;
      }
    }
    let ok = true;
    try {
      if (cmds.length > 0) {
        for (const c of cmds) {
          ok = (await session.run(c)) && ok;
          if (session.quit) break;
        }
      } else {
        // No -c: commands come from standard input, each after qemu-io's prompt.
        for await (const c of stdinLines()) {
          ctx.out("qemu-io> ");
          ok = (await session.run(c)) && ok;
          if (session.quit) break;
        }
        if (!session.quit) ctx.out("qemu-io> ");
      }
      ok = (await session.finish()) && ok;
    } finally {
      const device = session.device;
      session.device = undefined;
      if (device) await device.close();
    }
    return ok ? 0 : 1;
  },
};

/**
 * `vdisk io`: run qemu-io style commands on an image (`read`, `write`, `write -z`, `discard`,
 * `flush`). Exit code 1 when any command failed, as qemu-io.
 * @module
 */
import { IO_COMMANDS, runIoCommand } from "../../ops/io-commands.js";
import { optFlag, optString } from "../args.js";
import { FORCE_SHARE_OPTION, HELP_OPTION, UNSUPPORTED_OPTIONS, parseCommandArgs } from "../common.js";
import type { Command, CommandContext } from "../context.js";
import { UsageError } from "../errors.js";
import { closingAfter, openCliImage } from "../open-image.js";

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
];

/** `vdisk io`: qemu-io subset: read/write/zero/discard/flush commands on an image. */
export const ioCommand: Command = {
  name: "io",
  synopsis: "io [-f FMT] [-r] -c CMD [-c CMD ...] FILE",
  help: `usage: vdisk io [-f FMT] [-r] -c CMD [-c CMD ...] FILE

Runs qemu-io style commands on an image, in order. Offsets and lengths are byte counts with
optional k, M, G, T suffixes, or hex (0x...). Exit code 1 when any command failed.

  -f, --format FMT   image format (probed when absent)
  -r, --read-only    open the image read-only
  -c, --cmd CMD      a command (repeatable):
${Object.values(IO_COMMANDS).map((u) => `                       ${u}`).join("\n")}
  -n, -t, -i, -U     accepted for qemu-io compatibility (-t CACHE, -i/--aio MODE)
`,
  async run(argv: string[], ctx: CommandContext): Promise<number> {
    const args = parseCommandArgs(this, argv, SPECS, ctx);
    if (!args) return 0;
    if (args.operands.length !== 1) throw new UsageError("Expecting one image file name");
    const cmds = args.lists.get("cmd") ?? [];
    const path = args.operands[0];
    const { device } = await openCliImage(path, {
      format: optString(args, "format"),
      readOnly: optFlag(args, "read-only"),
      warn: ctx.warn,
    });
    let ok = true;
    await closingAfter(() => [device], async () => {
      for (const c of cmds) {
        const r = await runIoCommand(device, c, {
          out: (l) => ctx.out(l + "\n"),
          err: (l) => ctx.err(l + "\n"),
        });
        ok &&= r;
      }
    });
    return ok ? 0 : 1;
  },
};

/**
 * Pieces shared by the commands: the help flag, `--output`, and the kernel.
 * @module
 */
import * as kernels from "../kernel/index.js";
import type { Kernel } from "../kernel/kernel.js";
import { optFlag, optString, parseArgs, type OptionSpec, type ParsedArgs } from "./args.js";
import type { CommandContext } from "./context.js";
import { UsageError } from "./errors.js";

/** `-h`/`--help`, accepted by every command. */
export const HELP_OPTION: OptionSpec = { key: "help", short: "h", long: "help" };

/** `--output=json|human`. */
export const OUTPUT_OPTION: OptionSpec = { key: "output", long: "output", value: true };

/** `-U`/`--force-share`: accepted for qemu-img compatibility (vdisk takes no locks). */
export const FORCE_SHARE_OPTION: OptionSpec = { key: "force-share", short: "U", long: "force-share" };

/** `--image-opts`/`--object`: recognised so that the error says they are unsupported. */
export const UNSUPPORTED_OPTIONS: OptionSpec[] = [
  { key: "image-opts", long: "image-opts" },
  { key: "object", long: "object", value: true },
];

/** Rejects qemu-img options vdisk recognises but does not implement. */
export function rejectUnsupported(args: ParsedArgs): void {
  for (const o of UNSUPPORTED_OPTIONS) {
    if (args.options.has(o.key)) throw new UsageError(`option '--${o.long}' is not supported by vdisk`);
  }
}

/** The `--output` choice. */
export function outputFormat(args: ParsedArgs): "human" | "json" {
  const v = optString(args, "output") ?? "human";
  if (v !== "human" && v !== "json") throw new UsageError("--output must be used with human or json as argument.");
  return v;
}

/** The Wasm kernel when it loads, else the TS twin (the process-wide choice is updated). */
export async function cliKernel(): Promise<Kernel> {
  const load = (kernels as unknown as Record<string, unknown>).loadKernel;
  if (typeof load === "function") {
    try {
      return await (load as () => Promise<Kernel>)();
    } catch {
      // Fall through to whatever is available synchronously.
    }
  }
  return kernels.getKernel();
}

/**
 * Parses a command's arguments against `specs`. For `-h`/`--help` prints the command's help and
 * returns `undefined` (the command then exits 0); rejects options vdisk does not implement.
 */
export function parseCommandArgs(
  command: { readonly help: string },
  argv: string[],
  specs: readonly OptionSpec[],
  ctx: CommandContext,
): ParsedArgs | undefined {
  const args = parseArgs(argv, specs);
  if (optFlag(args, "help")) {
    ctx.out(command.help);
    return undefined;
  }
  rejectUnsupported(args);
  return args;
}

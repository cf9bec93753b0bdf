/**
 * The CLI without a process: `runCli(argv, io)` parses the command line, runs one command and
 * returns its exit code. Errors become one line on stderr (a stack trace only with `--debug`).
 * @module
 */
import { amendCommand } from "./commands/amend.js";
import { benchCommand } from "./commands/bench.js";
import { checkCommand } from "./commands/check.js";
import { commitCommand } from "./commands/commit.js";
import { compareCommand } from "./commands/compare.js";
import { convertCommand } from "./commands/convert.js";
import { createCommand } from "./commands/create.js";
import { ddCommand } from "./commands/dd.js";
import { infoCommand } from "./commands/info.js";
import { ioCommand } from "./commands/io.js";
import { mapCommand } from "./commands/map.js";
import { measureCommand } from "./commands/measure.js";
import { rebaseCommand } from "./commands/rebase.js";
import { resizeCommand } from "./commands/resize.js";
import { serveCommand } from "./commands/serve.js";
import { PROGRAM, makeContext, setProgramName, type CliIo, type Command } from "./context.js";
import { UsageError, errorText, exitCodeOf } from "./errors.js";
import { builtinDrivers } from "../formats/registry.js";
import { installNodeCodecs } from "../adapters/node/open-image.js";

/** Every command, in `--help` order. */
export const COMMANDS: readonly Command[] = [
  amendCommand,
  benchCommand,
  checkCommand,
  commitCommand,
  compareCommand,
  convertCommand,
  createCommand,
  ddCommand,
  infoCommand,
  ioCommand,
  mapCommand,
  measureCommand,
  rebaseCommand,
  resizeCommand,
  serveCommand,
];

/** The package version, reported by `--version`. */
export const VERSION = "0.1.0";

function mainHelp(): string {
  return `usage: ${PROGRAM} [--debug] COMMAND [OPTIONS]

Virtual disk images: inspect, create, convert, compare, check, map, resize, rebase, commit
and amend them, and serve them over NBD. Commands and options follow qemu-img (and qemu-io for 'io'), with the same
JSON output and exit codes.

Commands:
${COMMANDS.map((c) => `  ${c.synopsis}`).join("\n")}

'${PROGRAM} COMMAND --help' describes one command.

Global options:
  -h, --help      this text
  -V, --version   the version
  --debug         print a stack trace with errors

Supported formats: ${builtinDrivers.map((d) => d.name).join(" ")}
`;
}

/**
 * Runs the CLI with `argv` (the arguments after the program name). Never throws; returns the
 * exit code.
 */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  // What importing the Node entry does; done here so that no shared module has a side effect.
  installNodeCodecs();
  setProgramName(io.programName);
  const debug = argv.includes("--debug");
  const rest = argv.filter((a) => a !== "--debug");
  const ctx = makeContext(io, debug);
  let command: Command | undefined;
  try {
    const name = rest[0];
    if (name === undefined) throw new UsageError("Not enough arguments");
    if (name === "-h" || name === "--help" || name === "help") {
      ctx.out(mainHelp());
      return 0;
    }
    if (name === "-V" || name === "--version") {
      ctx.out(`${PROGRAM} version ${VERSION}\n`);
      return 0;
    }
    command = COMMANDS.find((c) => c.name === name);
    if (!command) throw new UsageError(`Command not found: ${name}`);
    return await command.run(rest.slice(1), ctx);
  } catch (e) {
    ctx.err(`${PROGRAM}: ${errorText(e)}\n`);
    if (e instanceof UsageError) {
      ctx.err(`Try '${PROGRAM}${command ? ` ${command.name}` : ""} --help' for more information\n`);
    }
    if (debug && e instanceof Error && e.stack) ctx.err(`${e.stack}\n`);
    return exitCodeOf(e);
  }
}

/**
 * What every command receives: the output streams and a few conveniences.
 * @module
 */

/** Something text can be written to (`process.stdout`, a test collector). */
export interface CliStream {
  write(text: string): unknown;
}

/** The streams `runCli` writes to. `isTTY` says whether stdout is a terminal (progress bars). */
export interface CliIo {
  stdout: CliStream;
  stderr: CliStream;
  isTTY: boolean;
  /** The name messages start with (default "vdisk"); the executable takes it from VDISK_PROGNAME. */
  programName?: string;
}

/** The environment of one command run. */
export interface CommandContext {
  readonly io: CliIo;
  /** `--debug` was given: errors come with their stack trace. */
  readonly debug: boolean;
  /** Writes to stdout. */
  out(text: string): void;
  /** Writes to stderr. */
  err(text: string): void;
  /** Prints a warning line on stderr (`vdisk: warning: …`). */
  warn(message: string): void;
}

/** The program name used in messages. */
export let PROGRAM = "vdisk";

/**
 * Names the program in messages ("qemu-img: …" when vdisk stands in for qemu-img, as qemu's
 * tools name themselves after argv[0]). Empty or absent keeps "vdisk".
 */
export function setProgramName(name: string | undefined): void {
  PROGRAM = name && /^[\w.+-]+$/.test(name) ? name : "vdisk";
}

/** Builds the context for `io`. */
export function makeContext(io: CliIo, debug: boolean): CommandContext {
  return {
    io,
    debug,
    out: (t) => void io.stdout.write(t),
    err: (t) => void io.stderr.write(t),
    warn: (m) => void io.stderr.write(`${PROGRAM}: warning: ${m}\n`),
  };
}

/** A command: parses its own arguments, returns the exit code. */
export interface Command {
  readonly name: string;
  /** One-line synopsis for `vdisk --help`. */
  readonly synopsis: string;
  /** Full help text for `vdisk <command> --help`. */
  readonly help: string;
  run(argv: string[], ctx: CommandContext): Promise<number>;
}

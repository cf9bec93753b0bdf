/**
 * How the CLI fails: one line on stderr naming the file and the problem, qemu-img's exit codes,
 * a stack trace only with `--debug`.
 * @module
 */
/** A failure the CLI reports with a chosen exit code (1 unless said otherwise). */
export class CliError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = 1, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "CliError";
    this.exitCode = exitCode;
  }
}

/** A mistake on the command line: printed with a hint to `--help`, exit code 1. */
export class UsageError extends CliError {
  constructor(message: string) {
    super(message, 1);
    this.name = "UsageError";
  }
}

/** The text of any thrown value, without a stack. */
export function errorText(e: unknown): string {
  if (e instanceof Error) return e.message || e.name;
  return String(e);
}

/**
 * The error for a file that could not be opened: "Could not open 'x.qcow2': <why>", without
 * repeating the prefix when the cause already says it.
 */
export function openError(path: string, e: unknown): CliError {
  const why = errorText(e);
  const prefix = `Could not open '${path}'`;
  const message = why.startsWith(prefix) ? why : `${prefix}: ${why}`;
  return new CliError(message, 1, { cause: e });
}

/** Exit code for an error that escaped a command. */
export function exitCodeOf(e: unknown): number {
  if (e instanceof CliError) return e.exitCode;
  return 1;
}

/**
 * Signals during long commands: SIGINT (Ctrl-C) stops the operation at a consistent point —
 * it aborts the operation's AbortSignal, the operation finishes its requests in flight and
 * flushes — and the command exits 1 with one line; SIGUSR1 prints one progress line, as
 * qemu-img does.
 * @module
 */
import { CliError } from "./errors.js";
import type { ProgressPrinter } from "./progress.js";

/** The error a command stopped by SIGINT ends with. */
export class InterruptedError extends CliError {
  constructor() {
    super("Interrupted: stopped at a consistent point and flushed what was written", 1);
    this.name = "InterruptedError";
  }
}

/**
 * Runs `operation` with an AbortSignal that SIGINT aborts (with an {@link InterruptedError}),
 * and SIGUSR1 printing the current progress. The handlers are removed when it settles.
 */
export async function interruptible<T>(
  progress: ProgressPrinter,
  operation: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const controller = new AbortController();
  const onInt = (): void => controller.abort(new InterruptedError());
  const onUsr1 = (): void => progress.report();
  process.on("SIGINT", onInt);
  const usr1 = process.platform !== "win32";
  if (usr1) process.on("SIGUSR1", onUsr1);
  try {
    return await operation(controller.signal);
  } finally {
    process.off("SIGINT", onInt);
    if (usr1) process.off("SIGUSR1", onUsr1);
  }
}

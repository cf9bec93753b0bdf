#!/usr/bin/env node
/**
 * The `vdisk` executable: runs the CLI on the process's arguments and exits with its code.
 * Importing this module (tests) runs nothing. The commands are loaded lazily so that even a
 * broken installation fails with one line, not a stack trace.
 * @module
 */
import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { CliIo } from "./context.js";

export type { CliIo, CliStream } from "./context.js";

/**
 * Runs the CLI with `argv` (the arguments after the program name) on `io` and returns the exit
 * code. Never throws.
 */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  let run: typeof import("./run.js");
  try {
    // The build makes this one file plus the shared chunks, which loads much faster than the modules.
    run = await import("./run.js");
  } catch (e) {
    io.stderr.write(`vdisk: cannot load the commands: ${e instanceof Error ? e.message : String(e)}\n`);
    if (argv.includes("--debug") && e instanceof Error && e.stack) io.stderr.write(`${e.stack}\n`);
    return 1;
  }
  return run.runCli(argv, io);
}

function isMain(): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

async function main(): Promise<void> {
  const debug = process.argv.includes("--debug");
  const fatal = (e: unknown): void => {
    // Last resort: a bug escaped runCli. Still one line, no stack unless --debug.
    process.stderr.write(`vdisk: ${e instanceof Error ? e.message : String(e)}\n`);
    if (debug && e instanceof Error && e.stack) process.stderr.write(`${e.stack}\n`);
    process.exit(1);
  };
  process.on("uncaughtException", fatal);
  process.on("unhandledRejection", fatal);
  // A closed pipe (vdisk map | head) ends the program quietly.
  process.stdout.on("error", (e: NodeJS.ErrnoException) => {
    if (e.code === "EPIPE") process.exit(0);
    fatal(e);
  });
  process.exitCode = await runCli(process.argv.slice(2), {
    stdout: process.stdout,
    stderr: process.stderr,
    isTTY: !!process.stdout.isTTY,
    programName: process.env.VDISK_PROGNAME,
  });
}

if (isMain()) void main();

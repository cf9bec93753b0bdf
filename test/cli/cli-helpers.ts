/**
 * Helpers of the CLI tests: run `vdisk` in-process through runCli, run qemu-img/qemu-io for the
 * reference output, and compare the two.
 */
import { spawnSync } from "node:child_process";
import { runCli } from "../../src/cli/main.js";

export { HAVE_QEMU, qemuImg, tempDir, warnSkipped } from "../helpers/qemu.js";

/** The result of one command run. */
export interface RunResult {
  status: number;
  stdout: string;
  stderr: string;
}

/** Runs `vdisk ...args` in-process (cwd-relative paths work as for the real bin). */
export async function vdisk(...args: string[]): Promise<RunResult> {
  let stdout = "";
  let stderr = "";
  const status = await runCli(args, {
    stdout: { write: (t: string) => (stdout += t) },
    stderr: { write: (t: string) => (stderr += t) },
    isTTY: false,
  });
  return { status, stdout, stderr };
}

/** Runs a qemu tool and captures its exit code and output. */
export function qemu(tool: "qemu-img" | "qemu-io", args: string[], cwd?: string): RunResult {
  const r = spawnSync(tool, args, { encoding: "utf8", cwd, maxBuffer: 64 << 20 });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** `text` with the program name of messages made neutral (`qemu-img: `/`vdisk: ` → `PROG: `). */
export function neutral(text: string): string {
  return text.replace(/^(qemu-img|qemu-io|vdisk): /gm, "PROG: ");
}

/** qemu-io output without its timing/rate figures, which differ per run. */
export function withoutTimings(text: string): string {
  return text.replace(/; [0-9:.]+ sec \([^)]*\)/g, "; TIME");
}

/** Runs `fn` with the process working directory set to `dir` (paths as users type them). */
export async function inDir<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  const old = process.cwd();
  process.chdir(dir);
  try {
    return await fn();
  } finally {
    process.chdir(old);
  }
}

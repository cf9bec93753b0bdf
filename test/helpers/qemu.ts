/**
 * Shared test helpers for qemu-img / qemu-io interop tests: availability with a loud skip,
 * running the tools, temporary directories.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

function has(tool: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${tool}`], { encoding: "utf8" }).status === 0;
}

/** True when qemu-img and qemu-io are installed. */
export const HAVE_QEMU = has("qemu-img") && has("qemu-io");
/** True when jq is installed (the reference-image script needs it). */
export const HAVE_JQ = has("jq");

/** Prints a loud notice once per file when interop tests are skipped. */
export function warnSkipped(what: string, tools = "qemu-img/qemu-io"): void {
  console.warn(`\n*** SKIPPED: ${what} — ${tools} not installed (apt-get install qemu-utils jq) ***\n`);
}

/** Runs qemu-img with `args`; returns stdout. Throws with stderr on a non-zero exit. */
export function qemuImg(...args: string[]): string {
  return execFileSync("qemu-img", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], maxBuffer: 64 << 20 });
}

/** Runs qemu-img and returns its exit code and output instead of throwing. */
export function qemuImgStatus(...args: string[]): { status: number; stdout: string; stderr: string } {
  const r = spawnSync("qemu-img", args, { encoding: "utf8", maxBuffer: 64 << 20 });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Runs qemu-io on `file` with `-c` commands (format given). */
export function qemuIo(format: string, file: string, commands: string[]): string {
  const args = ["-f", format];
  for (const c of commands) args.push("-c", c);
  args.push(file);
  return execFileSync("qemu-io", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

/** `qemu-img check --output=json` parsed (exit code included; 0 clean, 2 corrupt, 3 leaks). */
export function qemuCheck(file: string, format = "qcow2"): { status: number; json: Record<string, number | string> } {
  const r = qemuImgStatus("check", "--output=json", "-f", format, file);
  let json: Record<string, number | string> = {};
  try {
    json = JSON.parse(r.stdout) as Record<string, number | string>;
  } catch {
    json = { error: r.stderr };
  }
  return { status: r.status, json };
}

/** A temporary directory removed by the returned cleanup function. */
export function tempDir(prefix = "vdisk-test-"): { dir: string; path(name: string): string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, path: (name) => join(dir, name), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

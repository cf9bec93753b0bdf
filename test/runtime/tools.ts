// Finding the runtimes and tools the runtime tests drive.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root. */
export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

function onPath(cmd: string): string | undefined {
  try {
    return execFileSync("sh", ["-c", `command -v ${cmd}`], { encoding: "utf8" }).trim() || undefined;
  } catch {
    return undefined;
  }
}

/**
 * The deno binary: the `deno` devDependency's platform package (npm 11 skips its install
 * script, but the binary is there), its installed copy, else `deno` on PATH.
 */
export function findDeno(): string | undefined {
  const arch = process.arch === "arm64" ? "aarch64" : process.arch;
  const candidates = [
    join(ROOT, "node_modules", "@deno", `${process.platform}-${process.arch}-glibc`, "deno"),
    join(ROOT, "node_modules", "@deno", `${process.platform}-${arch}-glibc`, "deno"),
    join(ROOT, "node_modules", "@deno", `${process.platform}-${process.arch}`, "deno"),
    join(ROOT, "node_modules", "deno", "deno"),
  ];
  return candidates.find((p) => existsSync(p)) ?? onPath("deno");
}

/** The environment of Deno runs: its cache inside the (ignored) project cache; nothing fetched. */
export const DENO_ENV = { ...process.env, DENO_DIR: join(ROOT, ".cache", "deno"), DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" };

/**
 * `deno run` arguments for `script` with `args`, offline (cached npm packages, no lock file, no
 * prompts, the project's node_modules), allowed to read `read` and write `write` only.
 */
export function denoRunArgs(script: string, read: readonly string[], write: readonly string[], args: readonly string[]): string[] {
  return [
    "run",
    "--cached-only",
    "--no-lock",
    "--no-prompt",
    "--node-modules-dir=manual",
    `--allow-read=${read.join(",")}`,
    ...(write.length > 0 ? [`--allow-write=${write.join(",")}`] : []),
    script,
    ...args,
  ];
}

/** `qemu-img`, or undefined when it is not installed. */
export function findQemuImg(): string | undefined {
  return onPath("qemu-img");
}

/** Headless Chromium for page tests: `VDISK_CHROMIUM`, else Debian's /usr/bin/chromium; undefined when absent. */
export function findChromium(): string | undefined {
  const path = process.env.VDISK_CHROMIUM ?? "/usr/bin/chromium";
  return existsSync(path) ? path : undefined;
}

/** Throws with a clear message when the build output the runtime tests load is missing. */
export function requireDist(...files: string[]): void {
  for (const f of files) {
    if (!existsSync(join(ROOT, "dist", f))) {
      throw new Error(`dist/${f} is missing: run \`npm run build\` (npm install runs it) before the runtime tests`);
    }
  }
}

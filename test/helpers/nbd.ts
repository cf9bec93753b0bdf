/**
 * Helpers of the NBD tests: whether the NBD clients are installed (with a loud skip), running
 * them without blocking the event loop (in-process servers must keep serving meanwhile), and
 * `vdisk serve` as a child process.
 */
import { execFile, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = join(fileURLToPath(import.meta.url), "..", "..", "..");
/** The built CLI (`npm run build`). */
export const VDISK_BIN = join(ROOT, "dist", "cli", "main.js");

function has(tool: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${tool}`], { encoding: "utf8" }).status === 0;
}

/** nbdinfo and nbdcopy (Debian libnbd-bin). */
export const HAVE_LIBNBD = has("nbdinfo") && has("nbdcopy");
/** qemu-img, qemu-io and qemu-nbd (Debian qemu-utils). */
export const HAVE_QEMU_NBD = has("qemu-img") && has("qemu-io") && has("qemu-nbd");

/** Prints a loud notice when NBD interop tests are skipped. */
export function warnNbdSkipped(what: string): void {
  console.warn(`\n*** SKIPPED: ${what} — nbdinfo/nbdcopy/qemu-nbd not installed (apt-get install libnbd-bin nbdkit qemu-utils) ***\n`);
}

/** The result of a tool run. */
export interface ToolResult {
  status: number;
  stdout: string;
  stderr: string;
}

/** Runs `cmd args` asynchronously (60 s timeout); never throws for a non-zero exit. */
export function runTool(cmd: string, args: string[], timeoutMs = 60_000): Promise<ToolResult> {
  return new Promise((resolve) => {
    execFile(cmd, args, { encoding: "utf8", timeout: timeoutMs, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const status = err ? (typeof err.code === "number" ? err.code : -1) : 0;
      resolve({ status, stdout, stderr });
    });
  });
}

/** Like {@link runTool} but throws (with stderr) on a non-zero exit; returns stdout. */
export async function tool(cmd: string, ...args: string[]): Promise<string> {
  const r = await runTool(cmd, args);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}

/** A `vdisk serve` child process. */
export interface ServeProcess {
  readonly child: ChildProcess;
  /** The URLs it printed, one per export. */
  readonly urls: string[];
  /** Collected stderr so far. */
  stderr(): string;
  /** Resolves with the exit code (or the signal name) once it has exited. */
  readonly exited: Promise<number | string>;
  /** Sends SIGTERM and waits for the exit. */
  stop(): Promise<number | string>;
}

/** Starts `vdisk serve args…` and waits until it prints `exports` URLs (10 s at most). */
export function startServe(args: string[], exports = 1): Promise<ServeProcess> {
  if (!existsSync(VDISK_BIN)) throw new Error(`${VDISK_BIN} is missing: run npm run build first`);
  const child = spawn(process.execPath, [VDISK_BIN, "serve", ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | string>((resolve) => child.on("exit", (code, signal) => resolve(code ?? signal ?? -1)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`vdisk serve printed no URL in 10 s; stderr: ${err}`));
    }, 10_000);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`vdisk serve exited (${code}) before listening; stderr: ${err}`));
    });
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const urls = out.split("\n").filter((l) => l.startsWith("nbd"));
      if (urls.length >= exports && out.endsWith("\n")) {
        clearTimeout(timer);
        resolve({
          child,
          urls,
          stderr: () => err,
          exited,
          stop: () => {
            if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
            return exited;
          },
        });
      }
    });
  });
}

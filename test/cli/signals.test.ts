/**
 * Signals during a long `vdisk convert`, on the built bin: SIGUSR1 prints one progress line (as
 * qemu-img does, also without -p), SIGINT stops the copy at a consistent point, flushes and exits
 * 1 with one line — and the partial target passes `qemu-img check`.
 */
import { spawn } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { HAVE_QEMU, qemuImgStatus, tempDir, warnSkipped } from "../helpers/qemu.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const bin = join(root, "dist", "cli", "main.js");
const MiB = 1 << 20;

const tmp = tempDir("vdisk-signals-");
afterAll(() => tmp.cleanup());
if (!HAVE_QEMU) warnSkipped("CLI signal tests");

/** Runs the bin until it exits; `during` may send signals to it. */
function run(args: string[], during: (pid: number, stdout: () => string) => Promise<void>) {
  return new Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("exit", (code, signal) => resolve({ code, signal, stdout, stderr }));
    during(child.pid!, () => stdout).catch(reject);
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(!HAVE_QEMU || !existsSync(bin))("vdisk convert and signals", () => {
  const src = tmp.path("src.raw");
  // 48 MiB with a non-zero byte in every 4 KiB: every cluster is data.
  const bytes = Buffer.alloc(48 * MiB);
  for (let i = 0; i < bytes.length; i += 4096) bytes[i] = ((i >> 12) & 0xff) | 1;
  writeFileSync(src, bytes);

  it("SIGUSR1 prints a progress line; SIGINT stops, flushes, exits 1 with one line; the target checks clean", async () => {
    const dst = tmp.path("int.qcow2");
    // -r 16M: the copy takes about 3 s, time enough to signal it half-way.
    const r = await run(["convert", "-r", "16M", "-O", "qcow2", src, dst], async (pid) => {
      await sleep(1200);
      process.kill(pid, "SIGUSR1");
      await sleep(300);
      process.kill(pid, "SIGINT");
    });
    expect(r.signal).toBeNull();
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^ {4}\(\d+\.\d\d\/100%\)\n$/);
    const pct = Number(/\((\d+\.\d\d)\//.exec(r.stdout)![1]);
    expect(pct).toBeGreaterThan(0);
    expect(pct).toBeLessThan(100);
    expect(r.stderr).toMatch(/^vdisk: Interrupted: stopped at a consistent point[^\n]*\n$/);
    const check = qemuImgStatus("check", dst);
    expect(check.stdout + check.stderr).toMatch(/No errors were found on the image/);
    expect(check.status).toBe(0);
    // Part of the source reached the target; the rest was never written.
    const map = JSON.parse(qemuImgStatus("map", "--output=json", dst).stdout) as Array<{ start: number; length: number; data: boolean }>;
    const dataBytes = map.filter((e) => e.data).reduce((n, e) => n + e.length, 0);
    expect(dataBytes).toBeGreaterThan(0);
    expect(dataBytes).toBeLessThan(48 * MiB);
  });
});

/**
 * `check` runs in bounded memory: a static VDI whose header claims 64 Mi blocks (the block map
 * then covers the whole file and every entry past the real ones names block 0) made the check
 * keep one message and one Map entry per entry and grow past 3.8 GiB. Now it keeps the first
 * lines, counts the rest, and finishes in a child process whose heap is capped at 512 MiB.
 */
import { spawnSync } from "node:child_process";
import { existsSync, openSync, closeSync, writeSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { CHECK_MESSAGE_LIMIT } from "../../src/core/check-messages.js";
import { HAVE_QEMU, qemuImg, tempDir, warnSkipped } from "../helpers/qemu.js";

const cli = join(import.meta.dirname, "../../dist/cli/main.js");
if (!HAVE_QEMU) warnSkipped("check memory bound");

describe("check memory bound", () => {
  it.skipIf(!HAVE_QEMU || !existsSync(cli))("check of a static VDI with a huge block count finishes under a 512 MiB heap", () => {
    const dir = tempDir();
    const file = dir.path("s.vdi");
    qemuImg("create", "-q", "-f", "vdi", "-o", "static=on", file, "64M");
    const fd = openSync(file, "r+");
    writeSync(fd, Uint8Array.of(0, 0, 0, 4), 0, 4, 384); // blocks_in_image = 0x04000000
    closeSync(fd);
    const r = spawnSync(process.execPath, ["--max-old-space-size=512", cli, "check", file], {
      encoding: "utf8",
      maxBuffer: 64 << 20,
      timeout: 120_000,
    });
    expect(r.signal, r.stderr.slice(-500)).toBeNull();
    expect(r.status, r.stderr.slice(-500)).toBe(2);
    const lines = r.stderr.split("\n").filter((l) => l.startsWith("ERROR"));
    expect(lines.length).toBe(CHECK_MESSAGE_LIMIT);
    expect(r.stderr).toMatch(/\.\.\. \d+ more problem lines not shown/);
    const errors = Number(/^(\d+) errors were found on the image/m.exec(r.stdout)?.[1]);
    expect(errors).toBeGreaterThan(16_000_000);
    dir.cleanup();
  }, 130_000);
});

/**
 * `vdisk io` against qemu-io: same summaries (timings aside), same pattern failures and exit
 * codes, and the written data as qemu-io reads it.
 */
import { copyFileSync, writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { findDriver } from "../../src/formats/registry.js";
import { HAVE_QEMU, qemu, qemuImg, tempDir, vdisk, warnSkipped, withoutTimings } from "./cli-helpers.js";

const HAVE_QCOW2 = findDriver("qcow2") !== undefined;
if (!HAVE_QEMU) warnSkipped("vdisk io comparisons with qemu-io");

describe.skipIf(!HAVE_QEMU)("vdisk io matches qemu-io", () => {
  const t = tempDir("vdisk-cli-io-");
  beforeAll(() => {
    writeFileSync(t.path("base.raw"), new Uint8Array(1 << 20).fill(0xab, 0, 65536));
    if (HAVE_QCOW2) qemuImg("convert", "-f", "raw", "-O", "qcow2", t.path("base.raw"), t.path("base.qcow2"));
  });
  afterAll(() => t.cleanup());

  let n = 0;
  /** Runs the same commands on two copies of `file`; output, status and resulting contents must match. */
  const same = async (format: string, file: string, cmds: string[], extra: string[] = []): Promise<{ q: string; v: string }> => {
    const ext = file.slice(file.lastIndexOf("."));
    const a = t.path(`q${++n}${ext}`);
    const b = t.path(`v${n}${ext}`);
    copyFileSync(t.path(file), a);
    copyFileSync(t.path(file), b);
    const args = (f: string) => ["-f", format, ...extra, ...cmds.flatMap((c) => ["-c", c]), f];
    const ref = qemu("qemu-io", args(a));
    const ours = await vdisk("io", ...args(b));
    expect(withoutTimings(ours.stdout)).toBe(withoutTimings(ref.stdout));
    expect(ours.status).toBe(ref.status);
    expect(qemu("qemu-img", ["compare", "-f", format, "-F", format, a, b]).stdout).toBe("Images are identical.\n");
    return { q: a, v: b };
  };
  /** `qemu-img map --output=json` without host offsets (allocation order may differ). */
  const layout = (file: string): unknown =>
    (JSON.parse(qemuImg("map", "--output=json", file)) as Array<Record<string, unknown>>).map(({ offset: _o, ...rest }) => rest);

  it("read with and without pattern, pattern mismatch exits 1 and goes on", async () => {
    await same("raw", "base.raw", ["read -P 0xab 0 64k", "read 1 1k", "read 1.5k 0x200"]);
    await same("raw", "base.raw", ["read -P 0xac 0 64k", "read 0 512"]);
    await same("raw", "base.raw", ["read -P 0 64k 4k"]);
    // qemu-iotests pass cache and AIO modes to qemu-io; vdisk accepts and ignores them.
    await same("raw", "base.raw", ["read -P 0xab 0 4k"], ["--cache", "writeback", "--aio", "threads", "-i", "native", "-t", "none"]);
  });

  it("write with a pattern, the default pattern, zeroes, discard and flush", async () => {
    await same("raw", "base.raw", ["write -P 0x33 100 1000", "read -P 0x33 100 1000", "read -P 0x33 99 1000"]);
    await same("raw", "base.raw", ["write 4k 8k", "read -P 0xcd 4k 8k", "flush"]);
    await same("raw", "base.raw", ["write -z 0 64k", "read -P 0 0 64k"]);
  });

  it("-r refuses writes with exit 1", async () => {
    const r = await vdisk("io", "-f", "raw", "-r", "-c", "write 0 512", t.path("base.raw"));
    expect(r.status).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(/^write failed: .*read-only/);
  });

  it("unknown commands and bad argument counts fail", async () => {
    const r = await vdisk("io", "-f", "raw", "-c", "bogus", "-c", "read 0", t.path("base.raw"));
    expect(r.status).toBe(1);
    expect(r.stderr).toBe('command "bogus" not found\nbad argument count 1 to read, expected 2 arguments\n');
  });

  it.skipIf(!HAVE_QCOW2)("qcow2: writes, zero writes with unmap, discard", async () => {
    await same("qcow2", "base.qcow2", ["write -P 0x5a 128k 64k", "write -z -u 0 64k", "discard 128k 64k", "read -P 0 0 64k"]);
    await same("qcow2", "base.qcow2", ["write -P 0x11 300k 5000", "read -P 0x11 300k 5000"]);
  });

  it.skipIf(!HAVE_QCOW2)("qcow2 v2 and v3, with and without a backing file: discard as qemu-io (qemu-iotests 290)", async () => {
    writeFileSync(t.path("base290.raw"), new Uint8Array(128 << 10).fill(0xff));
    for (const compat of ["0.10", "1.1"]) {
      for (const backing of [true, false]) {
        const file = `d290-${compat}-${backing}.qcow2`;
        const b = backing ? ["-b", "base290.raw", "-F", "raw"] : [];
        qemu("qemu-img", ["create", "-q", "-f", "qcow2", "-o", `compat=${compat}`, ...b, file, "128k"], t.dir);
        // v2 over a backing file keeps the clusters (reads 0x01); the others read zeros.
        const dirs = await same("qcow2", file, ["write -P 0x01 0 128k", "discard 0 128k", "read -P 0x01 0 128k", "read -P 0 0 128k"]);
        expect(layout(dirs.v), `map of ${file}`).toEqual(layout(dirs.q));
      }
    }
  });
});

/**
 * `vdisk io` against qemu-io: same summaries (timings aside), same pattern failures and exit
 * codes, and the written data as qemu-io reads it.
 */
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { findDriver } from "../../src/formats/registry.js";
import { HAVE_QEMU, neutral, qemu, qemuImg, tempDir, vdisk, warnSkipped, withoutTimings } from "./cli-helpers.js";

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
  const same = async (
    format: string,
    file: string,
    cmds: string[],
    extra: string[] = [],
    compareErr = false,
  ): Promise<{ q: string; v: string }> => {
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
    if (compareErr) expect(neutral(ours.stderr)).toBe(neutral(ref.stderr));
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
    expect(r.stderr).toBe("vdisk: Block node is read-only\n");
  });

  it("unknown commands and bad argument counts fail", async () => {
    const r = await vdisk("io", "-f", "raw", "-c", "bogus", "-c", "read 0", t.path("base.raw"));
    expect(r.status).toBe(1);
    expect(r.stderr).toBe('command "bogus" not found\nbad argument count 1 to read, expected at least 2 arguments\n');
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

  it.skipIf(!HAVE_QCOW2)("readv/writev, -v dump, pattern ranges, alloc, map, length as qemu-io", async () => {
    await same("qcow2", "base.qcow2", [
      "writev -P 0x41 64k 512 1k 3k",
      "readv -P 0x41 64k 1k 3k 512",
      "read -v 65530 40",
      "read -v 0 17",
      "read -P 0xab -s 0 -l 4k 60k 8k",
      "read -P 0x41 -s 4k -l 512 60k 8k",
      "read -P 0xab -s 1k -l 1k 64k 4k",
      "alloc 0 128k",
      "alloc 64k",
      "alloc 200k 64k",
      "map",
      "length",
    ]);
  });

  it.skipIf(!HAVE_QCOW2)("aio_write completes by aio_flush or the end; later reads see it", async () => {
    // One request in flight at a time: qemu-io reports concurrent ones in completion order.
    await same("qcow2", "base.qcow2", ["aio_write -P 0x21 0 4k", "aio_flush", "aio_write -P 0x22 8k 4k", "aio_flush", "read -P 0x22 8k 4k"]);
    await same("qcow2", "base.qcow2", ["aio_write -P 0x23 128k 64k", "aio_write -q -P 0x24 256k 512"]);
    await same("qcow2", "base.qcow2", ["aio_read -P 0xab 0 4k", "aio_flush"]);
  });

  it.skipIf(!HAVE_QCOW2)("truncate grows the image; length shows it", async () => {
    await same("qcow2", "base.qcow2", ["truncate 2M", "length", "read -P 0 1M 1M", "map"]);
  });

  it("failures as qemu-io: past the end, bad patterns, bad numbers, bad options, argument counts", async () => {
    await same("raw", "base.raw", ["read 1M 1", "write 1023k 2k", "readv 1M 1 1", "writev 1M 1"]);
    await same("raw", "base.raw", ["read -P 300 0 1", "write -P -1 0 1", "read -P route66 0 1"], [], true);
    await same("raw", "base.raw", ["read a 1", "read 0 2G", "read 0 -1", "read -x 0 1", "write -z -P 1 0 1", "write -c 1 512", "write -c 0 1", "write -u 0 1", "write -f -c 0 512"], [], true);
    await same("raw", "base.raw", ["read 0", "flush 1", "alloc", "bogus", "length 1"], [], true);
    // qemu-io's one-letter aliases, in messages under the name typed.
    await same("raw", "base.raw", ["w -P 0x61 0 512", "r -P 0x61 0 512", "a 0", "f", "r", "t", "d"], [], true);
    await same("raw", "base.raw", ["read 0 0", "write 0 0", "discard 0 0", "read 1.5k 1k", "read 0x10 0x10"]);
  });

  it("a raw file whose size is no multiple of 512: qemu-io reads its last sector's tail as zeros (qemu-iotests 101)", async () => {
    writeFileSync(t.path("short.raw"), new Uint8Array(320).fill(9));
    await same("raw", "short.raw", ["read -P 9 0 320", "read -P 0 320 192", "read 0 512", "read 0 513", "length"]);
  });

  it("-r: write commands refused before they run, as qemu-io", async () => {
    await same("raw", "base.raw", ["write 0 1", "discard 0 1", "truncate 0", "read 0 1"], ["-r"], true);
  });

  it.skipIf(!HAVE_QCOW2)("open/close within one -c list, and commands without an open image", async () => {
    const a = t.path("oc-q.qcow2");
    const b = t.path("oc-v.qcow2");
    copyFileSync(t.path("base.qcow2"), a);
    copyFileSync(t.path("base.qcow2"), b);
    const cmds = (f: string): string[] =>
      [`open -o driver=qcow2 ${f}`, "write -P 0x77 0 512", "close", "read 0 1", `open -r ${f}`, "read -P 0x77 0 512", "close"].flatMap(
        (c) => ["-c", c],
      );
    const ref = qemu("qemu-io", cmds(a));
    const ours = await vdisk("io", ...cmds(b));
    expect(withoutTimings(ours.stdout)).toBe(withoutTimings(ref.stdout));
    expect(neutral(ours.stderr)).toBe(neutral(ref.stderr));
    expect(ours.status).toBe(ref.status);
  });

  it("commands from standard input after the prompt when no -c is given (the built CLI)", () => {
    const a = t.path("stdin-q.raw");
    const b = t.path("stdin-v.raw");
    copyFileSync(t.path("base.raw"), a);
    copyFileSync(t.path("base.raw"), b);
    const input = "write -P 0x12 0 512\nread -P 0x12 0 512\nread -P 0x13 0 512\n";
    const ref = spawnSync("qemu-io", ["-f", "raw", a], { input, encoding: "utf8" });
    const main = new URL("../../dist/cli/main.js", import.meta.url).pathname;
    const ours = spawnSync("node", [main, "io", "-f", "raw", b], { input, encoding: "utf8" });
    expect(withoutTimings(ours.stdout)).toBe(withoutTimings(ref.stdout));
    expect(ours.status).toBe(ref.status);
  });

  it("open -o driver=file|host_device,filename=…: the protocol's checks, as qemu-io (qemu-iotests 226)", async () => {
    const dir = t.path("not-a-file");
    mkdirSync(dir, { recursive: true });
    for (const proto of ["file", "host_device"]) {
      for (const ro of ["-r ", ""]) {
        for (const f of [dir, "/dev/null"]) {
          const args = ["-c", `open ${ro}-o driver=${proto},filename=${f},locking=off`];
          const ref = qemu("qemu-io", args);
          const ours = await vdisk("io", ...args);
          expect(neutral(ours.stderr), `${proto} ${ro}${f}`).toBe(neutral(ref.stderr));
          expect(ours.status).toBe(ref.status);
        }
      }
    }
  });
});

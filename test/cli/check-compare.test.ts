/**
 * `vdisk check` and `vdisk compare` against qemu-img: same output, same exit codes.
 */
import { copyFileSync, openSync, readSync, closeSync, writeSync, truncateSync, writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { findDriver } from "../../src/formats/registry.js";
import { HAVE_QEMU, inDir, neutral, qemu, qemuImg, tempDir, vdisk, warnSkipped } from "./cli-helpers.js";

const HAVE_QCOW2 = findDriver("qcow2") !== undefined;
if (!HAVE_QEMU) warnSkipped("vdisk check/compare comparisons with qemu-img");

/** Sets the 16-bit refcount of `cluster` in the first refcount block of a qcow2 file. */
function setRefcount(path: string, cluster: number, value: number): void {
  const fd = openSync(path, "r+");
  const head = Buffer.alloc(104);
  readSync(fd, head, 0, 104, 0);
  const table = Number(head.readBigUInt64BE(48));
  const entry = Buffer.alloc(8);
  readSync(fd, entry, 0, 8, table);
  const block = Number(entry.readBigUInt64BE(0));
  const v = Buffer.alloc(2);
  v.writeUInt16BE(value);
  writeSync(fd, v, 0, 2, block + 2 * cluster);
  closeSync(fd);
}

function writeByte(path: string, offset: number, value: number): void {
  const fd = openSync(path, "r+");
  writeSync(fd, Buffer.from([value]), 0, 1, offset);
  closeSync(fd);
}

describe.skipIf(!HAVE_QEMU)("vdisk check/compare match qemu-img", () => {
  const t = tempDir("vdisk-cli-check-");
  const MiB = 1 << 20;
  beforeAll(() => {
    const data = new Uint8Array(4 * MiB).map((_, i) => ((i >> 9) * 13 + 1) & 0xff);
    writeFileSync(t.path("a.raw"), data);
    writeFileSync(t.path("a-copy.raw"), data);
    // One byte different in the middle of a sector: reported at the sector start.
    writeFileSync(t.path("a-byte.raw"), data);
    writeByte(t.path("a-byte.raw"), 70000, data[70000] ^ 0xff);
    // Larger by 1 MiB of zeros; then a non-zero byte in the extra part.
    writeFileSync(t.path("a-longer.raw"), data);
    truncateSync(t.path("a-longer.raw"), 5 * MiB);
    copyFileSync(t.path("a-longer.raw"), t.path("a-longer-dirty.raw"));
    writeByte(t.path("a-longer-dirty.raw"), 4 * MiB + 70000, 5);
    if (!HAVE_QCOW2) return;
    qemuImg("convert", "-f", "raw", "-O", "qcow2", t.path("a.raw"), t.path("a.qcow2"));
    qemuImg("create", "-q", "-f", "qcow2", t.path("sparse.qcow2"), "4M");
    qemu("qemu-io", ["-f", "qcow2", "-c", "write -P 0x5a 1M 64k", "-c", "write -z 2M 64k", t.path("sparse.qcow2")]);
    qemuImg("convert", "-O", "raw", t.path("sparse.qcow2"), t.path("sparse.raw"));
    qemuImg("create", "-q", "-f", "qcow2", "-b", "sparse.qcow2", "-F", "qcow2", t.path("overlay.qcow2"));
    qemu("qemu-io", ["-f", "qcow2", "-c", "write -P 0x77 0 64k", t.path("overlay.qcow2")]);
    // Leaks: two clusters past the end of the used area marked in use.
    copyFileSync(t.path("sparse.qcow2"), t.path("leaky.qcow2"));
    const end = Number(JSON.parse(qemuImg("check", "--output=json", t.path("leaky.qcow2")))["image-end-offset"]);
    truncateSync(t.path("leaky.qcow2"), end + 2 * 65536);
    setRefcount(t.path("leaky.qcow2"), end / 65536, 1);
    setRefcount(t.path("leaky.qcow2"), end / 65536 + 1, 1);
    // A corruption: a data cluster's refcount dropped to 0.
    copyFileSync(t.path("sparse.qcow2"), t.path("corrupt.qcow2"));
    const map = JSON.parse(qemuImg("map", "--output=json", t.path("sparse.qcow2"))) as Array<{ offset?: number }>;
    const dataCluster = map.find((e) => e.offset !== undefined)!.offset! / 65536;
    setRefcount(t.path("corrupt.qcow2"), dataCluster, 0);
  });
  afterAll(() => t.cleanup());

  /** Runs both tools in the temp dir; stdout, stderr (program name aside) and status must match. */
  const same = async (args: string[], opts: { stderr?: boolean } = {}): Promise<void> => {
    await inDir(t.dir, async () => {
      const ref = qemu("qemu-img", args, t.dir);
      const ours = await vdisk(...args);
      expect(ours.stdout).toBe(ref.stdout);
      if (opts.stderr !== false) expect(neutral(ours.stderr)).toBe(neutral(ref.stderr));
      expect(ours.status).toBe(ref.status);
    });
  };

  it("check of a raw image: the format has no check, exit 63", async () => {
    await same(["check", "a.raw"]);
    await same(["check", "--output=json", "a.raw"]);
  });

  it("compare: identical, different at a sector, size differences, strict mode", async () => {
    await same(["compare", "a.raw", "a-copy.raw"]);
    await same(["compare", "a.raw", "a-byte.raw"]);
    await same(["compare", "a.raw", "a-longer.raw"]);
    await same(["compare", "a-longer.raw", "a.raw"]);
    await same(["compare", "a.raw", "a-longer-dirty.raw"]);
    await same(["compare", "-s", "a.raw", "a-longer.raw"]);
    await same(["compare", "-q", "a.raw", "a-byte.raw"]);
    await same(["compare", "-f", "raw", "-F", "raw", "a.raw", "a-copy.raw"]);
  });

  it("compare with a missing image exits 2", async () => {
    const r = await inDir(t.dir, () => vdisk("compare", "a.raw", "missing.raw"));
    expect(r.status).toBe(qemu("qemu-img", ["compare", "a.raw", "missing.raw"], t.dir).status);
    expect(r.stderr).toBe("vdisk: Could not open 'missing.raw': No such file or directory\n");
  });

  describe.skipIf(!HAVE_QCOW2)("qcow2", () => {
    it("check: clean, leaks (exit 3), corruptions (exit 2), human and json", async () => {
      expect(qemu("qemu-img", ["check", t.path("leaky.qcow2")]).status).toBe(3);
      expect(qemu("qemu-img", ["check", t.path("corrupt.qcow2")]).status).toBe(2);
      for (const f of ["a.qcow2", "sparse.qcow2", "leaky.qcow2", "corrupt.qcow2"]) {
        // Problem lines on stderr are the driver's wording; the report and exit code must match.
        await same(["check", f], { stderr: false });
        await same(["check", "--output=json", f], { stderr: false });
      }
    });

    it("check -r leaks repairs and reports like qemu-img", async () => {
      copyFileSync(t.path("leaky.qcow2"), t.path("leaky-q.qcow2"));
      copyFileSync(t.path("leaky.qcow2"), t.path("leaky-v.qcow2"));
      await inDir(t.dir, async () => {
        const ref = qemu("qemu-img", ["check", "-r", "leaks", "leaky-q.qcow2"], t.dir);
        const ours = await vdisk("check", "-r", "leaks", "leaky-v.qcow2");
        expect(ours.stdout).toBe(ref.stdout);
        expect(ours.status).toBe(ref.status);
      });
      expect(qemu("qemu-img", ["check", t.path("leaky-v.qcow2")]).status).toBe(0);
    });

    it("compare across formats, backing chains and strict allocation status", async () => {
      await same(["compare", "a.raw", "a.qcow2"]);
      await same(["compare", "sparse.qcow2", "sparse.raw"]);
      await same(["compare", "sparse.qcow2", "overlay.qcow2"]);
      await same(["compare", "-s", "sparse.qcow2", "overlay.qcow2"]);
      await same(["compare", "-s", "sparse.qcow2", "sparse.qcow2"]);
      await same(["compare", "-f", "qcow2", "-F", "raw", "sparse.qcow2", "a.raw"]);
    });
  });
});

/**
 * `vdisk convert` and `vdisk create`, checked with qemu-img: contents identical (qemu-img
 * compare), images consistent (qemu-img check), outputs sparse, create messages as qemu-img's.
 */
import { statSync, writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { findDriver } from "../../src/formats/registry.js";
import { HAVE_QEMU, inDir, neutral, qemu, qemuImg, tempDir, vdisk, warnSkipped } from "./cli-helpers.js";

const HAVE_QCOW2 = findDriver("qcow2") !== undefined;
if (!HAVE_QEMU) warnSkipped("vdisk convert/create checks with qemu-img");

const MiB = 1 << 20;

describe.skipIf(!HAVE_QEMU)("vdisk convert", () => {
  const t = tempDir("vdisk-cli-convert-");
  beforeAll(() => {
    // 8 MiB raw: data at 0..192k, zeros, an unaligned data run at 3 MiB + 1000, zeros to the end.
    const img = new Uint8Array(8 * MiB);
    for (let i = 0; i < 192 * 1024; i++) img[i] = (i * 7 + 3) & 0xff;
    for (let i = 3 * MiB + 1000; i < 3 * MiB + 9000; i++) img[i] = 0x42;
    writeFileSync(t.path("src.raw"), img);
    if (!HAVE_QCOW2) return;
    qemuImg("convert", "-f", "raw", "-O", "qcow2", t.path("src.raw"), t.path("src.qcow2"));
    qemuImg("create", "-q", "-f", "qcow2", "-b", "src.qcow2", "-F", "qcow2", t.path("top.qcow2"));
    qemu("qemu-io", ["-f", "qcow2", "-c", "write -P 0x99 64k 64k", "-c", "write -z 3M 64k", t.path("top.qcow2")]);
  });
  afterAll(() => t.cleanup());

  const identical = (a: string, b: string, fa: string, fb: string): void => {
    const r = qemu("qemu-img", ["compare", "-f", fa, "-F", fb, t.path(a), t.path(b)]);
    expect(r.stdout).toBe("Images are identical.\n");
    expect(r.status).toBe(0);
  };

  it("raw → raw keeps contents and leaves zero ranges unwritten", async () => {
    const r = await vdisk("convert", "-f", "raw", "-O", "raw", t.path("src.raw"), t.path("out.raw"));
    expect(r).toEqual({ status: 0, stdout: "", stderr: "" });
    identical("src.raw", "out.raw", "raw", "raw");
    // 192 KiB + one 4 KiB-aligned run of 12 KiB written: far less than 8 MiB allocated.
    expect(statSync(t.path("out.raw")).blocks * 512).toBeLessThan(1 * MiB);
    expect(statSync(t.path("out.raw")).size).toBe(8 * MiB);
  });

  it("-S 0 writes every allocated byte; -p prints qemu-img's progress line", async () => {
    const r = await vdisk("convert", "-p", "-S", "0", "-f", "raw", "-O", "raw", t.path("src.raw"), t.path("full.raw"));
    expect(r.status).toBe(0);
    expect(r.stdout.startsWith("    (0.00/100%)\r")).toBe(true);
    expect(r.stdout.endsWith("    (100.00/100%)\r\n")).toBe(true);
    identical("src.raw", "full.raw", "raw", "raw");
    expect(statSync(t.path("full.raw")).blocks * 512).toBeGreaterThanOrEqual(8 * MiB);
  });

  it("-n writes into an existing image and zeroes what the source reads as zero", async () => {
    writeFileSync(t.path("dirty.raw"), new Uint8Array(8 * MiB).fill(0xee));
    const r = await vdisk("convert", "-n", "-f", "raw", "-O", "raw", t.path("src.raw"), t.path("dirty.raw"));
    expect(r.status).toBe(0);
    identical("src.raw", "dirty.raw", "raw", "raw");
  });

  it("errors: unknown format, missing source, bad -S, smaller -n target, -c on raw", async () => {
    expect(await vdisk("convert", "-O", "nope", t.path("src.raw"), t.path("x.img"))).toEqual({
      status: 1, stdout: "", stderr: "vdisk: Unknown file format 'nope'\n",
    });
    const missing = await vdisk("convert", "-O", "raw", t.path("missing.raw"), t.path("x.img"));
    expect(missing.status).toBe(1);
    expect(missing.stderr).toBe(`vdisk: Could not open '${t.path("missing.raw")}': No such file or directory\n`);
    const badS = await vdisk("convert", "-S", "1000", "-O", "raw", t.path("src.raw"), t.path("x.img"));
    expect(badS.status).toBe(1);
    expect(badS.stderr).toMatch(/^vdisk: Invalid buffer size for sparse output/);
    writeFileSync(t.path("small.raw"), new Uint8Array(4096));
    expect(await vdisk("convert", "-n", "-f", "raw", "-O", "raw", t.path("src.raw"), t.path("small.raw"))).toEqual({
      status: 1, stdout: "", stderr: "vdisk: Error: the target image is smaller than the source\n",
    });
    const c = await vdisk("convert", "-c", "-f", "raw", "-O", "raw", t.path("src.raw"), t.path("x.img"));
    expect(c).toEqual({ status: 1, stdout: "", stderr: "vdisk: Compression not supported for this file format\n" });
    expect(await vdisk("convert", "-t", "bogus", "-f", "raw", "-O", "raw", t.path("src.raw"), t.path("x.img"))).toEqual({
      status: 1, stdout: "", stderr: "vdisk: Invalid cache option: bogus\n",
    });
  });

  it("-t takes qemu-img's cache modes; the output is the same with each", async () => {
    for (const mode of ["unsafe", "writeback", "none", "writethrough", "directsync"]) {
      const r = await vdisk("convert", "-t", mode, "-T", "writeback", "-f", "raw", "-O", "raw", t.path("src.raw"), t.path(`t-${mode}.raw`));
      expect(r, mode).toEqual({ status: 0, stdout: "", stderr: "" });
      identical("src.raw", `t-${mode}.raw`, "raw", "raw");
    }
  });

  describe.skipIf(!HAVE_QCOW2)("qcow2", () => {
    it("qcow2 → raw and raw → qcow2: identical, clean, sparse", async () => {
      expect((await vdisk("convert", "-O", "raw", t.path("src.qcow2"), t.path("q2r.raw"))).status).toBe(0);
      identical("src.qcow2", "q2r.raw", "qcow2", "raw");
      expect(statSync(t.path("q2r.raw")).blocks * 512).toBeLessThan(1 * MiB);
      expect((await vdisk("convert", "-f", "raw", "-O", "qcow2", t.path("src.raw"), t.path("r2q.qcow2"))).status).toBe(0);
      identical("src.raw", "r2q.qcow2", "raw", "qcow2");
      expect(qemu("qemu-img", ["check", t.path("r2q.qcow2")]).status).toBe(0);
      // The same clusters are allocated as when qemu-img converts the file.
      qemuImg("convert", "-f", "raw", "-O", "qcow2", t.path("src.raw"), t.path("ref.qcow2"));
      const alloc = (f: string) =>
        (JSON.parse(qemuImg("map", "--output=json", t.path(f))) as Array<{ start: number; length: number; data: boolean }>)
          .filter((e) => e.data)
          .map((e) => [e.start, e.length]);
      expect(alloc("r2q.qcow2")).toEqual(alloc("ref.qcow2"));
    });

    it("a backing chain is flattened; -B keeps only the top layer's data", async () => {
      expect((await vdisk("convert", "-O", "qcow2", t.path("top.qcow2"), t.path("flat.qcow2"))).status).toBe(0);
      identical("top.qcow2", "flat.qcow2", "qcow2", "qcow2");
      const info = JSON.parse(qemuImg("info", "--output=json", t.path("flat.qcow2"))) as Record<string, unknown>;
      expect(info["backing-filename"]).toBeUndefined();

      await inDir(t.dir, async () => {
        const r = await vdisk("convert", "-O", "qcow2", "-B", "src.qcow2", "-F", "qcow2", "top.qcow2", "rebased.qcow2");
        expect(r.status).toBe(0);
      });
      identical("top.qcow2", "rebased.qcow2", "qcow2", "qcow2");
      const map = JSON.parse(qemuImg("map", "--output=json", t.path("rebased.qcow2"))) as Array<{ start: number; depth: number; present: boolean }>;
      const own = map.filter((e) => e.depth === 0 && e.present).map((e) => e.start);
      expect(own).toEqual([65536, 3 * MiB]);
    });

    it("-c writes compressed clusters that qemu-img reads back", async () => {
      expect((await vdisk("convert", "-c", "-O", "qcow2", t.path("top.qcow2"), t.path("comp.qcow2"))).status).toBe(0);
      identical("top.qcow2", "comp.qcow2", "qcow2", "qcow2");
      const check = JSON.parse(qemu("qemu-img", ["check", "--output=json", t.path("comp.qcow2")]).stdout) as Record<string, number>;
      expect(check["compressed-clusters"]).toBeGreaterThan(0);
      expect(check["check-errors"]).toBe(0);
    });
  });
});

describe.skipIf(!HAVE_QEMU)("vdisk create", () => {
  const t = tempDir("vdisk-cli-create-");
  afterAll(() => t.cleanup());

  /**
   * Same outcome as qemu-img create. The "Formatting" line matches exactly for raw; qemu-img also
   * lists qcow2's default options there, which vdisk leaves out (`sizeOnly`).
   */
  const same = async (args: string[], file: string, sizeOnly = false): Promise<void> => {
    await inDir(t.dir, async () => {
      const ref = qemu("qemu-img", ["create", ...args], t.dir);
      const refInfo = ref.status === 0 ? qemuImg("info", "--output=json", t.path(file)) : "";
      const ours = await vdisk("create", ...args);
      if (sizeOnly) {
        const size = / size=\d+/.exec(ref.stdout)![0];
        expect(ours.stdout).toBe(`${ref.stdout.slice(0, ref.stdout.indexOf(" ", ref.stdout.indexOf("fmt=")))}${size}\n`);
      } else expect(ours.stdout).toBe(ref.stdout);
      expect(neutral(ours.stderr)).toBe(neutral(ref.stderr).split("\n")[0] + (ref.stderr ? "\n" : ""));
      expect(ours.status).toBe(ref.status);
      if (ref.status === 0) {
        const mine = JSON.parse(qemuImg("info", "--output=json", t.path(file))) as Record<string, unknown>;
        const theirs = JSON.parse(refInfo) as Record<string, unknown>;
        for (const k of ["virtual-size", "format", "backing-filename", "backing-filename-format"]) expect(mine[k]).toEqual(theirs[k]);
      }
    });
  };

  it("raw images, sizes with suffixes, preallocation option", async () => {
    await same(["-f", "raw", "a.img", "1M"], "a.img");
    await same(["-f", "raw", "a.img", "1.5M"], "a.img");
    await same(["-f", "raw", "-o", "preallocation=off", "a.img", "1G"], "a.img");
    await same(["-q", "-f", "raw", "a.img", "64k"], "a.img");
  });

  it("errors: no size, bad size, unknown option, backing on raw", async () => {
    await same(["-f", "raw", "b.img"], "b.img");
    await same(["-f", "raw", "-b", "a.img", "-F", "raw", "b.img"], "b.img");
    const bad = await vdisk("create", "-f", "raw", t.path("b.img"), "12x");
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/^vdisk: Invalid image size specified/);
    const opt = await vdisk("create", "-f", "raw", "-o", "bogus=1", t.path("b.img"), "1M");
    expect(opt.status).toBe(1);
    expect(opt.stderr).toMatch(/^vdisk: .*b\.img: Invalid option 'bogus'/);
  });

  it("-o help lists the driver's options", async () => {
    const r = await vdisk("create", "-f", "raw", "-o", "help");
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^Supported raw options:\n/);
    expect(r.stdout).toContain("  preallocation=<str>    - ");
    expect(r.stdout).toContain("  size=<size>            - Virtual disk size\n");
  });

  it.skipIf(!HAVE_QCOW2)("qcow2 with a backing file takes the backing file's size", async () => {
    await same(["-f", "qcow2", "base.qcow2", "16M"], "base.qcow2", true);
    const ours = await inDir(t.dir, () => vdisk("create", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", "over.qcow2"));
    expect(ours.status).toBe(0);
    expect(ours.stdout).toMatch(/^Formatting 'over\.qcow2', fmt=qcow2 size=16777216 backing_file=base\.qcow2 backing_fmt=qcow2/);
    expect(qemu("qemu-img", ["check", t.path("over.qcow2")]).status).toBe(0);
    const info = JSON.parse(qemuImg("info", "--output=json", t.path("over.qcow2"))) as Record<string, unknown>;
    expect(info["backing-filename"]).toBe("base.qcow2");
    expect(info["virtual-size"]).toBe(16 * MiB);
    // A missing backing file fails before anything is created.
    const missing = await inDir(t.dir, () => vdisk("create", "-f", "qcow2", "-b", "gone.qcow2", "-F", "qcow2", "x.qcow2"));
    expect(missing).toEqual({ status: 1, stdout: "", stderr: "vdisk: x.qcow2: Could not open 'gone.qcow2': No such file or directory\n" });
  });
});

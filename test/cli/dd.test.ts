/**
 * `vdisk dd` against `qemu-img dd` on the same source and operands: the same output size, the
 * same guest contents (qemu-img compare), the same messages and exit codes — including
 * qemu-img's reading of `count=` (the copy ends at block `count` of the source, skipped blocks
 * included) and its "cannot skip to specified offset" with exit 0.
 */
import { statSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HAVE_QEMU, inDir, neutral, qemu, qemuImg, tempDir, vdisk, warnSkipped } from "./cli-helpers.js";

if (!HAVE_QEMU) warnSkipped("vdisk dd comparisons with qemu-img");

describe.skipIf(!HAVE_QEMU)("vdisk dd matches qemu-img dd", () => {
  const t = tempDir("vdisk-cli-dd-");
  beforeAll(() => {
    qemuImg("create", "-q", "-f", "qcow2", t.path("src.qcow2"), "4M");
    qemu("qemu-io", ["-f", "qcow2", "-c", "write -P 0x11 0 1M", "-c", "write -P 0x22 2M 1M", "-c", "write -P 0x33 3700k 5k", t.path("src.qcow2")]);
  });
  afterAll(() => t.cleanup());

  const cases = [
    "-f qcow2 -O raw bs=64k count=20 skip=4",
    "bs=3000 count=2",
    "-O qcow2 bs=4k count=77 skip=3",
    "-O vmdk bs=1M skip=1",
    "bs=1k count=3700 skip=7",
    "bs=64k count=4 skip=8",
    "bs=64k count=8 skip=8",
    "bs=64k skip=65",
    "bs=0",
    "count=-1",
    "foo=1",
    "bs=1k",
  ];
  for (const c of cases) {
    it(`dd ${c}`, async () => {
      const args = c.split(" ");
      const q = qemu("qemu-img", ["dd", ...args, "if=src.qcow2", "of=q.out"], t.dir);
      const v = await inDir(t.dir, () => vdisk("dd", ...args, "if=src.qcow2", "of=v.out"));
      expect(v.status).toBe(q.status);
      // vdisk keeps qemu-img's two-line suffix hint on one line (errors are one line).
      const oneLine = (text: string) => neutral(text).replace(/ for\nPROG: kilobytes/g, " for kilobytes");
      expect(oneLine(v.stderr).split("\n").filter((l) => !/warning/.test(l))).toEqual(oneLine(q.stderr).split("\n"));
      if (q.status === 0) {
        const fmt = qemuImg("info", "--output=json", t.path("q.out"));
        const vfmt = qemuImg("info", "--output=json", t.path("v.out"));
        expect(JSON.parse(vfmt)["virtual-size"]).toBe(JSON.parse(fmt)["virtual-size"]);
        expect(JSON.parse(vfmt).format).toBe(JSON.parse(fmt).format);
        if (statSync(t.path("q.out")).size > 0) expect(qemuImg("compare", t.path("q.out"), t.path("v.out"))).toMatch(/identical/);
      }
    });
  }

  it("without if= or of=: qemu-img's message and exit code", async () => {
    const q = qemu("qemu-img", ["dd", "if=src.qcow2"], t.dir);
    const v = await inDir(t.dir, () => vdisk("dd", "if=src.qcow2"));
    expect(v.status).toBe(q.status);
    expect(neutral(v.stderr)).toBe(neutral(q.stderr));
  });
});

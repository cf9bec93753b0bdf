/**
 * `vdisk convert` with several sources (copied one after another, as qemu-img) and `--salvage`
 * (unreadable sectors become zeros with one warning each), against qemu-img on the same files.
 */
import { openSync, readFileSync, readSync, closeSync, writeSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HAVE_QEMU, inDir, qemu, qemuImg, tempDir, vdisk, warnSkipped } from "./cli-helpers.js";

if (!HAVE_QEMU) warnSkipped("vdisk convert with several sources / --salvage");

describe.skipIf(!HAVE_QEMU)("convert with several sources and --salvage", () => {
  const t = tempDir("vdisk-cli-sources-");
  beforeAll(() => {
    qemuImg("create", "-q", "-f", "qcow2", t.path("a.qcow2"), "3M");
    qemu("qemu-io", ["-f", "qcow2", "-c", "write -P 0x11 512k 1M", t.path("a.qcow2")]);
    qemuImg("create", "-q", "-f", "raw", t.path("b.raw"), "1536k");
    qemu("qemu-io", ["-f", "raw", "-c", "write -P 0x22 0 4k", "-c", "write -P 0x23 1000k 100k", t.path("b.raw")]);
    qemuImg("create", "-q", "-f", "vpc", "-o", "force_size=on", t.path("c.vhd"), "2M");
    qemu("qemu-io", ["-f", "vpc", "-c", "write -P 0x33 1M 64k", t.path("c.vhd")]);
    // A compressed qcow2 whose second cluster's stream is damaged.
    qemuImg("create", "-q", "-f", "raw", t.path("s.raw"), "1M");
    qemu("qemu-io", ["-f", "raw", "-c", "write -P 0x41 0 1M", t.path("s.raw")]);
    qemuImg("convert", "-c", "-O", "qcow2", t.path("s.raw"), t.path("bad.qcow2"));
    const fd = openSync(t.path("bad.qcow2"), "r+");
    const head = Buffer.alloc(48);
    readSync(fd, head, 0, 48, 0);
    const l1 = Number(head.readBigUInt64BE(40));
    const e = Buffer.alloc(8);
    readSync(fd, e, 0, 8, l1);
    const l2 = Number(e.readBigUInt64BE(0) & 0x00fffffffffffe00n);
    readSync(fd, e, 0, 8, l2 + 8);
    const host = Number(e.readBigUInt64BE(0) & ((1n << 54n) - 1n));
    writeSync(fd, Buffer.alloc(64, 0xff), 0, 64, host);
    closeSync(fd);
  });
  afterAll(() => t.cleanup());

  it("several sources become one target of their summed size, equal to qemu-img's", async () => {
    for (const out of ["qcow2", "raw", "vmdk"]) {
      qemuImg("convert", "-O", out, t.path("a.qcow2"), t.path("b.raw"), t.path("c.vhd"), t.path(`q.${out}`));
      const r = await vdisk("convert", "-O", out, t.path("a.qcow2"), t.path("b.raw"), t.path("c.vhd"), t.path(`v.${out}`));
      expect(r.stderr).toBe("");
      expect(r.status).toBe(0);
      const q = JSON.parse(qemuImg("info", "--output=json", t.path(`q.${out}`)));
      const v = JSON.parse(qemuImg("info", "--output=json", t.path(`v.${out}`)));
      expect(v["virtual-size"]).toBe(q["virtual-size"]);
      expect(qemuImg("compare", t.path(`q.${out}`), t.path(`v.${out}`))).toMatch(/identical/);
    }
  });

  it("--salvage writes unreadable sectors as zeros and warns once per sector, as qemu-img", async () => {
    const q = qemu("qemu-img", ["convert", "--salvage", "-O", "raw", "bad.qcow2", "q.raw"], t.dir);
    const v = await inDir(t.dir, () => vdisk("convert", "--salvage", "-O", "raw", "bad.qcow2", "v.raw"));
    expect(v.status).toBe(q.status);
    expect(v.status).toBe(0);
    const offsets = (text: string) => [...text.matchAll(/warning: error while reading offset (\d+):/g)].map((m) => Number(m[1]));
    expect(offsets(v.stderr)).toEqual(offsets(q.stderr));
    expect(offsets(v.stderr).length).toBe(128);
    expect(Buffer.compare(readFileSync(t.path("v.raw")), readFileSync(t.path("q.raw")))).toBe(0);
    // Without --salvage the first error stops the copy with exit 1.
    const plain = await inDir(t.dir, () => vdisk("convert", "-O", "raw", "bad.qcow2", "w.raw"));
    expect(plain.status).toBe(1);
    expect(plain.stderr.split("\n").filter(Boolean)).toHaveLength(1);
  });
});

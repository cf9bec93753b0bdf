/**
 * `vdisk info` and `vdisk map` against qemu-img on the same files: byte-identical output.
 */
import { writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { findDriver } from "../../src/formats/registry.js";
import { HAVE_QEMU, inDir, neutral, qemu, qemuImg, tempDir, vdisk, warnSkipped } from "./cli-helpers.js";

const HAVE_QCOW2 = findDriver("qcow2") !== undefined;
if (!HAVE_QEMU) warnSkipped("vdisk info/map comparisons with qemu-img");

describe.skipIf(!HAVE_QEMU)("vdisk info/map match qemu-img", () => {
  const t = tempDir("vdisk-cli-info-");
  beforeAll(() => {
    // A fully written raw file (qemu-img would report holes that vdisk cannot see).
    const raw = new Uint8Array(1 << 20).map((_, i) => (i * 31 + 7) & 0xff);
    writeFileSync(t.path("full.raw"), raw);
    if (!HAVE_QCOW2) return;
    qemuImg("create", "-q", "-f", "qcow2", t.path("base.qcow2"), "64M");
    qemu("qemu-io", ["-f", "qcow2", "-c", "write -P 0xab 0 64k", "-c", "write -z 1M 64k", "-c", "write -P 0x11 2M 128k", t.path("base.qcow2")]);
    qemuImg("create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", t.path("top.qcow2"));
    qemu("qemu-io", ["-f", "qcow2", "-c", "write -P 0x22 64k 64k", t.path("top.qcow2")]);
    qemuImg("convert", "-O", "qcow2", t.path("base.qcow2"), t.path("snap.qcow2"));
    qemuImg("snapshot", "-c", "first", t.path("snap.qcow2"));
    qemuImg("snapshot", "-c", "second one", t.path("snap.qcow2"));
    qemuImg("convert", "-c", "-O", "qcow2", t.path("top.qcow2"), t.path("compressed.qcow2"));
  });
  afterAll(() => t.cleanup());

  const same = async (args: string[]): Promise<void> => {
    await inDir(t.dir, async () => {
      const ours = await vdisk(...args);
      const ref = qemu("qemu-img", args, t.dir);
      expect(neutral(ours.stderr)).toBe(neutral(ref.stderr));
      expect(ours.stdout).toBe(ref.stdout);
      expect(ours.status).toBe(ref.status);
    });
  };

  it("info of a raw image: human and json", async () => {
    await same(["info", "full.raw"]);
    await same(["info", "--output=json", "full.raw"]);
    await same(["info", "-f", "raw", "--output", "json", "full.raw"]);
  });

  it("a size that is no multiple of 512 shows rounded up to whole sectors, as qemu-img (qemu-iotests 104)", async () => {
    writeFileSync(t.path("odd.raw"), new Uint8Array(1234).fill(1));
    await same(["info", "-f", "raw", "odd.raw"]);
    await same(["info", "-f", "raw", "--output=json", "odd.raw"]);
    if (!HAVE_QCOW2) return;
    qemuImg("create", "-q", "-f", "qcow2", t.path("odd.qcow2"), "1234");
    await same(["info", "--output=json", "odd.qcow2"]);
  });

  it("map of a fully allocated raw image: human and json", async () => {
    await same(["map", "full.raw"]);
    await same(["map", "--output=json", "full.raw"]);
  });

  describe.skipIf(!HAVE_QCOW2)("qcow2", () => {
    it("info of a qcow2 image, its overlay, and the backing chain", async () => {
      for (const f of ["base.qcow2", "top.qcow2"]) {
        await same(["info", f]);
        await same(["info", "--output=json", f]);
        await same(["info", "--backing-chain", f]);
        await same(["info", "--backing-chain", "--output=json", f]);
      }
    });

    it("info lists internal snapshots like qemu-img", async () => {
      await same(["info", "snap.qcow2"]);
      await same(["info", "--output=json", "snap.qcow2"]);
    });

    it("map of data, zero clusters, holes and backing layers", async () => {
      for (const f of ["base.qcow2", "top.qcow2", "snap.qcow2"]) {
        await same(["map", f]);
        await same(["map", "--output=json", f]);
      }
      await same(["map", "--output=json", "--start-offset=64k", "--max-length=2M", "top.qcow2"]);
    });

    it("map of compressed clusters: json has no offset, human refuses", async () => {
      await same(["map", "--output=json", "compressed.qcow2"]);
      await same(["map", "compressed.qcow2"]);
    });
  });

  it("a missing file: one line naming it, exit 1, no stack", async () => {
    const r = await inDir(t.dir, () => vdisk("info", "nope.qcow2"));
    expect(r.status).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toBe("vdisk: Could not open 'nope.qcow2': No such file or directory\n");
  });
});

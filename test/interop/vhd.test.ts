/**
 * VHD against qemu-img 7.2: qemu-made images (random options and data) read byte-identical to
 * `qemu-img convert -O raw`; vdisk-made images have qemu's virtual size and `qemu-img compare`
 * equal to the model; differencing VHDs vdisk creates over qemu-made bases read right in vdisk,
 * and qemu (which ignores the parent) sees exactly what vdisk sees without the parent.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { afterAll, describe, expect, it } from "vitest";
import { createImage, openImage } from "../../src/node.js";
import { firstDifference, pattern, randInt, randomOps, rng } from "../formats/image-model.js";
import { HAVE_QEMU, qemuImg, qemuImgStatus, qemuIo, tempDir, warnSkipped } from "../helpers/qemu.js";
import { vhdWithBlockSize } from "../helpers/vhd-block-size.js";

if (!HAVE_QEMU) warnSkipped("VHD interop tests");
const MIB = 1 << 20;

/** Random qemu-io writes (data and zero writes, unaligned) inside `size` bytes. */
function qemuWrites(r: () => number, size: number, n: number): string[] {
  const cmds: string[] = [];
  for (let i = 0; i < n; i++) {
    const len = 1 + randInt(r, 3 * MIB);
    const off = randInt(r, size - len);
    cmds.push(r() < 0.2 ? `write -z ${off} ${len}` : `write -P 0x${(0x11 + i).toString(16)} ${off} ${len}`);
  }
  return cmds;
}

function qemuRaw(file: string, fmt: string, out: string): Uint8Array {
  qemuImg("convert", "-f", fmt, "-O", "raw", file, out);
  return readFileSync(out);
}

async function readAll(path: string, format?: string, noBacking = false): Promise<Uint8Array> {
  const img = await openImage(path, { readOnly: true, format, noBacking, backing: "same-dir" });
  try {
    return await img.read(0, img.size);
  } finally {
    await img.close();
  }
}

describe.skipIf(!HAVE_QEMU)("VHD interop with qemu-img", () => {
  const t = tempDir("vdisk-vhd-");
  afterAll(() => t.cleanup());

  const optionSets = ["subformat=dynamic", "subformat=dynamic,force_size=on", "subformat=fixed", "subformat=fixed,force_size=on"];
  optionSets.forEach((opts, k) => {
    it(`a qemu-made VHD (${opts}) reads byte-identical to qemu-img convert`, async () => {
      const r = rng(100 + k);
      const size = (5 + randInt(r, 20)) * MIB + 512 * randInt(r, 2048);
      const file = t.path(`q${k}.vhd`);
      qemuImg("create", "-q", "-f", "vpc", "-o", opts, file, String(size));
      const vsize = JSON.parse(qemuImg("info", "--output=json", "-f", "vpc", file))["virtual-size"] as number;
      qemuIo("vpc", file, qemuWrites(r, vsize, 12));
      const want = qemuRaw(file, "vpc", t.path(`q${k}.raw`));
      const got = await readAll(file, opts.includes("fixed") ? "vpc" : undefined);
      expect(got.length).toBe(vsize);
      expect(firstDifference(got, want)).toBe(-1);
    });
  });

  const ourSets = ["", "force_size=on", "subformat=fixed,force_size=on", "subformat=fixed", "azure=on"];
  ourSets.forEach((opts, k) => {
    it(`a vdisk-made VHD (${opts || "defaults"}) has qemu's size and compares equal in qemu-img`, async () => {
      const r = rng(200 + k);
      const file = t.path(`v${k}.vhd`);
      const img = await createImage(file, { format: "vpc", size: 11 * MIB + 4096, options: opts });
      const model = new Uint8Array(img.size);
      await randomOps(img, model, r, { ops: 30, maxLength: 3 * MIB, zeroShare: 0.2 });
      await img.close();
      const info = JSON.parse(qemuImg("info", "--output=json", "-f", "vpc", file)) as Record<string, number>;
      expect(info["virtual-size"]).toBe(model.length);
      writeFileSync(t.path(`v${k}.raw`), model);
      expect(qemuImgStatus("compare", "-f", "vpc", "-F", "raw", file, t.path(`v${k}.raw`)).status).toBe(0);
    });
  });

  it("a VHD with 512 KiB blocks written by vdisk reads the same in qemu, and qemu's writes read the same in vdisk", async () => {
    const file = t.path("bs512k.vhd");
    writeFileSync(file, await vhdWithBlockSize(7 * MIB, 512 * 1024));
    const img = await openImage(file, { format: "vpc" });
    const model = new Uint8Array(img.size);
    await randomOps(img, model, rng(77), { ops: 30, maxLength: MIB, zeroShare: 0.2 });
    await img.close();
    writeFileSync(t.path("bs512k.raw"), model);
    expect(qemuImgStatus("compare", "-f", "vpc", "-F", "raw", file, t.path("bs512k.raw")).status).toBe(0);
    qemuIo("vpc", file, ["write -P 0x7e 600000 300000"]);
    const want = qemuRaw(file, "vpc", t.path("bs512k.raw"));
    expect(firstDifference(await readAll(file, "vpc"), want)).toBe(-1);
  });

  it("qemu writes into a vdisk-made dynamic VHD and vdisk reads what qemu reads", async () => {
    const file = t.path("mixed.vhd");
    const img = await createImage(file, { format: "vpc", size: 9 * MIB, options: "force_size=on" });
    await img.write(2 * MIB + 700, pattern(3000, 1)); // partial bitmap in block 1
    await img.close();
    qemuIo("vpc", file, ["write -P 0x5a 2097152 512", "write -P 0x6b 5000000 100000"]);
    const want = qemuRaw(file, "vpc", t.path("mixed.raw"));
    expect(firstDifference(await readAll(file, "vpc"), want)).toBe(-1);
  });

  it("a differencing VHD vdisk creates over a qemu-made base reads base + overlay; qemu sees the overlay alone", async () => {
    const base = t.path("base.vhd");
    qemuImg("create", "-q", "-f", "vpc", base, String(12 * MIB));
    const vsize = JSON.parse(qemuImg("info", "--output=json", base))["virtual-size"] as number;
    qemuIo("vpc", base, qemuWrites(rng(7), vsize, 10));
    const model = qemuRaw(base, "vpc", t.path("base.raw"));
    const child = t.path("child.vhd");
    const img = await createImage(child, { format: "vpc", backingFile: "base.vhd", backing: "same-dir" });
    expect(img.size).toBe(vsize);
    await randomOps(img, model, rng(8), { ops: 25, maxLength: MIB, zeroShare: 0.2 });
    await img.close();
    expect(firstDifference(await readAll(child), model)).toBe(-1);
    // qemu opens a differencing VHD as a dynamic one without its parent.
    const qemuView = qemuRaw(child, "vpc", t.path("child.raw"));
    expect(firstDifference(await readAll(child, "vpc", true), qemuView)).toBe(-1);
    const info = JSON.parse(qemuImg("info", "--output=json", child)) as Record<string, unknown>;
    expect(info.format).toBe("vpc");
  });
});

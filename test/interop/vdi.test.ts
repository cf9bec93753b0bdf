/**
 * VDI against qemu-img 7.2: qemu-made images read byte-identical to `qemu-img convert -O raw`;
 * vdisk-made and vdisk-written images pass `qemu-img check` and `qemu-img compare`; check
 * results agree with `qemu-img check --output=json`; images vdisk repaired check clean in qemu.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { afterAll, describe, expect, it } from "vitest";
import { createImage, openImage } from "../../src/node.js";
import { firstDifference, randInt, randomOps, rng } from "../formats/image-model.js";
import { HAVE_QEMU, qemuCheck, qemuImg, qemuImgStatus, qemuIo, tempDir, warnSkipped } from "../helpers/qemu.js";

if (!HAVE_QEMU) warnSkipped("VDI interop tests");
const MIB = 1 << 20;

function qemuWrites(r: () => number, size: number, n: number): string[] {
  const cmds: string[] = [];
  for (let i = 0; i < n; i++) {
    const len = 1 + randInt(r, 2 * MIB);
    const off = randInt(r, size - len);
    cmds.push(r() < 0.2 ? `write -z ${off} ${len}` : `write -P 0x${(0x21 + i).toString(16)} ${off} ${len}`);
  }
  return cmds;
}

describe.skipIf(!HAVE_QEMU)("VDI interop with qemu-img", () => {
  const t = tempDir("vdisk-vdi-");
  afterAll(() => t.cleanup());

  for (const [k, opts] of ["static=off", "static=on", "static=off"].entries()) {
    it(`a qemu-made VDI (${opts}, random size and data) reads byte-identical to qemu-img convert`, async () => {
      const r = rng(300 + k);
      const size = (3 + randInt(r, 20)) * MIB + 512 * randInt(r, 2048);
      const file = t.path(`q${k}.vdi`);
      qemuImg("create", "-q", "-f", "vdi", "-o", opts, file, String(size));
      qemuIo("vdi", file, qemuWrites(r, size, 10));
      qemuImg("convert", "-f", "vdi", "-O", "raw", file, t.path(`q${k}.raw`));
      const want = readFileSync(t.path(`q${k}.raw`));
      const img = await openImage(file, { readOnly: true });
      expect(img.format).toBe("vdi");
      expect(firstDifference(await img.read(0, img.size), want)).toBe(-1);
      const ours = await img.check();
      await img.close();
      const q = qemuCheck(file, "vdi");
      expect(q.status).toBe(0);
      expect([ours.corruptions, ours.leaks, ours.checkErrors]).toEqual([q.json.corruptions ?? 0, q.json.leaks ?? 0, q.json["check-errors"]]);
    });
  }

  for (const [k, opts] of ["", "static=on"].entries()) {
    it(`a vdisk-made VDI (${opts || "dynamic"}) passes qemu-img check and compare after random writes`, async () => {
      const file = t.path(`v${k}.vdi`);
      const img = await createImage(file, { format: "vdi", size: 9 * MIB + 1024, options: opts });
      const model = new Uint8Array(img.size);
      await randomOps(img, model, rng(400 + k), { ops: 40, maxLength: 2 * MIB, zeroShare: 0.2 });
      await img.close();
      const q = qemuCheck(file, "vdi");
      expect(q.status, JSON.stringify(q.json)).toBe(0);
      writeFileSync(t.path(`v${k}.raw`), model);
      expect(qemuImgStatus("compare", "-f", "vdi", "-F", "raw", file, t.path(`v${k}.raw`)).status).toBe(0);
    });
  }

  it("vdisk writes into a qemu-made VDI and qemu reads them", async () => {
    const file = t.path("qw.vdi");
    qemuImg("create", "-q", "-f", "vdi", file, String(6 * MIB));
    qemuIo("vdi", file, ["write -P 0x44 1048064 1024", "write -P 0x55 4000000 70000"]);
    qemuImg("convert", "-f", "vdi", "-O", "raw", file, t.path("qw.raw"));
    const model = new Uint8Array(readFileSync(t.path("qw.raw")));
    const img = await openImage(file, { format: "vdi" });
    await randomOps(img, model, rng(9), { ops: 20, maxLength: MIB });
    await img.close();
    expect(qemuCheck(file, "vdi").status).toBe(0);
    writeFileSync(t.path("qw.raw"), model);
    expect(qemuImgStatus("compare", "-f", "vdi", "-F", "raw", file, t.path("qw.raw")).status).toBe(0);
  });

  it("an entry past the image: vdisk and qemu-img count the same problems, and vdisk's repair satisfies qemu", async () => {
    const file = t.path("bad.vdi");
    qemuImg("create", "-q", "-f", "vdi", file, String(4 * MIB));
    qemuIo("vdi", file, ["write -P 0x11 0 4096", "write -P 0x22 2097152 4096"]);
    const b = readFileSync(file);
    b.writeUInt32LE(0x7fff, 512 + 8); // guest block 2 → data block 32767
    writeFileSync(file, b);
    const q = qemuCheck(file, "vdi");
    expect(q.status).toBe(2);
    const img = await openImage(file, { format: "vdi" });
    const ours = await img.check();
    // qemu: "too large" + "allocated blocks mismatch" (2 corruptions); vdisk: 1 corruption + 1 leaked block.
    expect(ours.corruptions + ours.leaks).toBe(Number(q.json.corruptions));
    const fixed = await img.check("all");
    expect(fixed.corruptions + fixed.leaks).toBe(0);
    await img.close();
    expect(qemuCheck(file, "vdi").status).toBe(0);
    expect(qemuImgStatus("check", "-r", "all", "-f", "vdi", file).status).not.toBe(0); // qemu cannot repair VDI
  });
});

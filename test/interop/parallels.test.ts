/**
 * Parallels against qemu-img 7.2: qemu-made images (random cluster sizes, writes, discards)
 * read byte-identical to `qemu-img convert -O raw`; vdisk-made and vdisk-written images pass
 * `qemu-img check` with the same statistics and `qemu-img compare`; problems qemu 7.2 detects
 * (leak, cluster outside the image, unclean) are counted alike.
 */
import { readFileSync, truncateSync, writeFileSync } from "node:fs";
import { afterAll, describe, expect, it } from "vitest";
import { createImage, openImage } from "../../src/node.js";
import { firstDifference, randInt, randomOps, rng } from "../formats/image-model.js";
import { HAVE_QEMU, qemuCheck, qemuImg, qemuImgStatus, qemuIo, tempDir, warnSkipped } from "../helpers/qemu.js";

if (!HAVE_QEMU) warnSkipped("Parallels interop tests");
const MIB = 1 << 20;

function qemuOps(r: () => number, size: number, n: number): string[] {
  const cmds: string[] = [];
  for (let i = 0; i < n; i++) {
    const len = 1 + randInt(r, 2 * MIB);
    const off = randInt(r, size - len);
    const roll = r();
    if (roll < 0.15) cmds.push(`write -z ${off} ${len}`);
    else if (roll < 0.25) cmds.push(`discard ${off} ${len}`);
    else cmds.push(`write -P 0x${(0x31 + i).toString(16)} ${off} ${len}`);
  }
  return cmds;
}

describe.skipIf(!HAVE_QEMU)("Parallels interop with qemu-img", () => {
  const t = tempDir("vdisk-hds-");
  afterAll(() => t.cleanup());

  for (const [k, cluster] of ["1M", "64k", "4k", "256k"].entries()) {
    it(`a qemu-made image (cluster_size=${cluster}) reads byte-identical to qemu-img convert`, async () => {
      const r = rng(500 + k);
      const size = (2 + randInt(r, 12)) * MIB + 512 * randInt(r, 2048);
      const file = t.path(`q${k}.hds`);
      qemuImg("create", "-q", "-f", "parallels", "-o", `cluster_size=${cluster}`, file, String(size));
      qemuIo("parallels", file, qemuOps(r, size, 14));
      qemuImg("convert", "-f", "parallels", "-O", "raw", file, t.path(`q${k}.raw`));
      const img = await openImage(file, { readOnly: true });
      expect(img.format).toBe("parallels");
      expect(firstDifference(await img.read(0, img.size), readFileSync(t.path(`q${k}.raw`)))).toBe(-1);
      const ours = await img.check();
      await img.close();
      const q = qemuCheck(file, "parallels");
      expect(q.status).toBe(0);
      expect([ours.corruptions, ours.leaks, ours.imageEndOffset, ours.totalClusters, ours.allocatedClusters]).toEqual([
        0, 0, q.json["image-end-offset"], q.json["total-clusters"], q.json["allocated-clusters"] ?? 0,
      ]);
    });
  }

  for (const [k, cluster] of ["1M", "64k"].entries()) {
    it(`a vdisk-made image (cluster_size=${cluster}) passes qemu-img check with the same statistics and compares equal`, async () => {
      const file = t.path(`v${k}.hds`);
      const img = await createImage(file, { format: "parallels", size: 9 * MIB + 1536, options: `cluster_size=${cluster}` });
      const model = new Uint8Array(img.size);
      await randomOps(img, model, rng(600 + k), { ops: 40, maxLength: 2 * MIB, zeroShare: 0.25 });
      const ours = await img.check();
      await img.close();
      const q = qemuCheck(file, "parallels");
      expect(q.status, JSON.stringify(q.json)).toBe(0);
      expect([ours.imageEndOffset, ours.totalClusters, ours.allocatedClusters, ours.fragmentedClusters ?? 0]).toEqual([
        q.json["image-end-offset"], q.json["total-clusters"], q.json["allocated-clusters"] ?? 0, q.json["fragmented-clusters"] ?? 0,
      ]);
      writeFileSync(t.path(`v${k}.raw`), model);
      expect(qemuImgStatus("compare", "-f", "parallels", "-F", "raw", file, t.path(`v${k}.raw`)).status).toBe(0);
    });
  }

  it("problems qemu-img 7.2 detects are counted alike: leak, cluster outside the image, not closed", async () => {
    const make = (name: string) => {
      const f = t.path(name);
      qemuImg("create", "-q", "-f", "parallels", f, String(4 * MIB));
      qemuIo("parallels", f, ["write -P 0x11 0 1M", "write -P 0x22 3M 1M"]);
      return f;
    };
    const cases: Array<[string, (f: string) => void]> = [
      ["leak.hds", (f) => truncateSync(f, 4 * MIB)],
      ["outside.hds", (f) => poke(f, 64, [5, 0, 0, 0])],
      ["inuse.hds", (f) => poke(f, 44, [0x59, 0x6e, 0x6f, 0x74])],
    ];
    for (const [name, damage] of cases) {
      const f = make(name);
      damage(f);
      const q = qemuCheck(f, "parallels");
      const img = await openImage(f, { readOnly: true, format: "parallels" });
      const ours = await img.check();
      await img.close();
      expect([ours.corruptions, ours.leaks], name).toEqual([Number(q.json.corruptions ?? 0), Number(q.json.leaks ?? 0)]);
      // vdisk repairs; qemu then finds the image clean.
      const rw = await openImage(f, { format: "parallels" });
      await rw.check("all");
      await rw.close();
      expect(qemuCheck(f, "parallels").status, name).toBe(0);
    }
  });
});

function poke(file: string, at: number, bytes: number[]): void {
  const b = readFileSync(file);
  b.set(bytes, at);
  writeFileSync(file, b);
}

/**
 * QEMU's sample images for vpc and parallels (../shared/corpus/qemu-samples), unpacked with
 * `bzip2 -dc` into a temp dir, read through vdisk and compared with MANIFEST.json.
 *
 * What is hashed: the raw sha256 of every sample up to 1 GiB virtual (d2v-zerofilled.vhd,
 * 251 MiB; the 2 MiB parallels samples) is computed by streaming the image through its
 * extents. The three 64–127 GiB samples (virtualpc-dynamic.vhd, hyperv2012r2-dynamic.vhd,
 * parallels-with-bitmap) hold no data at all: hashing 127 GiB of zeros takes over a minute,
 * so for them the test checks that vdisk's map equals the manifest's merged `qemu-img map`
 * (one zero extent over the whole disk) and that the data extents (none) read as recorded,
 * which determines the same bytes.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openImage } from "../../src/node.js";
import { firstDifference } from "../formats/image-model.js";
import { sha256OfDevice, zeroDataMap } from "../helpers/image-hash.js";
import { HAVE_QEMU, qemuCheck, qemuImg, qemuImgStatus, tempDir } from "../helpers/qemu.js";

const SAMPLES = join(import.meta.dirname, "..", "..", "..", "shared", "corpus", "qemu-samples");
const HAVE_BZIP2 = spawnSync("sh", ["-c", "command -v bzip2"]).status === 0;
const available = HAVE_BZIP2 && existsSync(join(SAMPLES, "MANIFEST.json"));
if (!available) console.warn("\n*** SKIPPED: vpc/parallels sample tests — bzip2 or ../shared/corpus/qemu-samples missing ***\n");

interface Sample {
  file: string;
  format: string | null;
  virtual_size: number | null;
  raw_sha256: string | null;
  qemu_img_map?: Array<{ start: number; length: number; zero: boolean; data: boolean }>;
  variants?: Array<{ raw_sha256: string; raw_size: number; image_opts: string }>;
  qemu_img_info_error?: string;
}

const HASH_LIMIT = 1 << 30;

describe.skipIf(!available)("vpc and parallels samples", () => {
  const t = tempDir("vdisk-samples-");
  const manifest: Sample[] = available ? (JSON.parse(readFileSync(join(SAMPLES, "MANIFEST.json"), "utf8")) as Sample[]) : [];
  const mine = manifest.filter((s) => s.format === "vpc" || s.format === "parallels" || s.file === "afl5.img.bz2");
  const unpacked = (s: Sample) => t.path(s.file.replace(/\.bz2$/, ""));
  beforeAll(() => {
    for (const s of mine) {
      const r = spawnSync("bzip2", ["-dc", join(SAMPLES, s.file)], { maxBuffer: 512 << 20 });
      if (r.status !== 0) throw new Error(`bzip2 -dc ${s.file} failed`);
      writeFileSync(unpacked(s), r.stdout);
    }
  }, 120_000);
  afterAll(() => t.cleanup());

  it("lists the samples this test covers", () => {
    expect(mine.map((s) => s.file).sort()).toEqual([
      "afl5.img.bz2",
      "d2v-zerofilled.vhd.bz2",
      "fake.parallels.bz2",
      "hyperv2012r2-dynamic.vhd.bz2",
      "parallels-v1.bz2",
      "parallels-v2.bz2",
      "parallels-with-bitmap.bz2",
      "virtualpc-dynamic.vhd.bz2",
    ]);
  });

  for (const s of available ? (JSON.parse(readFileSync(join(SAMPLES, "MANIFEST.json"), "utf8")) as Sample[]) : []) {
    if (s.format !== "vpc" && s.format !== "parallels") continue;
    it(`${s.file} has qemu's size and map, and reads as the manifest records`, async () => {
      const img = await openImage(unpacked(s), { readOnly: true });
      try {
        expect(img.format).toBe(s.format);
        expect(img.size).toBe(s.virtual_size);
        const map = await zeroDataMap(img);
        const want = (s.qemu_img_map ?? []).map((e) => ({ start: e.start, length: e.length, zero: e.zero, data: e.data }));
        expect(map).toEqual(want);
        if (img.size <= HASH_LIMIT) {
          expect(await sha256OfDevice(img)).toBe(s.raw_sha256);
        } else {
          // No data extents: every byte is zero, which is what the recorded hash covers.
          expect(map.every((e) => e.zero && !e.data)).toBe(true);
        }
      } finally {
        await img.close();
      }
    });
  }

  it("force_size_calc gives the manifest's other size for the VirtualPC and Hyper-V samples", async () => {
    for (const [file, calc, size] of [
      ["virtualpc-dynamic.vhd", "current_size", 136365211648],
      ["hyperv2012r2-dynamic.vhd", "chs", 136363130880],
      ["d2v-zerofilled.vhd", "chs", 263454720],
    ] as const) {
      const img = await openImage(t.path(file), { readOnly: true, driverOptions: { force_size_calc: calc } });
      expect(img.size, file).toBe(size);
      await img.close();
    }
  });

  it("afl5.img (Max Table Entries 0x40000001) is refused with qemu's message", async () => {
    await expect(openImage(t.path("afl5.img"), { readOnly: true })).rejects.toThrow("Max Table Entries too large (1073741825)");
    await expect(openImage(t.path("afl5.img"), { readOnly: true, format: "vpc" })).rejects.toMatchObject({
      code: "ERR_LIMIT_EXCEEDED",
    });
  });

  it("parallels-v2 takes the writes of iotests 076 and reads them back", async () => {
    const f = t.path("parallels-v2");
    const img = await openImage(f, { format: "parallels" });
    expect((await img.read(0, 65536)).every((b) => b === 0x11)).toBe(true);
    await img.write(1024 * 1024, new Uint8Array(1024).fill(0x21));
    await img.write(1025 * 1024, new Uint8Array(1024).fill(0x22));
    expect((await img.read(1024 * 1024, 1024)).every((b) => b === 0x21)).toBe(true);
    expect((await img.read(1025 * 1024, 1024)).every((b) => b === 0x22)).toBe(true);
    expect((await img.read(1026 * 1024, 62 * 1024)).every((b) => b === 0)).toBe(true);
    await img.close();
  });

  it.skipIf(!HAVE_QEMU)("parallels-v1 (BAT in sectors) takes vdisk writes that qemu-img reads back and checks clean", async () => {
    const f = t.path("parallels-v1-rw");
    writeFileSync(f, readFileSync(t.path("parallels-v1")));
    qemuImg("convert", "-f", "parallels", "-O", "raw", f, t.path("v1.raw"));
    const raw = new Uint8Array(readFileSync(t.path("v1.raw")));
    const img = await openImage(f, { format: "parallels" });
    for (const [off, len, v] of [[100, 5000, 0x41], [300000, 70000, 0x42], [2097152 - 777, 777, 0x43]] as const) {
      await img.write(off, new Uint8Array(len).fill(v));
      raw.fill(v, off, off + len);
    }
    await img.close();
    writeFileSync(t.path("v1.raw"), raw);
    expect(qemuImgStatus("compare", "-f", "parallels", "-F", "raw", f, t.path("v1.raw")).status).toBe(0);
    expect(qemuCheck(f, "parallels").status).toBe(0);
  });

  it("parallels-with-bitmap: the dirty bitmap is listed, counted as used, and survives repair and writes", async () => {
    const f = t.path("parallels-with-bitmap");
    const before = readFileSync(f);
    const ro = await openImage(f, { readOnly: true });
    const info = await ro.info();
    expect(info.formatSpecific?.data["format-extension"]).toEqual({
      bitmaps: [{ id: "e4f2eed0-37fe-4539-b50b-85d2e7fd235f", granularity: 65536 }],
    });
    // qemu-img 7.2 calls the bitmap and extension clusters "2 leaked clusters"; they are not.
    const res = await ro.check();
    expect([res.corruptions, res.leaks]).toEqual([0, 0]);
    expect(res.imageEndOffset).toBe(3 * 1024 * 1024);
    await ro.close();
    const warnings: string[] = [];
    const rw = await openImage(f, { format: "parallels", warn: (m) => warnings.push(m) });
    expect(warnings.join()).toMatch(/does not record writes/);
    const fixed = await rw.check("all");
    expect([fixed.leaksFixed, fixed.corruptionsFixed]).toEqual([0, 0]);
    await rw.write(0, new Uint8Array(4096).fill(0x77));
    await rw.close();
    const after = readFileSync(f);
    const MIB = 1 << 20;
    // The bitmap cluster (1 MiB) and the extension cluster (2 MiB) are untouched.
    expect(firstDifference(after.subarray(MIB, 3 * MIB), before.subarray(MIB, 3 * MIB))).toBe(-1);
    expect(after.length).toBe(4 * MIB); // the new data cluster went after them
  });
});

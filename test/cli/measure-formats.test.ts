/**
 * `vdisk measure` for the formats qemu-img 7.2 cannot measure: vdisk's own figures must bound
 * real images. Each source is converted by vdisk into the format, and the files made must not
 * exceed `required`; a convert of a fully written source (random bytes everywhere) must not
 * exceed `fully-allocated` either. For raw and qcow2 (qemu-img's figures) the same must hold.
 */
import { readdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MemoryBackend, createImage, measureImage } from "../../src/node.js";
import { splitOptionString } from "../../src/core/options.js";
import { HAVE_QEMU, inDir, qemu, qemuImg, tempDir, vdisk, warnSkipped } from "./cli-helpers.js";

if (!HAVE_QEMU) warnSkipped("vdisk measure bounds (sources made with qemu-img)");

/** Target formats and create options; every subformat vdisk writes. */
const TARGETS: Array<[string, string]> = [
  ["raw", ""],
  ["qcow2", ""],
  ["qcow2", "cluster_size=4k,extended_l2=off"],
  ["qcow", ""],
  ["qcow", "cluster_size=512"],
  ["qed", ""],
  ["qed", "cluster_size=4k,table_size=1"],
  ["vdi", ""],
  ["vdi", "static=on"],
  ["parallels", ""],
  ["parallels", "cluster_size=64k"],
  ["vpc", ""],
  ["vpc", "subformat=fixed"],
  ["vpc", "force_size=on"],
  ["vhdx", ""],
  ["vhdx", "subformat=fixed"],
  ["vhdx", "block_size=1M,logical_sector_size=4096"],
  ["vmdk", "subformat=monolithicSparse"],
  ["vmdk", "subformat=streamOptimized"],
  ["vmdk", "subformat=twoGbMaxExtentSparse"],
  ["vmdk", "subformat=monolithicFlat"],
  ["vmdk", "subformat=twoGbMaxExtentFlat"],
  ["gow1", ""],
  ["gow2", ""],
  ["fvd", ""],
  ["fvd", "compact_image=on"],
  ["fvd", "compact_image=on,chunk_size=64k,storage_grow_unit=1M"],
];

/** Bytes of every file in `dir` whose name starts with `prefix`. */
function filesBytes(dir: string, prefix: string): number {
  return readdirSync(dir)
    .filter((n) => n.startsWith(prefix))
    .reduce((sum, n) => sum + statSync(join(dir, n)).size, 0);
}

interface Figures {
  required: number;
  "fully-allocated": number;
}

describe.skipIf(!HAVE_QEMU)("vdisk measure bounds what vdisk writes", () => {
  const t = tempDir("vdisk-measure-formats-");
  const SIZE = 7 * 1024 * 1024 + 4608;
  beforeAll(() => {
    const bytes = new Uint8Array(SIZE);
    for (let i = 0; i < SIZE; i += 65536) globalThis.crypto.getRandomValues(bytes.subarray(i, Math.min(SIZE, i + 65536)));
    writeFileSync(t.path("full.raw"), bytes);
    qemuImg("create", "-q", "-f", "qcow2", "-o", "cluster_size=4k", t.path("sparse.qcow2"), String(SIZE));
    qemu("qemu-io", ["-f", "qcow2", "-c", "write -P 0xab 1000 70k", "-c", "write -z 1M 256k", "-c", "write -P 1 3M 8k",
      "-c", "write -P 3 5M 1", "-c", `write -P 4 ${SIZE - 4608} 4608`, t.path("sparse.qcow2")]);
  });
  afterAll(() => t.cleanup());

  const measure = async (args: string[]): Promise<Figures> => {
    const r = await vdisk("measure", "--output=json", ...args);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    return JSON.parse(r.stdout) as Figures;
  };

  it.each(TARGETS)("%s %s: a convert stays within required, a full one within fully-allocated", async (format, opts) => {
    await inDir(t.dir, async () => {
      const o = opts ? ["-o", opts] : [];
      const tag = `${format}-${opts.replace(/[^a-z0-9]/gi, "_")}`;
      const lines: string[] = [];
      for (const src of ["full.raw", "sparse.qcow2"]) {
        const m = await measure(["-O", format, ...o, src]);
        const prefix = `${tag}-${src.split(".")[0]}`;
        const conv = await vdisk("convert", "-O", format, ...o, src, `${prefix}.img`);
        // Warnings (sizes rounded to the format's units) are fine; nothing else.
        expect(conv.stderr.replace(/^vdisk: warning: .*\n/gm, ""), conv.stderr).toBe("");
        expect(conv.status).toBe(0);
        const bytes = filesBytes(t.dir, prefix);
        lines.push(`${src}: file ${bytes} required ${m.required} fully ${m["fully-allocated"]}`);
        expect(bytes, `${format} ${opts} from ${src}`).toBeLessThanOrEqual(m.required);
        expect(m.required).toBeLessThanOrEqual(m["fully-allocated"]);
        if (src === "full.raw") expect(bytes).toBeLessThanOrEqual(m["fully-allocated"]);
      }
      // An empty image of the same size fits in the figures of a size alone.
      const empty = await measure(["-O", format, ...o, "--size", String(SIZE)]);
      const created = await vdisk("create", "-q", "-f", format, ...o, `${tag}-empty.img`, String(SIZE));
      expect(created.status, created.stderr).toBe(0);
      const emptyBytes = filesBytes(t.dir, `${tag}-empty`);
      lines.push(`size: file ${emptyBytes} required ${empty.required} fully ${empty["fully-allocated"]}`);
      expect(emptyBytes).toBeLessThanOrEqual(empty.required);
      console.log(`${format} ${opts}\n  ${lines.join("\n  ")}`);
    });
  });
});

describe("measureImage() bounds an image written in random order", () => {
  // Single-file formats only: the multi-file VMDK subformats are covered by the converts above.
  const single = TARGETS.filter(([f, o]) => !(f === "vmdk" && /Flat|twoGb/.test(o)));
  it.each(single)("%s %s: every byte written, in shuffled 48 KiB pieces, fits in fully-allocated", async (format, opts) => {
    const size = 5 * 1024 * 1024 + 512;
    const options = Object.fromEntries(splitOptionString(opts));
    const m = await measureImage({ format, options, size });
    const mem = new MemoryBackend();
    const dev = await createImage(mem, { format, size, options, warn: () => {} });
    const piece = 48 * 1024;
    const order = Array.from({ length: Math.ceil(dev.size / piece) }, (_, i) => i);
    let seed = 12345;
    for (let i = order.length - 1; i > 0; i--) {
      seed = (seed * 1103515245 + 12345) >>> 0;
      const j = seed % (i + 1);
      [order[i], order[j]] = [order[j], order[i]];
    }
    for (const k of order) {
      const len = Math.min(piece, dev.size - k * piece);
      const data = new Uint8Array(len);
      globalThis.crypto.getRandomValues(data);
      await dev.write(k * piece, data);
    }
    await dev.close();
    expect(mem.bytes().length).toBeLessThanOrEqual(m.fullyAllocated);
  });
});

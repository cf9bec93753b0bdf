/**
 * VMDK against qemu-img 7.2: qemu-made images of every subformat (random data written by
 * qemu-io; streamOptimized by qemu-img convert) read byte-identical to `qemu-img convert -O raw`
 * with qemu's info and map; vdisk-written images of every subformat pass `qemu-img check` and
 * `qemu-img compare`; vdisk overlays over qemu-made bases read right in qemu; check failures
 * and header errors say what qemu says.
 */
import { closeSync, ftruncateSync, openSync, readFileSync, readSync, writeFileSync, writeSync } from "node:fs";
import { afterAll, describe, expect, it } from "vitest";
import { createImage, openImage, type BlockDevice } from "../../src/node.js";
import { convertImage } from "../../src/ops/convert.js";
import { HAVE_QEMU, qemuImg, qemuImgStatus, qemuIo, tempDir, warnSkipped } from "../helpers/qemu.js";
import { firstDifference, rng } from "../formats/image-model.js";

if (!HAVE_QEMU) warnSkipped("vmdk interop tests");

const MIB = 1 << 20;
const GIB = 1 << 30;
const SPLIT_SIZE = 2 * GIB + 40 * MIB;
const SMALL_SIZE = 40 * MIB + 3072;

interface Op {
  zero: boolean;
  off: number;
  len: number;
  byte: number;
}

/** Random writes and zero writes, some across grain and extent boundaries. */
function plan(seed: number, size: number, count: number): Op[] {
  const r = rng(seed);
  const ops: Op[] = [];
  const hot = [0, 65000, 2 * GIB - 700, size - 5000];
  for (let i = 0; i < count; i++) {
    const len = 1 + Math.floor(r() * 300_000);
    let off = i < hot.length && hot[i] < size ? hot[i] : Math.floor(r() * (size - len));
    off = Math.min(off, size - len);
    ops.push({ zero: r() < 0.2, off, len, byte: 1 + Math.floor(r() * 254) });
  }
  return ops;
}

function qemuIoCommands(ops: Op[]): string[] {
  return ops.map((o) => (o.zero ? `write -z ${o.off} ${o.len}` : `write -P 0x${o.byte.toString(16)} ${o.off} ${o.len}`));
}

/** Applies `ops` to a sparse raw file of `size` bytes (the model). */
function writeModel(path: string, size: number, ops: Op[]): void {
  const fd = openSync(path, "w");
  try {
    ftruncateSync(fd, size);
    for (const o of ops) writeSync(fd, new Uint8Array(o.len).fill(o.zero ? 0 : o.byte), 0, o.len, o.off);
  } finally {
    closeSync(fd);
  }
}

async function applyOps(img: BlockDevice, ops: Op[]): Promise<void> {
  for (const o of ops) {
    if (o.zero) await img.writeZeroes(o.off, o.len);
    else await img.write(o.off, new Uint8Array(o.len).fill(o.byte));
  }
}

/** What vdisk reads from `path`, written to the raw file `out` (sparse). */
async function vdiskToRaw(path: string, out: string): Promise<number> {
  const src = await openImage(path, { readOnly: true, backing: "same-dir" });
  try {
    const dst = await createImage(out, { format: "raw", size: src.size });
    await convertImage(src, dst, { targetIsZero: true });
    await dst.close();
    return src.size;
  } finally {
    await src.close();
  }
}

/** Compares what vdisk reads from `path` with the raw file `raw` around every op and at random places. */
async function expectSamplesEqual(path: string, raw: string, ops: Op[], size: number): Promise<void> {
  const img = await openImage(path, { readOnly: true, backing: "same-dir" });
  const fd = openSync(raw, "r");
  try {
    expect(img.size).toBe(size);
    const r = rng(size % 1000);
    const ranges: Array<[number, number]> = [];
    for (const o of ops) ranges.push([Math.max(0, o.off - 4096), Math.min(size, o.off + o.len + 4096)]);
    for (let i = 0; i < 100; i++) {
      const off = Math.floor(r() * (size - 65536));
      ranges.push([off, off + 65536]);
    }
    for (const [a, b] of ranges) {
      const want = new Uint8Array(b - a);
      readSync(fd, want, 0, b - a, a);
      const at = firstDifference(await img.read(a, b - a), want);
      expect(at, `range ${a}..${b}: first difference at ${a + at}`).toBe(-1);
    }
  } finally {
    closeSync(fd);
    await img.close();
  }
}

/** `qemu-img compare` exit code (0 identical). */
function qemuCompare(a: string, fa: string, b: string, fb: string): number {
  return qemuImgStatus("compare", "-f", fa, "-F", fb, a, b).status;
}

function qemuInfo(path: string): Record<string, unknown> {
  return JSON.parse(qemuImg("info", "--output=json", path)) as Record<string, unknown>;
}

/** zero/data runs of a qemu-img map, merged. */
function mergeMap(entries: Array<{ start: number; length: number; zero: boolean; data: boolean }>): string[] {
  const out: Array<{ start: number; length: number; zero: boolean; data: boolean }> = [];
  for (const e of entries) {
    const last = out[out.length - 1];
    if (last && last.zero === e.zero && last.data === e.data) last.length += e.length;
    else out.push({ start: e.start, length: e.length, zero: e.zero, data: e.data });
  }
  return out.map((e) => `${e.start}+${e.length}:${e.zero ? "z" : ""}${e.data ? "d" : ""}`);
}

async function vdiskMap(path: string): Promise<string[]> {
  const img = await openImage(path, { readOnly: true, backing: "same-dir" });
  try {
    const es: Array<{ start: number; length: number; zero: boolean; data: boolean }> = [];
    for await (const e of img.extents()) es.push({ start: e.offset, length: e.length, zero: e.zero, data: e.data });
    return mergeMap(es);
  } finally {
    await img.close();
  }
}

const SUBFORMATS = [
  ["monolithicSparse", "subformat=monolithicSparse", SMALL_SIZE],
  ["monolithicSparse zeroed_grain", "subformat=monolithicSparse,zeroed_grain=on", SMALL_SIZE],
  ["monolithicFlat", "subformat=monolithicFlat", SMALL_SIZE],
  ["twoGbMaxExtentSparse", "subformat=twoGbMaxExtentSparse", SPLIT_SIZE],
  ["twoGbMaxExtentFlat", "subformat=twoGbMaxExtentFlat", SPLIT_SIZE],
  ["streamOptimized", "subformat=streamOptimized", SMALL_SIZE],
] as const;

describe.skipIf(!HAVE_QEMU)("vmdk: qemu-made images read by vdisk", () => {
  const t = tempDir("vdisk-vmdk-q-");
  afterAll(() => t.cleanup());

  SUBFORMATS.forEach(([label, options, size], i) => {
    it(`${label}: reads byte-identical to qemu-img convert -O raw, with qemu's info and map`, { timeout: 60_000 }, async () => {
      const name = `q${i}`;
      const img = t.path(`${name}.vmdk`);
      const ops = plan(100 + i, size, 24);
      if (label === "streamOptimized") {
        writeModel(t.path(`${name}.src`), size, ops);
        qemuImg("convert", "-f", "raw", "-O", "vmdk", "-o", options, t.path(`${name}.src`), img);
      } else {
        qemuImg("create", "-f", "vmdk", "-o", options, img, String(size));
        qemuIo("vmdk", img, qemuIoCommands(ops));
      }
      qemuImg("convert", "-f", "vmdk", "-O", "raw", img, t.path(`${name}.qemu.raw`));
      if (label === "twoGbMaxExtentFlat") {
        // Flat extents map as data throughout (holes are the file system's business), so a
        // whole read costs 2 GiB: compare every written range and random samples instead.
        await expectSamplesEqual(img, t.path(`${name}.qemu.raw`), ops, size);
      } else {
        expect(await vdiskToRaw(img, t.path(`${name}.vdisk.raw`))).toBe(size);
        expect(qemuCompare(t.path(`${name}.vdisk.raw`), "raw", t.path(`${name}.qemu.raw`), "raw")).toBe(0);
      }
      // format-specific info as qemu-img shows it.
      const dev = await openImage(img, { readOnly: true, backing: "same-dir" });
      const ours = await dev.info();
      await dev.close();
      const q = qemuInfo(img);
      expect(ours.clusterSize).toBe(q["cluster-size"]);
      expect(ours.formatSpecific).toEqual(q["format-specific"]);
      if (!label.includes("Flat")) {
        const qm = JSON.parse(qemuImg("map", "--output=json", "-f", "vmdk", img)) as Array<{ start: number; length: number; zero: boolean; data: boolean }>;
        expect(await vdiskMap(img)).toEqual(mergeMap(qm));
      }
    });
  });

  it("a qemu-made overlay chain (monolithicSparse over twoGbMaxExtentSparse) reads like qemu", { timeout: 60_000 }, async () => {
    const base = t.path("chain-base.vmdk");
    const top = t.path("chain-top.vmdk");
    qemuImg("create", "-f", "vmdk", "-o", "subformat=twoGbMaxExtentSparse", base, String(SPLIT_SIZE));
    qemuIo("vmdk", base, qemuIoCommands(plan(7, SPLIT_SIZE, 12)));
    qemuImg("create", "-f", "vmdk", "-b", "chain-base.vmdk", "-F", "vmdk", top);
    qemuIo("vmdk", top, qemuIoCommands(plan(8, SPLIT_SIZE, 12)));
    qemuImg("convert", "-O", "raw", top, t.path("chain.qemu.raw"));
    await vdiskToRaw(top, t.path("chain.vdisk.raw"));
    expect(qemuCompare(t.path("chain.vdisk.raw"), "raw", t.path("chain.qemu.raw"), "raw")).toBe(0);
    const dev = await openImage(top, { readOnly: true, backing: "same-dir" });
    expect(dev.backingFile).toEqual({ name: "chain-base.vmdk", format: "vmdk" });
    expect((await dev.info()).formatSpecific).toEqual(qemuInfo(top)["format-specific"]);
    await dev.close();
  });
});

describe.skipIf(!HAVE_QEMU)("vmdk: vdisk-made images checked by qemu-img", () => {
  const t = tempDir("vdisk-vmdk-v-");
  afterAll(() => t.cleanup());

  SUBFORMATS.forEach(([label, options, size], i) => {
    it(`${label}: passes qemu-img check and compares equal to the model`, { timeout: 60_000 }, async () => {
      const name = `v${i}`;
      const path = t.path(`${name}.vmdk`);
      const ops = plan(200 + i, size, 24);
      writeModel(t.path(`${name}.model`), size, ops);
      const img = await createImage(path, { format: "vmdk", size, options, backing: "same-dir" });
      if (label === "streamOptimized") {
        // Streams are written front to back, as convert does.
        const src = await openImage(t.path(`${name}.model`), { format: "raw", readOnly: true });
        await convertImage(src, img, { targetIsZero: true });
        await src.close();
      } else {
        await applyOps(img, ops);
      }
      await img.close();
      const check = qemuImgStatus("check", "-f", "vmdk", path);
      expect(check.stderr).toBe("");
      expect(check.status).toBe(0);
      expect(qemuCompare(t.path(`${name}.model`), "raw", path, "vmdk")).toBe(0);
      const info = qemuInfo(path);
      expect(info["virtual-size"]).toBe(size);
      const spec = (info["format-specific"] as { data: Record<string, unknown> }).data;
      expect(spec["create-type"]).toBe(options.replace(/^subformat=([A-Za-z]+).*$/, "$1"));
    });
  });

  it("convert -c into a stream and plain convert into every subformat agree with qemu-img compare", { timeout: 60_000 }, async () => {
    const size = 8 * MIB + 512;
    writeModel(t.path("c.model"), size, plan(300, size, 10));
    for (const [opts, compress] of [["subformat=streamOptimized", true], ["subformat=monolithicSparse", true], ["subformat=monolithicFlat", false]] as const) {
      const path = t.path(`c-${opts.slice(10)}-${compress}.vmdk`);
      const src = await openImage(t.path("c.model"), { format: "raw", readOnly: true });
      const dst = await createImage(path, { format: "vmdk", size, options: opts, backing: "same-dir" });
      await convertImage(src, dst, { compress, targetIsZero: true });
      await dst.close();
      await src.close();
      expect(qemuImgStatus("check", path).status).toBe(0);
      expect(qemuCompare(t.path("c.model"), "raw", path, "vmdk")).toBe(0);
    }
  });

  it("vdisk overlays over qemu-made bases (sparse and split) read right in qemu", { timeout: 60_000 }, async () => {
    for (const [sub, size] of [["monolithicSparse", SMALL_SIZE], ["twoGbMaxExtentSparse", SPLIT_SIZE]] as const) {
      const base = t.path(`ob-${sub}.vmdk`);
      qemuImg("create", "-f", "vmdk", "-o", `subformat=${sub}`, base, String(size));
      const baseOps = plan(400, size, 12);
      qemuIo("vmdk", base, qemuIoCommands(baseOps));
      const topPath = t.path(`ot-${sub}.vmdk`);
      const top = await createImage(topPath, { format: "vmdk", backingFile: `ob-${sub}.vmdk`, backing: "same-dir", options: "zeroed_grain=on" });
      expect(top.size).toBe(size);
      const topOps = plan(401, size, 12);
      await applyOps(top, topOps);
      await top.close();
      writeModel(t.path(`o-${sub}.model`), size, [...baseOps, ...topOps]);
      expect(qemuImgStatus("check", topPath).status).toBe(0);
      // qemu refuses to read through a parent whose CID does not match: this also checks the CID chain.
      expect(qemuCompare(t.path(`o-${sub}.model`), "raw", topPath, "vmdk")).toBe(0);
      const info = qemuInfo(topPath);
      expect(info["backing-filename"]).toBe(`ob-${sub}.vmdk`);
      const baseCid = ((qemuInfo(base)["format-specific"] as { data: { cid: number } }).data).cid;
      expect((info["format-specific"] as { data: Record<string, unknown> }).data["parent-cid"]).toBe(baseCid);
    }
  });
});

describe.skipIf(!HAVE_QEMU)("vmdk: errors as qemu-img reports them", () => {
  const t = tempDir("vdisk-vmdk-e-");
  afterAll(() => t.cleanup());

  it("a grain past the end of the file fails the check with qemu's message", async () => {
    const path = t.path("c.vmdk");
    qemuImg("create", "-f", "vmdk", path, "1M");
    qemuIo("vmdk", path, ["write -P 1 196608 100"]);
    const b = readFileSync(path);
    const gd = Number(b.readBigUInt64LE(56)) * 512;
    const gt = b.readUInt32LE(gd) * 512;
    b.writeUInt32LE(0x100000, gt + 5 * 4);
    writeFileSync(path, b);
    const q = qemuImgStatus("check", path);
    expect(q.status).toBe(1);
    const img = await openImage(path, { readOnly: true });
    const c = await img.check();
    await img.close();
    expect(q.stderr.split("\n")[0]).toBe(c.messages[0]);
    expect([c.corruptions, c.checkErrors]).toEqual([1, 1]);
  });

  it("iotests 059 header pokes: vdisk's errors carry qemu's messages", async () => {
    const cases: Array<[string, Array<[number, number[]]>]> = [
      ["granularity", [[20, Array(8).fill(0xff)]]],
      ["gtes", [[44, [0xff, 0xff, 0xff, 0xff]]]],
      ["capacity", [[16, [0xff, 0xff, 0xff, 0xff]], [44, [1, 0, 0, 0]]]],
    ];
    for (const [name, pokes] of cases) {
      const path = t.path(`${name}.vmdk`);
      qemuImg("create", "-f", "vmdk", path, "64M");
      const b = readFileSync(path);
      for (const [at, bytes] of pokes) b.set(bytes, at);
      writeFileSync(path, b);
      const q = qemuImgStatus("info", path);
      const qemuMessage = q.stderr.trim().replace(/^qemu-img: Could not open '[^']*': /, "");
      expect(q.status).toBe(1);
      const err = await openImage(path, { readOnly: true, format: "vmdk" }).then(
        () => undefined,
        (e: unknown) => e as Error,
      );
      expect(err?.message).toContain(qemuMessage);
    }
  });
});

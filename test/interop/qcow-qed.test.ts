/**
 * QCOW (v1) and QED against qemu-img 7.2:
 * - images qemu makes (random create options and data via qemu-io, compressed via
 *   `qemu-img convert -c`, backing chains) read byte-identical to `qemu-img convert -O raw`;
 * - images vdisk writes pass `qemu-img check` (qed) and `qemu-img compare`, and qemu's map agrees;
 * - the reference images of ../shared/corpus/make-reference-images.sh read to the recorded hashes;
 * - every QCOW/QED header poke of iotests.md fails in qemu and in vdisk with the same wording;
 * - `check` (and `-r leaks`/`-r all`) counts equal `qemu-img check --output=json` on damaged images;
 * - `table_size=1`: qemu 7.2 cannot open such images, vdisk can.
 */
import { createHash } from "node:crypto";
import { copyFileSync, readFileSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CheckResult } from "../../src/core/format.js";
import { isImageError } from "../../src/errors.js";
import { createImage, openImage } from "../../src/node.js";
import { firstDifference, pattern, randInt, randomOps, rng } from "../formats/image-model.js";
import { REFERENCE_IMAGES_AVAILABLE, ensureReferenceImages, referenceImages } from "../helpers/reference-images.js";
import { HAVE_QEMU, qemuCheck, qemuImg, qemuImgStatus, qemuIo, tempDir, warnSkipped } from "../helpers/qemu.js";

if (!HAVE_QEMU) warnSkipped("qcow/qed interop tests");


/** Random qemu-io commands: unaligned writes with patterns, zero writes. */
function qemuOps(seed: number, size: number, n: number, maxLen: number, zeros = true): string[] {
  const r = rng(seed);
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const len = 512 * (1 + randInt(r, Math.max(1, Math.floor(maxLen / 512))));
    const off = 512 * randInt(r, Math.floor((size - len) / 512));
    const z = zeros && r() < 0.2;
    out.push(z ? `write -z ${off} ${len}` : `write -P 0x${(1 + randInt(r, 254)).toString(16)} ${off} ${len}`);
  }
  return out;
}

async function readAll(path: string, opts: Parameters<typeof openImage>[1] = {}): Promise<Uint8Array> {
  const img = await openImage(path, { readOnly: true, backing: "any", ...opts });
  try {
    return await img.read(0, img.size);
  } finally {
    await img.close();
  }
}

function qemuRaw(path: string, out: string, fmt?: string): Uint8Array {
  qemuImg("convert", ...(fmt ? ["-f", fmt] : []), "-O", "raw", path, out);
  return new Uint8Array(readFileSync(out));
}

function expectSameBytes(a: Uint8Array, b: Uint8Array): void {
  expect(a.length).toBe(b.length);
  const at = firstDifference(a, b);
  expect(at, `first differing byte at ${at}`).toBe(-1);
}

/** The message part of `qemu-img: Could not open '…': <message>`. */
function qemuOpenError(file: string, fmt: string): string {
  const r = qemuImgStatus("info", "-f", fmt, file);
  expect(r.status, `qemu-img info should fail on ${file}`).not.toBe(0);
  const m = /Could not open '[^']*': (.*)/.exec(r.stderr);
  return (m ? m[1] : r.stderr).trim();
}

async function vdiskOpenError(file: string, fmt: string): Promise<Error & { code?: string }> {
  const err = await openImage(file, { format: fmt, readOnly: true }).then(
    async (img) => {
      await img.close();
      return new Error("opened");
    },
    (e: Error) => e,
  );
  return err;
}

function poke(file: string, offset: number, bytes: number[]): void {
  const b = new Uint8Array(readFileSync(file));
  b.set(bytes, offset);
  writeFileSync(file, b);
}

/** Our check result as qemu-img's JSON fields (absent fields are 0). */
function asQemu(c: CheckResult): Record<string, number> {
  return {
    corruptions: c.corruptions,
    leaks: c.leaks,
    "check-errors": c.checkErrors,
    "corruptions-fixed": c.corruptionsFixed,
    "leaks-fixed": c.leaksFixed,
    "allocated-clusters": c.allocatedClusters ?? 0,
    "fragmented-clusters": c.fragmentedClusters ?? 0,
    "total-clusters": c.totalClusters ?? 0,
  };
}

function qemuCounts(json: Record<string, number | string>): Record<string, number> {
  const keys = ["corruptions", "leaks", "check-errors", "corruptions-fixed", "leaks-fixed", "allocated-clusters", "fragmented-clusters", "total-clusters"];
  return Object.fromEntries(keys.map((k) => [k, Number(json[k] ?? 0)]));
}

describe.skipIf(!HAVE_QEMU)("qcow and qed images made by qemu read through vdisk", () => {
  const t = tempDir("vdisk-qcow-qed-read-");
  afterAll(() => t.cleanup());
  const SIZE = 4 << 20;

  for (let seed = 1; seed <= 3; seed++) {
    it(`qcow written by qemu-io (seed ${seed}) reads like qemu-img convert`, async () => {
      const f = t.path(`w${seed}.qcow`);
      qemuImg("create", "-q", "-f", "qcow", f, String(SIZE + seed * 512));
      qemuIo("qcow", f, qemuOps(seed, SIZE, 40, 70000));
      expectSameBytes(await readAll(f), qemuRaw(f, t.path(`w${seed}.raw`)));
    });
  }

  const qedVariants = ["cluster_size=4k,table_size=2", "cluster_size=16k,table_size=16", "cluster_size=64k", "cluster_size=4k,table_size=4"];
  qedVariants.forEach((opts, i) => {
    it(`qed -o ${opts} written by qemu-io reads like qemu-img convert; check counts equal qemu's`, async () => {
      const f = t.path(`q${i}.qed`);
      qemuImg("create", "-q", "-f", "qed", "-o", opts, f, String(SIZE + 1536));
      qemuIo("qed", f, qemuOps(i + 10, SIZE, 50, 100000));
      expectSameBytes(await readAll(f), qemuRaw(f, t.path(`q${i}.raw`)));
      const img = await openImage(f, { readOnly: true });
      const ours = asQemu(await img.check());
      await img.close();
      expect(ours).toEqual(qemuCounts(qemuCheck(f, "qed").json));
    });
  });

  it("qcow compressed by qemu-img convert -c reads like the source", async () => {
    const src = t.path("src.raw");
    const raw = new Uint8Array(SIZE);
    for (let i = 0; i < SIZE; i += 4096) raw.set(pattern(2048, i >> 12), i);
    raw.fill(0, 1 << 20, 2 << 20);
    writeFileSync(src, raw);
    const f = t.path("c.qcow");
    // qemu-img 7.2 exits 1 after writing the whole image (its final empty compressed write fails).
    qemuImgStatus("convert", "-c", "-f", "raw", "-O", "qcow", src, f);
    const img = await openImage(f, { readOnly: true });
    expect((await img.check()).compressedClusters).toBeGreaterThan(500);
    await img.close();
    expectSameBytes(await readAll(f), raw);
  });

  it("backing chains qed → qcow → qed (qemu-made) read like qemu-img convert", async () => {
    const base = t.path("base.qed");
    const mid = t.path("mid.qcow");
    const top = t.path("top.qed");
    qemuImg("create", "-q", "-f", "qed", "-o", "cluster_size=4k", base, String(SIZE));
    qemuIo("qed", base, qemuOps(21, SIZE, 30, 60000));
    qemuImg("create", "-q", "-f", "qcow", "-b", "base.qed", "-F", "qed", mid);
    qemuIo("qcow", mid, qemuOps(22, SIZE, 30, 30000));
    qemuImg("create", "-q", "-f", "qed", "-b", "mid.qcow", "-F", "qcow", top);
    qemuIo("qed", top, qemuOps(23, SIZE, 30, 30000));
    expectSameBytes(await readAll(top), qemuRaw(top, t.path("top.raw")));
    expectSameBytes(await readAll(mid), qemuRaw(mid, t.path("mid.raw")));
  });

  it("a qed image over a raw backing file records no-probe and reads like qemu", async () => {
    const base = t.path("b.raw");
    writeFileSync(base, pattern(SIZE, 77));
    const top = t.path("b-top.qed");
    qemuImg("create", "-q", "-f", "qed", "-b", "b.raw", "-F", "raw", top);
    qemuIo("qed", top, ["write -z 0 65536", "write -P 0x5a 100000 5000"]);
    const img = await openImage(top, { readOnly: true, backing: "any" });
    expect(img.backing?.format).toBe("raw");
    await img.close();
    expectSameBytes(await readAll(top), qemuRaw(top, t.path("b-top.raw")));
  });
});

describe.skipIf(!HAVE_QEMU)("qcow and qed images written by vdisk pass qemu-img", () => {
  const t = tempDir("vdisk-qcow-qed-write-");
  afterAll(() => t.cleanup());
  const SIZE = 3 * 1024 * 1024 + 512;

  async function writeRandom(path: string, format: string, options: string, seed: number, extra = {}): Promise<Uint8Array> {
    const img = await createImage(path, { format, size: SIZE, options, ...extra });
    const model = new Uint8Array(img.size);
    await randomOps(img, model, rng(seed), { ops: 60, maxLength: 50000, zeroShare: 0.25, flushes: true });
    await img.close();
    return model;
  }

  for (const [format, options] of [
    ["qcow", ""],
    ["qcow", "cluster_size=512"],
    ["qed", ""],
    ["qed", "cluster_size=4k,table_size=2"],
    ["qed", "cluster_size=8k,table_size=16"],
  ] as const) {
    it(`${format} ${options || "defaults"}: qemu-img compare equals the model, check is clean, map agrees`, async () => {
      const f = t.path(`${format}-${options.replace(/[=,]/g, "_")}.${format}`);
      const model = await writeRandom(f, format, options, options.length + format.length);
      const raw = t.path("model.raw");
      writeFileSync(raw, model);
      const cmp = qemuImgStatus("compare", "-f", format, "-F", "raw", f, raw);
      expect(cmp.stderr + cmp.stdout).toMatch(/Images are identical/);
      expect(cmp.status).toBe(0);
      if (format === "qed") {
        const c = qemuCheck(f, "qed");
        expect(c.status).toBe(0);
        const img = await openImage(f, { readOnly: true });
        expect(asQemu(await img.check())).toEqual(qemuCounts(c.json));
        await img.close();
      }
      // qemu's map and ours classify every byte alike (data / zero / present).
      const theirs = JSON.parse(qemuImg("map", "--output=json", "-f", format, f)) as Array<{
        start: number; length: number; present: boolean; zero: boolean; data: boolean;
      }>;
      const img = await openImage(f, { readOnly: true });
      for (const e of theirs) {
        const st = await img.blockStatus(e.start, Math.min(e.length, 4096));
        expect({ at: e.start, present: st.present, zero: st.zero, data: st.data }).toEqual({
          at: e.start, present: e.present, zero: e.zero, data: e.data,
        });
      }
      await img.close();
    });
  }

  it("qcow written compressed by vdisk reads identically in qemu", async () => {
    const f = t.path("wc.qcow");
    const img = await createImage(f, { format: "qcow", size: SIZE });
    const model = new Uint8Array(img.size);
    for (let i = 0; i < model.length; i++) model[i] = (i >> 10) % 7;
    await img.writeCompressed(0, model);
    expect((await img.check()).compressedClusters).toBeGreaterThan(700);
    await img.close();
    expectSameBytes(qemuRaw(f, t.path("wc.raw"), "qcow"), model);
  });

  it("qcow with a backing file made by vdisk uses 512-byte clusters and reads identically in qemu", async () => {
    const base = t.path("vb.raw");
    writeFileSync(base, pattern(SIZE, 5));
    const top = t.path("vb.qcow");
    const model = pattern(SIZE, 5);
    const img = await createImage(top, { format: "qcow", backingFile: "vb.raw", backingFormat: "raw", backing: "any" });
    await randomOps(img, model, rng(99), { ops: 40, maxLength: 20000 });
    await img.close();
    const info = JSON.parse(qemuImg("info", "--output=json", top)) as Record<string, unknown>;
    expect(info["cluster-size"]).toBe(512);
    expect(info["backing-filename"]).toBe("vb.raw");
    expectSameBytes(qemuRaw(top, t.path("vb-out.raw")), model);
  });

  it("qed with a qcow backing file made by vdisk reads identically in qemu", async () => {
    const base = t.path("qb.qcow");
    qemuImg("create", "-q", "-f", "qcow", base, String(SIZE));
    qemuIo("qcow", base, qemuOps(31, SIZE, 20, 50000));
    const model = qemuRaw(base, t.path("qb.raw"));
    const top = t.path("qb-top.qed");
    const img = await createImage(top, { format: "qed", backingFile: "qb.qcow", backingFormat: "qcow", backing: "any", options: "cluster_size=4k" });
    await randomOps(img, model, rng(32), { ops: 40, maxLength: 20000, zeroShare: 0.3 });
    await img.close();
    expect(qemuCheck(top, "qed").status).toBe(0);
    expectSameBytes(qemuRaw(top, t.path("qb-top.raw")), model);
  });

  it("table_size=1: qemu 7.2 fails to open it ('QED table offset is invalid'), vdisk reads and writes it", async () => {
    const ours = t.path("ts1.qed");
    const model = await writeRandom(ours, "qed", "table_size=1,cluster_size=4k", 41);
    expect(qemuOpenError(ours, "qed")).toMatch(/QED table offset is invalid/);
    expectSameBytes(await readAll(ours), model);
    const theirs = t.path("ts1-qemu.qed");
    qemuImg("create", "-q", "-f", "qed", "-o", "table_size=1", theirs, String(SIZE));
    const img = await openImage(theirs, {});
    await img.write(123456, pattern(70000, 3));
    await img.close();
    const back = await readAll(theirs);
    expectSameBytes(back.subarray(123456, 123456 + 70000), pattern(70000, 3));
  });
});

describe.skipIf(!HAVE_QEMU)("header pokes of iotests 092 (qcow) and 116 (qed): qemu and vdisk refuse alike", () => {
  const t = tempDir("vdisk-qcow-qed-poke-");
  afterAll(() => t.cleanup());
  const cases: Array<{ fmt: "qcow" | "qed"; what: string; apply(f: string): void; phrase: RegExp }> = [];
  for (const v of [0xff, 0x1f, 0x08, 0x11]) {
    cases.push({ fmt: "qcow", what: `cluster_bits ${v}`, apply: (f) => poke(f, 32, [v]), phrase: /Cluster size must be between 512 and 64k/ });
  }
  for (const v of [0xff, 0x05, 0x0e, 0x1b]) {
    cases.push({ fmt: "qcow", what: `l2_bits ${v}`, apply: (f) => poke(f, 33, [v]), phrase: /L2 table size must be between 512 and 64k/ });
  }
  cases.push({ fmt: "qcow", what: "size ee..", apply: (f) => poke(f, 24, Array(8).fill(0xee)), phrase: /Image too large/ });
  cases.push({ fmt: "qcow", what: "size 7fff..", apply: (f) => poke(f, 24, [0x7f, ...Array(7).fill(0xff)]), phrase: /Image too large/ });
  cases.push({
    fmt: "qcow",
    what: "backing name 0xffffffff bytes",
    apply: (f) => {
      poke(f, 8, [0, 0, 0, 0xff]);
      poke(f, 16, [0xff, 0xff, 0xff, 0xff]);
    },
    phrase: /Backing file name too long/,
  });
  cases.push({
    fmt: "qcow",
    what: "backing name 0x7fffffff bytes",
    apply: (f) => {
      poke(f, 8, [0, 0, 0, 0xff]);
      poke(f, 16, [0x7f, 0xff, 0xff, 0xff]);
    },
    phrase: /Backing file name too long/,
  });
  cases.push({ fmt: "qed", what: "truncated to 512 bytes", apply: (f) => truncateSync(f, 512), phrase: /QED table offset is invalid/ });
  cases.push({ fmt: "qed", what: "magic QEDX", apply: (f) => poke(f, 0, [0x51, 0x45, 0x44, 0x58]), phrase: /Image not in QED format/ });
  cases.push({ fmt: "qed", what: "cluster size ff", apply: (f) => poke(f, 4, [0xff, 0xff, 0xff, 0xff]), phrase: /QED cluster size is invalid/ });
  cases.push({ fmt: "qed", what: "table size ff", apply: (f) => poke(f, 8, [0xff, 0xff, 0xff, 0xff]), phrase: /QED table size is invalid/ });
  cases.push({ fmt: "qed", what: "header size ff", apply: (f) => poke(f, 12, [0xff, 0xff, 0xff, 0xff]), phrase: /QED table offset is invalid/ });
  cases.push({ fmt: "qed", what: "L1 offset ff", apply: (f) => poke(f, 40, Array(8).fill(0xff)), phrase: /QED table offset is invalid/ });
  cases.push({ fmt: "qed", what: "image size ff", apply: (f) => poke(f, 48, Array(8).fill(0xff)), phrase: /QED image size is invalid/ });

  cases.forEach((c, i) => {
    it(`${c.fmt}: ${c.what}`, async () => {
      const f = t.path(`p${i}.${c.fmt}`);
      qemuImg("create", "-q", "-f", c.fmt, f, c.fmt === "qcow" ? "64M" : "128M");
      c.apply(f);
      expect(qemuOpenError(f, c.fmt)).toMatch(c.phrase);
      const err = await vdiskOpenError(f, c.fmt);
      expect(isImageError(err), String(err)).toBe(true);
      expect(err.message).toMatch(c.phrase);
    });
  });
});

describe.skipIf(!HAVE_QEMU)("qed check and repair count like qemu-img check", () => {
  const t = tempDir("vdisk-qed-check-");
  afterAll(() => t.cleanup());

  /** A qemu-made image with several L2 tables, then damaged in every way the check knows. */
  function damaged(name: string): string {
    const f = t.path(name);
    qemuImg("create", "-q", "-f", "qed", "-o", "cluster_size=4k,table_size=2", f, "8M");
    qemuIo("qed", f, ["write -P 1 0 16k", "write -P 2 4M 8k", "write -P 3 1M 4k", "write -P 4 6M 12k", "write -z 2M 8k"]);
    const b = new Uint8Array(readFileSync(f));
    const v = new DataView(b.buffer);
    const l1 = Number(v.getBigUint64(40, true));
    const l2a = Number(v.getBigUint64(l1, true));
    const l2b = Number(v.getBigUint64(l1 + 8, true));
    v.setBigUint64(l2a + 2 * 8, 0x10000000n, true); // past the end
    v.setBigUint64(l2a + 3 * 8, v.getBigUint64(l2b, true), true); // referenced twice
    v.setBigUint64(l2a + 5 * 8, BigInt(l2a + 100), true); // misaligned
    v.setBigUint64(l1 + 3 * 8, 0x40000000n, true); // L2 table past the end
    const grown = new Uint8Array(b.length + 3 * 4096); // three leaked clusters
    grown.set(b);
    writeFileSync(f, grown);
    return f;
  }

  it("check without repair", async () => {
    const f = damaged("d0.qed");
    const img = await openImage(f, { readOnly: true });
    const ours = asQemu(await img.check());
    await img.close();
    const theirs = qemuCheck(f, "qed");
    expect(theirs.status).toBe(2);
    expect(ours).toEqual(qemuCounts(theirs.json));
  });

  for (const mode of ["leaks", "all"] as const) {
    it(`check -r ${mode}: same counts, and the repaired files check the same in qemu`, async () => {
      const a = damaged(`ra-${mode}.qed`);
      const b = t.path(`rb-${mode}.qed`);
      copyFileSync(a, b);
      const img = await openImage(a, {});
      const ours = asQemu(await img.check(mode));
      await img.close();
      const r = qemuImgStatus("check", "--output=json", "-r", mode, "-f", "qed", b);
      expect(ours).toEqual(qemuCounts(JSON.parse(r.stdout) as Record<string, number>));
      expect(qemuCounts(qemuCheck(a, "qed").json)).toEqual(qemuCounts(qemuCheck(b, "qed").json));
      expectSameBytes(qemuRaw(a, t.path("a.raw"), "qed"), qemuRaw(b, t.path("b.raw"), "qed"));
    });
  }

  it("an image left with need-check set is repaired by a read-write open as qemu repairs it", async () => {
    const a = t.path("nc.qed");
    qemuImg("create", "-q", "-f", "qed", "-o", "cluster_size=4k", a, "4M");
    qemuIo("qed", a, ["write -P 7 0 12k"]);
    const b0 = new Uint8Array(readFileSync(a));
    const v = new DataView(b0.buffer);
    const l2 = Number(v.getBigUint64(Number(v.getBigUint64(40, true)), true));
    v.setBigUint64(l2 + 8, 0x10000000n, true);
    b0[16] |= 0x02;
    writeFileSync(a, b0);
    const b = t.path("nc-qemu.qed");
    copyFileSync(a, b);
    // qemu repairs on a read-write open (qemu-io opens read-write).
    qemuIo("qed", b, ["read 0 512"]);
    const warnings: string[] = [];
    const img = await openImage(a, { warn: (m) => warnings.push(m) });
    await img.close();
    expect(warnings.join()).toMatch(/not closed cleanly/);
    expect(new Uint8Array(readFileSync(a))[16] & 0x02).toBe(0);
    // The redirected entry's old cluster is a leak in both; nothing else remains.
    const ours = qemuCheck(a, "qed");
    expect(ours.json.corruptions ?? 0).toBe(0);
    expect(qemuCounts(ours.json)).toEqual(qemuCounts(qemuCheck(b, "qed").json));
    expectSameBytes(qemuRaw(a, t.path("nc-a.raw"), "qed"), qemuRaw(b, t.path("nc-b.raw"), "qed"));
  });
});

if (!REFERENCE_IMAGES_AVAILABLE) warnSkipped("qcow/qed reference-image tests", "qemu-img/qemu-io/jq or ../shared/corpus");

describe.skipIf(!REFERENCE_IMAGES_AVAILABLE)("reference images of make-reference-images.sh", () => {
  let dir = "";
  beforeAll(() => {
    dir = ensureReferenceImages();
  }, 300_000);

  const expected = { images: REFERENCE_IMAGES_AVAILABLE ? referenceImages() : [] };
  for (const name of ["qcow", "qcow-compressed", "qed", "qed-4k"]) {
    it(`${name} reads to the recorded raw sha256 and checks as qemu-img`, async () => {
      const ref = expected.images.find((x) => x.name === name)!;
      const img = await openImage(join(dir, "images", ref.files[0].name), { readOnly: true });
      expect(img.format).toBe(ref.format);
      const h = createHash("sha256");
      for (let p = 0; p < img.size; p += 4 << 20) h.update(await img.read(p, Math.min(4 << 20, img.size - p)));
      expect(h.digest("hex")).toBe(ref.raw_sha256);
      const c = await img.check();
      expect([c.corruptions, c.leaks]).toEqual([0, 0]);
      if (ref.qemu_img_check.supported) {
        expect(c.allocatedClusters).toBe(ref.qemu_img_check["allocated-clusters"]);
        expect(c.fragmentedClusters).toBe(ref.qemu_img_check["fragmented-clusters"]);
        expect(c.totalClusters).toBe(ref.qemu_img_check["total-clusters"]);
      }
      await img.close();
    });
  }
});

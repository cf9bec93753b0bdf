/**
 * VHDX corpus: QEMU's sample images (Hyper-V, Disk2VHD, a never-replayed log) read with the raw
 * sha256 MANIFEST.json records, streamed through a hash (zero extents hash as zeros, nothing
 * multi-GiB is written); the dirty log replayed in memory (read-only) and into a copy
 * (read-write, then qemu-img check is clean and the file matches qemu's own replay); and the
 * vhdx reference images of make-reference-images.sh, rebuilt from its recipe.
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFileSync, existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openImage, type BlockDevice } from "../../src/node.js";
import { HAVE_QEMU, qemuImg, qemuImgStatus, qemuIo, tempDir, warnSkipped } from "../helpers/qemu.js";

const CORPUS = join(import.meta.dirname, "..", "..", "..", "shared", "corpus");
const SAMPLES = join(CORPUS, "qemu-samples");
const HAVE_BZIP2 = spawnSync("sh", ["-c", "command -v bzip2"]).status === 0;
const HAVE_SAMPLES = existsSync(join(SAMPLES, "MANIFEST.json"));
if (!HAVE_BZIP2 || !HAVE_SAMPLES) warnSkipped("vhdx sample-image tests", "bzip2 or ../shared/corpus/qemu-samples");
if (!HAVE_QEMU) warnSkipped("vhdx sample cross-checks with qemu");
/** The 10 GiB sample hashes 10 GiB of zeros (~17 s here): only with VDISK_SLOW_TESTS=1. */
const SLOW = process.env.VDISK_SLOW_TESTS === "1";

interface Sample {
  file: string;
  virtual_size: number;
  raw_sha256: string;
  qemu_img_info?: { "cluster-size": number };
}

const manifest: Sample[] = HAVE_SAMPLES ? (JSON.parse(readFileSync(join(SAMPLES, "MANIFEST.json"), "utf8")) as Sample[]) : [];
const sample = (name: string) => manifest.find((s) => s.file === `${name}.bz2`)!;
const MiB = 1 << 20;

/** sha256 of the whole virtual disk: data extents are read, zero extents hash as zeros. */
async function rawSha256(img: BlockDevice): Promise<string> {
  const h = createHash("sha256");
  const zeros = new Uint8Array(16 * MiB);
  for await (const e of img.extents()) {
    for (let p = 0; p < e.length; p += zeros.length) {
      const n = Math.min(zeros.length, e.length - p);
      h.update(e.zero ? zeros.subarray(0, n) : await img.read(e.offset + p, n));
    }
  }
  return h.digest("hex");
}

/** Data extents as [offset, length] pairs. */
async function dataExtents(img: BlockDevice): Promise<Array<[number, number]>> {
  const out: Array<[number, number]> = [];
  for await (const e of img.extents()) if (!e.zero) out.push([e.offset, e.length]);
  return out;
}

function expectFilled(buf: Uint8Array, value: number, what: string): void {
  const bad = buf.findIndex((b) => b !== value);
  expect(bad, `${what}: byte ${bad} is not 0x${value.toString(16)}`).toBe(-1);
}

describe.skipIf(!HAVE_BZIP2 || !HAVE_SAMPLES)("vhdx sample images", () => {
  const t = tempDir("vdisk-vhdx-samples-");
  const unpacked = (name: string) => t.path(`${name}.vhdx`);
  beforeAll(() => {
    for (const name of ["iotest-dynamic-1G", "test-disk2vhd", "iotest-dirtylog-10G-4M"]) {
      const r = spawnSync("sh", ["-c", `bzip2 -dc "$1" > "$2"`, "sh", join(SAMPLES, `${name}.vhdx.bz2`), unpacked(name)]);
      if (r.status !== 0) throw new Error(`bzip2 failed for ${name}: ${r.stderr}`);
    }
  }, 60_000);
  afterAll(() => t.cleanup());

  it("iotest-dynamic-1G (Hyper-V): raw sha256 as MANIFEST, 064's patterns, only its three 32 MiB blocks map as data", async () => {
    const s = sample("iotest-dynamic-1G.vhdx");
    const img = await openImage(unpacked("iotest-dynamic-1G"), { readOnly: true });
    expect(img.format).toBe("vhdx");
    expect(img.size).toBe(s.virtual_size);
    expect((await img.info()).clusterSize).toBe(s.qemu_img_info!["cluster-size"]);
    expect(await dataExtents(img)).toEqual([[0, 96 * MiB]]);
    expectFilled(await img.read(0, 33 * MiB), 0xa5, "0-33M");
    expectFilled(await img.read(33 * MiB, 33 * MiB), 0x96, "33M-66M");
    expectFilled(await img.read(66 * MiB, 30 * MiB), 0, "66M-96M");
    expect(await rawSha256(img)).toBe(s.raw_sha256);
    await img.close();
  }, 60_000);

  it("iotest-dynamic-1G: 064's 58 MiB write at 99M on a copy, then every range verifies here and in qemu", async () => {
    const copy = t.path("dyn-copy.vhdx");
    copyFileSync(unpacked("iotest-dynamic-1G"), copy);
    const img = await openImage(copy, { format: "vhdx" });
    await img.write(99 * MiB, new Uint8Array(58 * MiB).fill(0xc3));
    await img.close();
    const again = await openImage(copy, { readOnly: true });
    expectFilled(await again.read(0, 33 * MiB), 0xa5, "0-33M");
    expectFilled(await again.read(33 * MiB, 33 * MiB), 0x96, "33M-66M");
    expectFilled(await again.read(66 * MiB, 33 * MiB), 0, "66M-99M");
    expectFilled(await again.read(99 * MiB, 58 * MiB), 0xc3, "99M-157M");
    expectFilled(await again.read(157 * MiB, 64 * MiB), 0, "157M-221M");
    expect((await again.check()).corruptions).toBe(0);
    await again.close();
    if (!HAVE_QEMU) return;
    expect(qemuImgStatus("check", "-f", "vhdx", copy).status).toBe(0);
    const out = qemuIo("vhdx", copy, ["read -P 0xa5 0 33M", "read -P 0x96 33M 33M", "read -P 0 66M 33M", "read -P 0xc3 99M 58M", "read -P 0 157M 100M"]);
    expect(out).not.toMatch(/verification failed/);
  }, 60_000);

  it("test-disk2vhd: opens (equal headers, metadata region listed first), 256 MiB, 2 MiB blocks, raw sha256 as MANIFEST", async () => {
    const s = sample("test-disk2vhd.vhdx");
    const img = await openImage(unpacked("test-disk2vhd"), { readOnly: true });
    expect(img.size).toBe(268435456);
    expect((await img.info()).clusterSize).toBe(2097152);
    expect(await rawSha256(img)).toBe(s.raw_sha256);
    const c = await img.check();
    expect(c.corruptions).toBe(0);
    await img.close();
  }, 60_000);

  it("iotest-dirtylog-10G-4M read-only: the log is replayed in memory (qemu refuses); 0-18M reads 0xa5, nothing else is data", async () => {
    const warnings: string[] = [];
    const before = readFileSync(unpacked("iotest-dirtylog-10G-4M"));
    const img = await openImage(unpacked("iotest-dirtylog-10G-4M"), { readOnly: true, warn: (m) => warnings.push(m) });
    expect(img.size).toBe(10 * 2 ** 30);
    expect(warnings.join("\n")).toMatch(/log .* never replayed/);
    const info = await img.info();
    expect(info.dirty).toBe(true);
    expect(info.clusterSize).toBe(MiB);
    const ext = await dataExtents(img);
    const end = ext.reduce((m, [o, l]) => Math.max(m, o + l), 0);
    expect(end).toBe(18 * MiB);
    expectFilled(await img.read(0, 18 * MiB), 0xa5, "0-18M");
    const c = await img.check();
    expect(c.corruptions).toBe(1);
    await img.close();
    // Nothing was written.
    expect(Buffer.compare(before, readFileSync(unpacked("iotest-dirtylog-10G-4M")))).toBe(0);
    if (HAVE_QEMU) {
      const q = qemuImgStatus("info", "-f", "vhdx", unpacked("iotest-dirtylog-10G-4M"));
      expect(q.stderr).toMatch(/contains a log that needs to be replayed/);
    }
  }, 60_000);

  it.skipIf(!SLOW)("iotest-dirtylog-10G-4M read-only: raw sha256 of all 10 GiB as MANIFEST (VDISK_SLOW_TESTS=1)", async () => {
    const img = await openImage(unpacked("iotest-dirtylog-10G-4M"), { readOnly: true });
    expect(await rawSha256(img)).toBe(sample("iotest-dirtylog-10G-4M.vhdx").raw_sha256);
    await img.close();
  }, 300_000);

  it.skipIf(!HAVE_QEMU)("iotest-dirtylog-10G-4M read-write on a copy: replayed like qemu's check -r all; qemu-img check is clean", async () => {
    const ours = t.path("dirty-ours.vhdx");
    const theirs = t.path("dirty-qemu.vhdx");
    copyFileSync(unpacked("iotest-dirtylog-10G-4M"), ours);
    copyFileSync(unpacked("iotest-dirtylog-10G-4M"), theirs);
    const img = await openImage(ours, { format: "vhdx" });
    const c = await img.check();
    expect(c.corruptionsFixed).toBe(1);
    expect(c.corruptions).toBe(0);
    expectFilled(await img.read(0, 18 * MiB), 0xa5, "0-18M");
    await img.close();
    const q = qemuImgStatus("check", "-r", "all", "-f", "vhdx", theirs);
    expect(q.stdout).toMatch(/1 corruptions/);
    // Past the headers (new GUIDs on both sides) the files are the same bytes.
    const a = readFileSync(ours);
    const b = readFileSync(theirs);
    expect(a.length).toBe(b.length);
    expect(Buffer.compare(a.subarray(192 * 1024), b.subarray(192 * 1024))).toBe(0);
    const check = qemuImgStatus("check", "-f", "vhdx", ours);
    expect(check.stdout).toMatch(/No errors were found/);
    expect(check.status).toBe(0);
    expect(qemuIo("vhdx", ours, ["read -P 0xa5 0 18M", "read -P 0 18M 100M"])).not.toMatch(/verification failed/);
  }, 60_000);
});

// ---- the vhdx entries of make-reference-images.sh, rebuilt from the script's own recipe ----

const SCRIPT = join(CORPUS, "make-reference-images.sh");
const REF = join(CORPUS, "reference-images.json");
const HAVE_REF = HAVE_QEMU && existsSync(SCRIPT) && existsSync(REF);
if (!HAVE_REF) warnSkipped("vhdx reference-image tests", "qemu-img/qemu-io or ../shared/corpus");

/** The qemu-io commands of the script's PATTERN_A and PATTERN_B arrays, TAIL resolved. */
function referencePattern(size: number): string[] {
  const text = readFileSync(SCRIPT, "utf8");
  const cmds: string[] = [];
  for (const name of ["PATTERN_A", "PATTERN_B"]) {
    const m = new RegExp(`${name}=\\(([\\s\\S]*?)\\n\\)`).exec(text);
    if (!m) throw new Error(`${name} not found in make-reference-images.sh`);
    for (const q of m[1].matchAll(/"([^"]+)"/g)) cmds.push(q[1].replace("TAIL", String(size - 777)));
  }
  return cmds;
}

interface RefImage {
  name: string;
  format: string;
  how: string;
  raw_sha256: string;
  virtual_size: number;
  qemu_img_info: { "cluster-size": number };
}

describe.skipIf(!HAVE_REF)("vhdx reference images read through vdisk", () => {
  const t = tempDir("vdisk-vhdx-ref-");
  afterAll(() => t.cleanup());
  const refs = HAVE_REF ? (JSON.parse(readFileSync(REF, "utf8")) as { images: RefImage[] }).images.filter((i) => i.format === "vhdx") : [];
  it("the corpus lists vhdx reference images", () => {
    expect(refs.length).toBeGreaterThanOrEqual(4);
  });
  for (const ref of refs) {
    it(`${ref.name}: raw sha256 ${ref.raw_sha256.slice(0, 12)}…, block size, check clean`, async () => {
      const opts = /-o (\S+)/.exec(ref.how)![1];
      const f = t.path(`${ref.name}.vhdx`);
      qemuImg("create", "-q", "-f", "vhdx", "-o", opts, f, String(ref.virtual_size));
      qemuIo("vhdx", f, referencePattern(ref.virtual_size));
      const img = await openImage(f, { readOnly: true });
      expect(img.size).toBe(ref.virtual_size);
      expect((await img.info()).clusterSize).toBe(ref.qemu_img_info["cluster-size"]);
      expect(await rawSha256(img)).toBe(ref.raw_sha256);
      expect((await img.check()).corruptions).toBe(0);
      await img.close();
    });
  }
});

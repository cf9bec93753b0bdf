/**
 * QEMU's VMDK sample images (../shared/corpus/qemu-samples, decompressed with bzip2 into a temp
 * dir): the VMware-made version-3 stream `iotest-version3.vmdk` (grain directory at the end,
 * footer) reads as MANIFEST.json records it, and the fuzzed `afl9.vmdk` is refused with QEMU's
 * "L1 size too big" before anything is allocated.
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { closeSync, existsSync, openSync, readFileSync, readSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { openImage } from "../../src/node.js";
import { firstDifference } from "../formats/image-model.js";
import { HAVE_QEMU, qemuImg, tempDir } from "../helpers/qemu.js";

const SAMPLES = join(import.meta.dirname, "..", "..", "..", "shared", "corpus", "qemu-samples");
const HAVE_BZIP2 = spawnSync("sh", ["-c", "command -v bzip2"]).status === 0;
const available = HAVE_BZIP2 && existsSync(join(SAMPLES, "MANIFEST.json")) && existsSync(join(SAMPLES, "iotest-version3.vmdk.bz2"));
if (!available) console.warn("\n*** SKIPPED: vmdk corpus tests — bzip2 or ../shared/corpus/qemu-samples missing ***\n");

interface MapEntry {
  start: number;
  length: number;
  zero: boolean;
  data: boolean;
}

interface Sample {
  file: string;
  decompressed_sha256: string;
  virtual_size: number | null;
  qemu_img_info?: { "cluster-size": number; "format-specific": { data: Record<string, unknown> } };
  qemu_img_map?: MapEntry[];
  qemu_img_info_error?: string;
}

function merged(entries: MapEntry[]): string[] {
  const out: MapEntry[] = [];
  for (const e of entries) {
    const last = out[out.length - 1];
    if (last && last.zero === e.zero && last.data === e.data) last.length += e.length;
    else out.push({ ...e });
  }
  return out.map((e) => `${e.start}+${e.length}:${e.zero ? "z" : ""}${e.data ? "d" : ""}`);
}

describe.skipIf(!available)("vmdk samples of QEMU's iotests", () => {
  const t = tempDir("vdisk-vmdk-corpus-");
  afterAll(() => t.cleanup());
  const manifest = available ? (JSON.parse(readFileSync(join(SAMPLES, "MANIFEST.json"), "utf8")) as Sample[]) : [];
  const sample = (name: string): { path: string; entry: Sample } => {
    const entry = manifest.find((s) => s.file === `${name}.bz2`)!;
    const path = t.path(name);
    const r = spawnSync("bzip2", ["-dc", join(SAMPLES, `${name}.bz2`)], { maxBuffer: 64 << 20 });
    writeFileSync(path, r.stdout);
    expect(createHash("sha256").update(r.stdout).digest("hex")).toBe(entry.decompressed_sha256);
    return { path, entry };
  };

  it("iotest-version3.vmdk: a VMware stream (GD at the end, footer) reads as the manifest records it", { timeout: 60_000 }, async () => {
    const { path, entry } = sample("iotest-version3.vmdk");
    const img = await openImage(path, { readOnly: true });
    try {
      expect(img.format).toBe("vmdk");
      expect(img.size).toBe(entry.virtual_size);
      const info = await img.info();
      expect(info.clusterSize).toBe(entry.qemu_img_info!["cluster-size"]);
      const want = entry.qemu_img_info!["format-specific"].data;
      const got = { ...info.formatSpecific!.data } as Record<string, unknown>;
      got.extents = (got.extents as Array<Record<string, unknown>>).map(({ filename: _f, ...rest }) => rest);
      expect(got).toEqual(want);
      const c = await img.check();
      expect([c.corruptions, c.checkErrors]).toEqual([0, 0]);
      const ours: MapEntry[] = [];
      for await (const e of img.extents()) ours.push({ start: e.offset, length: e.length, zero: e.zero, data: e.data });
      expect(merged(ours)).toEqual(merged(entry.qemu_img_map!));
      // iotest 059: sector i·655360 + i·512 holds '0' + i % 10 for i < 100.
      for (let i = 0; i < 100; i++) {
        expect(await img.read(i * 655360 + i * 512, 512)).toEqual(new Uint8Array(512).fill(0x30 + (i % 10)));
      }
      // Every data grain reads as qemu-img convert -O raw has it (the rest is zero by the map).
      if (HAVE_QEMU) {
        const raw = t.path("v3.raw");
        qemuImg("convert", "-O", "raw", path, raw);
        const fd = openSync(raw, "r");
        try {
          for (const e of ours.filter((x) => x.data)) {
            const want = new Uint8Array(e.length);
            readSync(fd, want, 0, e.length, e.start);
            const at = firstDifference(await img.read(e.start, e.length), want);
            expect(at, `data run at ${e.start}: first difference at ${e.start + at}`).toBe(-1);
          }
        } finally {
          closeSync(fd);
        }
      }
    } finally {
      await img.close();
    }
  });

  it("afl9.vmdk (fuzzed, huge capacity) is refused: L1 size too big, without a huge allocation", async () => {
    const { path, entry } = sample("afl9.vmdk");
    const qemuMessage = entry.qemu_img_info_error!.replace(/^qemu-img: Could not open '[^']*': /, "");
    expect(qemuMessage).toBe("L1 size too big");
    const rss = process.memoryUsage().rss;
    for (const readOnly of [true, false]) {
      await expect(openImage(path, { readOnly })).rejects.toMatchObject({
        code: "ERR_LIMIT_EXCEEDED",
        message: expect.stringContaining(qemuMessage),
      });
    }
    expect(process.memoryUsage().rss - rss).toBeLessThan(256 << 20);
  });
});

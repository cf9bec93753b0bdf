/**
 * The shared reference images (`make-reference-images.sh`, built once per machine into a cache
 * shared by every format's reference test, see test/helpers/reference-images.ts) read
 * through vdisk with the raw sha256 qemu-img 7.2 recorded, for every qcow2 and raw entry and
 * for snapshot s1's raw hash where recorded; vdisk's check totals equal the recorded ones.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { openImage } from "../../src/node.js";
import { warnSkipped } from "../helpers/qemu.js";
import { CORPUS_DIR, REFERENCE_IMAGES_AVAILABLE, ensureReferenceImages } from "../helpers/reference-images.js";

const REF = join(CORPUS_DIR, "reference-images.json");
const available = REFERENCE_IMAGES_AVAILABLE;
if (!available) warnSkipped("qcow2 reference-image tests", "qemu-img/qemu-io/jq or ../shared/corpus");

interface RefImage {
  name: string;
  format: string;
  files: Array<{ name: string }>;
  raw_sha256: string;
  virtual_size: number;
  qemu_img_check?: Record<string, number | boolean | string>;
  qemu_img_info?: Record<string, unknown>;
}

async function sha256Of(path: string, format: string): Promise<string> {
  const img = await openImage(path, { readOnly: true, format });
  try {
    const h = createHash("sha256");
    const chunk = 4 << 20;
    for (let off = 0; off < img.size; off += chunk) h.update(await img.read(off, Math.min(chunk, img.size - off)));
    return h.digest("hex");
  } finally {
    await img.close();
  }
}

describe.skipIf(!available)("reference images read through vdisk", () => {
  // Built once per machine and shared with the other formats' reference tests.
  const t = { dir: "" };
  const refs: RefImage[] = available
    ? (JSON.parse(readFileSync(REF, "utf8")) as { images: RefImage[] }).images.filter((i) => i.format === "qcow2" || i.format === "raw")
    : [];
  beforeAll(() => {
    t.dir = ensureReferenceImages();
  }, 600_000);

  for (const ref of refs) {
    it(`${ref.name} reads with raw sha256 ${ref.raw_sha256.slice(0, 12)}…`, async () => {
      const path = join(t.dir, "images", ref.files[0].name);
      expect(await sha256Of(path, ref.format)).toBe(ref.raw_sha256);
      if (ref.format === "qcow2" && ref.qemu_img_info) {
        const img = await openImage(path, { readOnly: true, format: "qcow2" });
        const info = await img.info();
        await img.close();
        const q = ref.qemu_img_info;
        expect(info.formatSpecific).toEqual(q["format-specific"]);
        expect(info.clusterSize).toBe(q["cluster-size"]);
        expect(info.dirty).toBe(q["dirty-flag"]);
      }
      const check = ref.qemu_img_check;
      if (ref.format === "qcow2" && check?.supported) {
        const img = await openImage(path, { readOnly: true, format: "qcow2" });
        const c = await img.check();
        await img.close();
        expect({
          end: c.imageEndOffset,
          total: c.totalClusters,
          allocated: c.allocatedClusters,
          fragmented: c.fragmentedClusters ?? 0,
          compressed: c.compressedClusters ?? 0,
          corruptions: c.corruptions,
          leaks: c.leaks,
        }).toEqual({
          end: check["image-end-offset"],
          total: check["total-clusters"],
          allocated: check["allocated-clusters"],
          fragmented: check["fragmented-clusters"] ?? 0,
          compressed: check["compressed-clusters"] ?? 0,
          corruptions: check.corruptions ?? 0,
          leaks: check.leaks ?? 0,
        });
      }
    });
  }

  it("qcow2-v3-snapshot: snapshot s1 reads with the recorded raw sha256 (pattern A)", async () => {
    const ref = (JSON.parse(readFileSync(REF, "utf8")) as { images: Array<Record<string, string>> }).images.find(
      (i) => i.name === "qcow2-v3-snapshot",
    )!;
    const path = join(t.dir, "images", "qcow2-v3-snapshot.qcow2");
    const img = await openImage(path, { readOnly: true, format: "qcow2", driverOptions: { "snapshot.name": "s1" } });
    const h = createHash("sha256");
    for (let off = 0; off < img.size; off += 4 << 20) h.update(await img.read(off, Math.min(4 << 20, img.size - off)));
    await img.close();
    expect(h.digest("hex")).toBe(ref.snapshot_s1_raw_sha256);
    expect(ref.snapshot_s1_raw_sha256).not.toBe(ref.raw_sha256);
  });

  it("qcow2-v3-snapshot lists snapshot s1 and its active layer holds pattern A+B", async () => {
    const path = join(t.dir, "images", "qcow2-v3-snapshot.qcow2");
    const img = await openImage(path, { readOnly: true });
    const info = await img.info();
    await img.close();
    expect(info.snapshots?.map((s) => s.name)).toEqual(["s1"]);
    expect(info.snapshots?.[0].id).toBe("1");
    expect(info.snapshots?.[0].vmStateSize).toBe(0);
  });
});

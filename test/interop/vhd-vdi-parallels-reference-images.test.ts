/**
 * The shared reference images (`make-reference-images.sh`, built into a temp dir) for vpc, vdi
 * and parallels read through vdisk with the raw sha256 and virtual size qemu-img 7.2 recorded;
 * vdisk's check agrees with the recorded `qemu-img check` (vdi, parallels).
 */
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { openImage } from "../../src/node.js";
import { sha256OfDevice } from "../helpers/image-hash.js";
import { warnSkipped } from "../helpers/qemu.js";
import { REFERENCE_IMAGES_AVAILABLE, ensureReferenceImages, referenceImages } from "../helpers/reference-images.js";

const available = REFERENCE_IMAGES_AVAILABLE;
if (!available) warnSkipped("vpc/vdi/parallels reference-image tests", "qemu-img/qemu-io/jq or ../shared/corpus");

describe.skipIf(!available)("vpc, vdi and parallels reference images", () => {
  const refs = available ? referenceImages().filter((i) => ["vpc", "vdi", "parallels"].includes(i.format)) : [];
  let dir = "";
  beforeAll(() => {
    dir = ensureReferenceImages();
  }, 600_000);

  it("covers the eight images of these formats", () => {
    expect(refs.map((r) => r.name)).toEqual([
      "vpc-dynamic", "vpc-dynamic-forcesize", "vpc-fixed", "vpc-fixed-forcesize", "vdi", "vdi-static", "parallels", "parallels-64k",
    ]);
  });

  for (const ref of refs) {
    it(`${ref.name} reads with raw sha256 ${ref.raw_sha256.slice(0, 12)}… and checks like qemu-img`, async () => {
      const img = await openImage(join(dir, "images", ref.files[0].name), { readOnly: true, format: ref.format });
      try {
        expect(img.size).toBe(ref.virtual_size);
        expect(await sha256OfDevice(img)).toBe(ref.raw_sha256);
        const info = await img.info();
        // qemu-img 7.2 shows no cluster size for parallels; vdisk does.
        if (ref.format !== "parallels") expect(info.clusterSize).toBe(ref.qemu_img_info["cluster-size"]);
        const q = ref.qemu_img_check;
        if (q.supported) {
          const c = await img.check();
          expect([c.corruptions, c.leaks, c.checkErrors]).toEqual([q.corruptions ?? 0, q.leaks ?? 0, q["check-errors"]]);
          if (ref.format === "parallels") {
            expect([c.imageEndOffset, c.totalClusters, c.allocatedClusters]).toEqual([
              q["image-end-offset"], q["total-clusters"], q["allocated-clusters"],
            ]);
          }
        }
      } finally {
        await img.close();
      }
    });
  }
});

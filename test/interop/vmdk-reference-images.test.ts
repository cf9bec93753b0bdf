/**
 * The shared reference images (`make-reference-images.sh`, built once into a temp dir) for
 * vmdk — monolithicSparse (plain and zeroed_grain), streamOptimized (made by convert) and
 * monolithicFlat (descriptor + flat extent) — read through vdisk with the raw sha256 and the
 * info qemu-img 7.2 recorded, and check clean as qemu-img did.
 */
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { openImage } from "../../src/node.js";
import { sha256OfDevice } from "../helpers/image-hash.js";
import { warnSkipped } from "../helpers/qemu.js";
import { REFERENCE_IMAGES_AVAILABLE, ensureReferenceImages, referenceImages } from "../helpers/reference-images.js";

const available = REFERENCE_IMAGES_AVAILABLE;
if (!available) warnSkipped("vmdk reference-image tests", "qemu-img/qemu-io/jq or ../shared/corpus");

describe.skipIf(!available)("vmdk reference images", () => {
  const refs = available ? referenceImages().filter((i) => i.format === "vmdk") : [];
  let dir = "";
  beforeAll(() => {
    dir = ensureReferenceImages();
  }, 600_000);

  it("covers the four vmdk images", () => {
    expect(refs.map((r) => r.name)).toEqual([
      "vmdk-monolithicSparse", "vmdk-monolithicSparse-zeroed-grain", "vmdk-streamOptimized", "vmdk-monolithicFlat",
    ]);
  });

  for (const ref of refs) {
    it(`${ref.name} reads with raw sha256 ${ref.raw_sha256.slice(0, 12)}…, qemu's info, and checks clean`, async () => {
      // The descriptor of monolithicFlat names its extent: allow files beside the image.
      const img = await openImage(join(dir, "images", ref.files[0].name), { readOnly: true, format: "vmdk", backing: "same-dir" });
      try {
        expect(img.size).toBe(ref.virtual_size);
        expect(await sha256OfDevice(img)).toBe(ref.raw_sha256);
        const info = await img.info();
        expect(info.clusterSize).toBe(ref.qemu_img_info["cluster-size"]);
        const want = (ref.qemu_img_info["format-specific"] as { data: Record<string, unknown> }).data;
        const got = info.formatSpecific!.data as { "create-type": string; extents: Array<Record<string, unknown>> };
        expect(got["create-type"]).toBe(want["create-type"]);
        // The recorded extents leave out the volatile fields (file names).
        expect(got.extents.map(({ filename: _f, ...rest }) => rest)).toEqual(want.extents);
        const c = await img.check();
        expect([c.corruptions, c.leaks, c.checkErrors]).toEqual([0, 0, ref.qemu_img_check["check-errors"]]);
      } finally {
        await img.close();
      }
    });
  }
});

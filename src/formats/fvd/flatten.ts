/**
 * Flatten (`vdisk rebase -b "" img`, qemu-img's "flatten" semantics): pulls every block still
 * in the base image into the FVD image, then sets `all_data_in_fvd_img` — where the original's
 * background prefetch ended (spec §3.6 "Finish"). Afterwards the base image is never read.
 * @module
 */
import type { ImageDevice } from "../../core/image-device.js";
import { ImageError } from "../../errors.js";
import { getKernel } from "../../kernel/index.js";
import { fvdInstanceOf } from "./amend.js";

/** Options of {@link flattenFvdImage}. */
export interface FvdFlattenOptions {
  /** Called after each piece with base-range bytes examined so far and the total. */
  onProgress?: (done: number, total: number) => void;
}

/** Bytes pulled per step (rounded to whole blocks). */
const STEP = 1 << 20;

/**
 * Pulls the base image's remaining data into the FVD image open read-write in `image`. Blocks
 * whose base data is all zeros and which already read zeros in the image (empty chunks, or a
 * zero data area) are only marked, not written. Run it with no other I/O on the image. A no-op
 * when the image does not use its base (`all_data_in_fvd_img` already set).
 */
export async function flattenFvdImage(image: ImageDevice, options: FvdFlattenOptions = {}): Promise<void> {
  const inst = fvdInstanceOf(image, "flatten");
  if (image.readOnly) throw new ImageError("ERR_READ_ONLY", `Cannot flatten ${image.name}: it is open read-only`, { format: "fvd" });
  if (!inst.usesBase) return;
  const kernel = getKernel();
  const total = Math.min(inst.geo.baseSize, inst.size);
  const block = inst.geo.blockSize;
  const step = Math.max(block, Math.floor(STEP / block) * block);
  let pos = 0;
  while (pos < total) {
    const m = await inst.getMapping(pos, total - pos);
    if (m.kind === "eof") break;
    const runEnd = pos + m.length;
    if (m.kind === "backing") {
      for (let s = pos; s < runEnd; ) {
        const len = Math.min(step, runEnd - s);
        const data = await image.read(s, len);
        // Runs of whole zero blocks that already read zeros locally are only marked.
        for (let at = 0; at < len; ) {
          const end = kernel.granuleRunEnd(data, at, len, block);
          const zero = kernel.findNonZero(data, at, end) === end;
          if (zero && (await inst.localReadsZero(s + at, s + end))) await inst.markInImage(s + at, s + end);
          else await image.write(s + at, data.subarray(at, end));
          at = end;
        }
        s += len;
        options.onProgress?.(s, total);
      }
    } else {
      options.onProgress?.(runEnd, total);
    }
    pos = runEnd;
  }
  await image.flush();
  await inst.finishFlatten();
}

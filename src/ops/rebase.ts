/**
 * Changing the backing file of an image (`vdisk rebase`), with qemu-img's two modes:
 * - safe: every range the image reads from its backing file and where the old and the new
 *   backing file differ is copied into the image first, so its guest contents stay the same;
 *   with no new backing file (`-b ""`) that is everything still read from the old one;
 * - unsafe (`-u`): only the reference changes.
 * The reference is written after the copied data is flushed. FVD records no changeable backing
 * reference: its `-b ""` is the format's own flatten, which also ends its prefetching.
 * @module
 */
import type { BlockDevice } from "../core/block-device.js";
import type { BackingReference } from "../core/format.js";
import type { ImageDevice } from "../core/image-device.js";
import { settleAll } from "../core/settle.js";
import { CorruptImageError, UnsupportedFeatureError } from "../errors.js";
import { flattenFvdImage } from "../formats/fvd/flatten.js";
import { getKernel } from "../kernel/index.js";
import type { Kernel } from "../kernel/kernel.js";
import { firstDifference } from "./compare.js";
import type { ProgressCallback } from "./progress.js";

/** Options of {@link rebaseImage}. */
export interface RebaseOptions {
  /** Change the reference only (`-u`): nothing is compared or copied. */
  unsafe?: boolean;
  /**
   * The new backing image (open read-only is enough), needed in safe mode when a new reference
   * is given. The image's old backing image is the one it was opened with.
   */
  newBacking?: BlockDevice;
  kernel?: Kernel;
  /** Bytes compared per read. Default 1 MiB. */
  chunkSize?: number;
  onProgress?: ProgressCallback;
}

/**
 * True when `image` can be rebased onto `ref` in this mode: its format records a changeable
 * backing reference, or it is FVD and the request is a safe flatten.
 */
export function canRebase(image: ImageDevice, ref: BackingReference | undefined, unsafe = false): boolean {
  if (image.format === "fvd") return !ref && !unsafe;
  return typeof image.instance.setBacking === "function";
}

/**
 * Rebases `image` (open read-write with its backing chain, unless `unsafe`) onto `ref`
 * (`undefined`: no backing file). Throws `ERR_UNSUPPORTED_FEATURE` when {@link canRebase} is
 * false, before anything is written. Run it with no other I/O on the image; close and reopen the
 * image afterwards to read through the new backing file.
 */
export async function rebaseImage(
  image: ImageDevice,
  ref: BackingReference | undefined,
  options: RebaseOptions = {},
): Promise<void> {
  if (!canRebase(image, ref, options.unsafe)) {
    const why = image.format === "fvd"
      ? "an fvd image can only be flattened (a safe rebase onto no backing file); its base image name is changed with amend -o base_img=NAME"
      : `the ${image.format} format cannot record a new backing file`;
    throw new UnsupportedFeatureError(`Cannot rebase ${image.name}: ${why}`, { format: image.format, file: image.name });
  }
  if (image.format === "fvd") {
    await flattenFvdImage(image, { onProgress: options.onProgress });
    return;
  }
  if (!options.unsafe) {
    if (ref && !options.newBacking) throw new TypeError("rebaseImage: a safe rebase onto a backing file needs options.newBacking");
    await copyDifferences(image, ref ? options.newBacking : undefined, options);
    await image.flush();
  }
  await image.setBacking(ref);
}

/** Fills `into` with what `dev` holds at `offset`: zeros past its end, or all zeros without it. */
async function readOrZeros(dev: BlockDevice | undefined, offset: number, into: Uint8Array): Promise<void> {
  const n = dev ? Math.max(0, Math.min(into.length, dev.size - offset)) : 0;
  if (n > 0) await dev!.readInto(offset, into.subarray(0, n));
  into.fill(0, n);
}

/**
 * Copies into `image` the parts of the ranges it reads from its backing file where the old
 * backing content differs from `next`'s (zeros where `next` is absent), in whole allocation
 * units of the image (clipped to those ranges).
 */
async function copyDifferences(image: ImageDevice, next: BlockDevice | undefined, options: RebaseOptions): Promise<void> {
  const kernel = options.kernel ?? getKernel();
  const inst = image.instance;
  const old = image.backing;
  const size = image.size;
  const unit = Math.max(1, inst.allocationUnit);
  const chunk = Math.max(unit, Math.floor((options.chunkSize ?? 1 << 20) / unit) * unit);
  const bufOld = new Uint8Array(chunk);
  const bufNew = new Uint8Array(chunk);
  options.onProgress?.(0, size);
  let pos = 0;
  while (pos < size) {
    const m = await inst.getMapping(pos, size - pos);
    if (m.kind === "eof") break;
    if (!(m.length > 0)) {
      throw new CorruptImageError(`${image.format} driver returned an empty ${m.kind} mapping at guest offset ${pos}`, {
        format: image.format,
        file: image.name,
      });
    }
    const runEnd = Math.min(size, pos + m.length);
    if (m.kind === "backing") {
      for (let s = pos; s < runEnd;) {
        const n = Math.min(chunk, runEnd - s);
        const vOld = bufOld.subarray(0, n);
        const vNew = bufNew.subarray(0, n);
        await settleAll([readOrZeros(old, s, vOld), readOrZeros(next, s, vNew)]);
        // Runs of differing units, each written as one request.
        let runStart = -1;
        const flushRun = async (end: number): Promise<void> => {
          const data = vOld.subarray(runStart - s, end - s);
          // Zeros over an old backing file become the format's zero ranges; without one the
          // range reads zeros only until the new backing file is set, so zeros are written.
          if (old && kernel.findNonZero(data, 0, data.length) === data.length) await image.writeZeroes(runStart, data.length);
          else await image.write(runStart, data);
          runStart = -1;
        };
        for (let g = s; g < s + n;) {
          const gEnd = Math.min(s + n, (Math.floor(g / unit) + 1) * unit);
          const len = gEnd - g;
          const differs = firstDifference(vOld.subarray(g - s, gEnd - s), vNew.subarray(g - s, gEnd - s), len) < len;
          if (differs && runStart < 0) runStart = g;
          else if (!differs && runStart >= 0) await flushRun(g);
          g = gEnd;
        }
        if (runStart >= 0) await flushRun(s + n);
        s += n;
        options.onProgress?.(s, size);
      }
    }
    pos = runEnd;
    options.onProgress?.(pos, size);
  }
}

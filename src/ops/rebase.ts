/**
 * Changing the backing file of an image (`vdisk rebase`), with qemu-img's two modes:
 * - safe: every range the image reads from its backing file and where the old and the new
 *   backing file differ is copied into the image first, so its guest contents stay the same;
 *   with no new backing file (`-b ""`) that is everything still read from the old one;
 * - unsafe (`-u`): only the reference changes.
 * The reference is written after the copied data is flushed. Formats that can only drop their
 * backing file after a full copy (capability `flatten`: FVD) take the safe `-b ""` only.
 * @module
 */
import { throwIfAborted, type OperationOptions } from "../core/abort.js";
import type { BlockDevice } from "../core/block-device.js";
import type { BackingReference } from "../core/format.js";
import { ImageError, UnsupportedFeatureError } from "../errors.js";
import type { Kernel } from "../kernel/kernel.js";

/** Options of {@link rebaseImage}. */
export interface RebaseOptions extends OperationOptions {
  /** Change the reference only (`-u`): nothing is compared or copied. */
  unsafe?: boolean;
  /**
   * The new backing image (open read-only is enough), needed in safe mode when a new reference
   * is given. The image's old backing image is the one it was opened with.
   */
  newBacking?: BlockDevice;
  /** Unused; kept for callers of earlier versions. */
  kernel?: Kernel;
  /** Bytes compared per read. Default 1 MiB. */
  chunkSize?: number;
}

/**
 * True when `image` can be rebased onto `ref` in this mode: it records a changeable backing
 * reference (capability `backing`), or the request is a safe flatten and it can flatten.
 */
export function canRebase(image: BlockDevice, ref: BackingReference | undefined, unsafe = false): boolean {
  const caps = image.capabilities;
  if (caps.backing) return true;
  return caps.flatten && !ref && !unsafe;
}

/** The sentence saying why {@link canRebase} is false for `image`. */
export function whyNoRebase(image: BlockDevice): string {
  return image.capabilities.flatten
    ? `${image.format} images can only be flattened (a safe rebase with -b "")`
    : `the ${image.format} format cannot record a new backing file`;
}

/** The engine primitive a safe rebase needs (ImageDevice has it). */
interface CopiesFromBacking {
  copyFromBacking(
    start: number,
    length: number,
    options: { compareWith?: BlockDevice | null; chunkSize?: number } & OperationOptions,
  ): Promise<number>;
}

function hasCopyFromBacking(d: BlockDevice): d is BlockDevice & CopiesFromBacking {
  return typeof (d as Partial<CopiesFromBacking>).copyFromBacking === "function";
}

/**
 * Rebases `image` (open read-write with its backing chain, unless `unsafe`) onto `ref`
 * (`undefined`: no backing file). Throws `ERR_UNSUPPORTED_FEATURE` when {@link canRebase} is
 * false, before anything is written. Run it with no other I/O on the image; close and reopen the
 * image afterwards to read through the new backing file. When `signal` aborts during the copy,
 * the copied data is flushed, the reference is left unchanged (the image reads as before) and
 * the promise rejects with the signal's reason.
 */
export async function rebaseImage(
  image: BlockDevice,
  ref: BackingReference | undefined,
  options: RebaseOptions = {},
): Promise<void> {
  if (!canRebase(image, ref, options.unsafe) || !image.setBacking) {
    throw new UnsupportedFeatureError(`Cannot rebase ${image.format} image: ${whyNoRebase(image)}`, { format: image.format });
  }
  throwIfAborted(options.signal);
  if (!options.unsafe) {
    if (ref && !options.newBacking) throw new TypeError("rebaseImage: a safe rebase onto a backing file needs options.newBacking");
    if (!hasCopyFromBacking(image)) {
      throw new ImageError("ERR_UNSUPPORTED_FEATURE", "rebaseImage: a safe rebase needs a device that can copy from its backing file", {
        format: image.format,
      });
    }
    // Dropping the backing file: copy what differs from zeros; a format that can only flatten
    // takes every block (its own storage may not read zeros where the base was read).
    const flattenOnly = !image.capabilities.backing;
    try {
      await image.copyFromBacking(0, image.size, {
        compareWith: ref ? options.newBacking : flattenOnly ? undefined : null,
        chunkSize: options.chunkSize,
        signal: options.signal,
        onProgress: options.onProgress,
      });
    } finally {
      await image.flush();
    }
  }
  throwIfAborted(options.signal);
  await image.setBacking(ref);
}

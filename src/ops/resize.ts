/**
 * Changing the virtual size of an image (`vdisk resize`) with qemu-img's rules: a size relative
 * to the current one, no shrinking unless asked, sizes in the format's unit (whole sectors for
 * image formats, any byte count for raw).
 * @module
 */
import { throwIfAborted, type OperationOptions } from "../core/abort.js";
import type { BlockDevice } from "../core/block-device.js";
import { ImageError, UnsupportedFeatureError } from "../errors.js";

/** A requested size: absolute, or relative to the current size (`+1G`, `-512M`). */
export interface ResizeRequest {
  readonly bytes: number;
  /** 1 to grow by `bytes`, -1 to shrink by `bytes`, 0 for an absolute size. */
  readonly sign: -1 | 0 | 1;
}

/** Options of {@link resizeImage}. */
export interface ResizeOptions extends Pick<OperationOptions, "signal"> {
  /** Allow a smaller size (qemu-img's `--shrink`). Data past the new end is lost. */
  shrink?: boolean;
}

/** The size `request` asks for on a disk of `current` bytes (may be zero or negative). */
export function resizeTarget(current: number, request: ResizeRequest): number {
  return request.sign === 0 ? request.bytes : current + request.sign * request.bytes;
}

/** True when the image's format can change its virtual size (capability `resize`). */
export function canResize(image: BlockDevice): boolean {
  return image.capabilities.resize && typeof image.resize === "function";
}

/**
 * Resizes `image` (open read-write) to `newSize` bytes. Throws `RangeError` for a size that is
 * not positive, or not a multiple of the format's unit (512 for image formats; raw takes any
 * byte count); `ERR_INVALID_OPTION` for a shrink without `shrink`; `ERR_UNSUPPORTED_FEATURE`
 * when the format cannot resize. Formats may still refuse a size (qed cannot shrink). The new
 * size is durable when the promise resolves.
 */
export async function resizeImage(image: BlockDevice, newSize: number, options: ResizeOptions = {}): Promise<void> {
  throwIfAborted(options.signal);
  if (!Number.isSafeInteger(newSize) || newSize <= 0) throw new RangeError("New image size must be positive");
  if (newSize < image.size && !options.shrink) {
    throw new ImageError(
      "ERR_INVALID_OPTION",
      `Shrinking the ${image.format} image from ${image.size} to ${newSize} bytes deletes the data past the new end: ask for a shrink explicitly`,
      { format: image.format },
    );
  }
  if (!canResize(image)) {
    throw new UnsupportedFeatureError("Image format driver does not support resize", { format: image.format });
  }
  const align = image.capabilities.resizeAlignment;
  if (newSize % align !== 0) throw new RangeError(`The new size must be a multiple of ${align}`);
  await image.resize!(newSize);
  await image.flush();
}

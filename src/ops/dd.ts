/**
 * `qemu-img dd`: copy `count` blocks of `blockSize` bytes from block `skip` of the source into a
 * new image — a {@link convertImage} of a window ({@link OffsetDevice}) of the source.
 * @module
 */
import type { OperationOptions } from "../core/abort.js";
import type { BlockDevice } from "../core/block-device.js";
import { OffsetDevice } from "../filters/offset.js";
import { convertImage, type ConvertStats } from "./convert.js";

/** Options of {@link ddImage} and {@link ddPlan}. */
export interface DdOptions extends OperationOptions {
  /** Bytes per block (`bs=`). Default 512, as qemu-img. */
  blockSize?: number;
  /**
   * `count=`: as qemu-img, the copy ends at block `count` of the source (counted from its
   * start, skipped blocks included) or at its end, whichever comes first. Default: its end.
   */
  count?: number;
  /** Blocks of the source to skip first (`skip=`). Default 0. */
  skip?: number;
}

/** What a dd copies: the source window and the size the target is created with. */
export interface DdPlan {
  /** First source byte copied. */
  readonly start: number;
  /** Bytes copied. */
  readonly length: number;
  /** The size to create the target with: `length` rounded up to whole 512-byte sectors. */
  readonly targetSize: number;
  /** `skip` points past the end of the source: nothing is copied (qemu-img says so, exit 0). */
  readonly skipPastEnd: boolean;
}

/** The copy a dd of `sourceSize` bytes with `options` makes. Throws RangeError for bad values. */
export function ddPlan(sourceSize: number, options: DdOptions = {}): DdPlan {
  const bs = options.blockSize ?? 512;
  const skip = options.skip ?? 0;
  if (!Number.isSafeInteger(bs) || bs < 1 || bs > 0x7fffffff) throw new RangeError("Invalid bs specified. Must be between 1 and 2147483647.");
  if (!Number.isSafeInteger(skip) || skip < 0) throw new RangeError(`Invalid skip ${skip}`);
  if (options.count !== undefined && (!Number.isSafeInteger(options.count) || options.count < 0)) {
    throw new RangeError(`Invalid count ${options.count}`);
  }
  const start = skip * bs;
  const end = options.count === undefined ? sourceSize : Math.min(sourceSize, options.count * bs);
  const skipPastEnd = !Number.isSafeInteger(start) || start > end;
  const length = skipPastEnd ? 0 : end - start;
  return { start: skipPastEnd ? 0 : start, length, targetSize: Math.ceil(length / 512) * 512, skipPastEnd };
}

/**
 * Copies the window {@link ddPlan} describes from `source` into `target` (created with at least
 * `targetSize` bytes) at offset 0, with convert's zero detection and pipelining. Honours
 * `signal` and reports progress as {@link convertImage} does.
 */
export async function ddImage(source: BlockDevice, target: BlockDevice, options: DdOptions = {}): Promise<ConvertStats> {
  const plan = ddPlan(source.size, options);
  const window = new OffsetDevice(source, { start: plan.start, length: plan.length });
  return convertImage(window, target, { signal: options.signal, onProgress: options.onProgress, targetIsZero: true });
}

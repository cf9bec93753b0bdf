/**
 * `qemu-img measure` as a library function: the file size a new image of a format needs, for
 * an empty image of a given size or for a convert of a source device.
 * @module
 */
import type { BlockDevice } from "../core/block-device.js";
import type { FormatDriver } from "../core/format.js";
import type { GuestRange, MeasureResult } from "../core/measure.js";
import { parseCreateOptions, parseSize, splitOptionString } from "../core/options.js";
import { ImageError, UnsupportedFeatureError } from "../errors.js";
import { builtinDrivers, findDriver } from "../formats/registry.js";
import { progressReporter, throwIfAborted, type OperationOptions, type ProgressListener } from "./progress.js";

/** Options of {@link measureImage}. */
export interface MeasureImageOptions extends OperationOptions {
  /** Target format name (or alias), e.g. `qcow2`. */
  format: string;
  /**
   * Create options of the target, as `-o` text (`cluster_size=2M,compat=0.10`) or name/value
   * pairs. `backing_file`/`backing_fmt` are accepted as in create; `size` is used when neither
   * `size` nor `source` is given.
   */
  options?: string | Readonly<Record<string, string | number | boolean>>;
  /** Virtual size in bytes of the image to measure, when there is no source. */
  size?: number;
  /** The image to be converted: its size and allocation (its whole backing chain) count. */
  source?: BlockDevice;
  /** Drivers to look the format up in (default: the built-in ones). */
  drivers?: readonly FormatDriver[];
}

/**
 * The source's data ranges (not reading as zeros, through its backing chain), merged into
 * sorted, disjoint, non-touching ranges. One pass over the allocation map.
 */
async function allocatedRanges(
  source: BlockDevice,
  signal: AbortSignal | undefined,
  onProgress: ProgressListener | undefined,
): Promise<GuestRange[]> {
  const ranges: Array<{ offset: number; length: number }> = [];
  const total = source.size;
  const progress = progressReporter(total, onProgress);
  progress(0);
  if (total > 0) {
    for await (const e of source.extents(0, total)) {
      throwIfAborted(signal);
      if (e.data && !e.zero) {
        const last = ranges[ranges.length - 1];
        if (last && last.offset + last.length === e.offset) last.length += e.length;
        else ranges.push({ offset: e.offset, length: e.length });
      }
      progress(e.offset + e.length);
    }
  }
  throwIfAborted(signal);
  return ranges;
}

/**
 * The bytes a new image of `options.format` needs, as `qemu-img measure` reports them: for an
 * empty image of `options.size`, or for a convert of `options.source`. Exactly one of the two
 * is given (a `TypeError` otherwise; `size` may also come from `options.options`).
 * `required`: the file size of the converted (or new empty) image; `fullyAllocated`: the size
 * once every guest byte is written; `bitmaps`: extra bytes for the source's persistent bitmaps,
 * present only when both the source and the target format can keep them.
 * Rejects with `ImageError` `ERR_UNKNOWN_FORMAT` for an unknown format, `ERR_INVALID_OPTION`
 * for a bad option, `ERR_UNSUPPORTED_FEATURE` when the driver cannot measure.
 */
export async function measureImage(options: MeasureImageOptions): Promise<MeasureResult> {
  const { source, signal } = options;
  throwIfAborted(signal);
  const driver = findDriver(options.format, options.drivers ?? builtinDrivers);
  if (!driver) throw new ImageError("ERR_UNKNOWN_FORMAT", `Unknown file format '${options.format}'`);
  const pairs: Array<[string, string | number | boolean]> =
    typeof options.options === "string" ? splitOptionString(options.options) : Object.entries(options.options ?? {});
  const own: Array<[string, string | number | boolean]> = [];
  let optionSize: string | number | boolean | undefined;
  let backingFile: string | undefined;
  for (const [name, value] of pairs) {
    if (name === "size") optionSize = value;
    else if (name === "backing_file") backingFile = String(value);
    else if (name !== "backing_fmt") own.push([name, value]);
  }
  const values = parseCreateOptions(driver.name, driver.measureOptions ?? driver.createOptions, own);
  if (source && options.size !== undefined) throw new TypeError("measureImage: give either size or source, not both");
  let size = source ? source.size : options.size;
  if (size === undefined && optionSize !== undefined) {
    size = typeof optionSize === "number" ? optionSize : parseSize(String(optionSize));
  }
  if (size === undefined) throw new TypeError("measureImage: either size or source must be given");
  if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`measureImage: size ${size} is not a byte count`);
  if (!driver.measure) {
    throw new UnsupportedFeatureError(`Block driver '${driver.name}' does not support size measurement`, {
      format: driver.name,
    });
  }
  if (!source) return driver.measure({ size, options: values, backingFile });
  const allocated = await allocatedRanges(source, signal, options.onProgress);
  const sourceBitmaps = (await source.info()).persistentBitmaps;
  return driver.measure({ size, options: values, allocated, backingFile, sourceBitmaps });
}

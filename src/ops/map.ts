/**
 * The allocation map of a virtual disk (`vdisk map`) as qemu-img's map records.
 * @module
 */
import { throwIfAborted, type OperationOptions } from "../core/abort.js";
import type { BlockDevice } from "../core/block-device.js";

/** Options of {@link mapImage}. */
export interface MapOptions extends OperationOptions {
  /** Guest offset to start at. Default 0. */
  start?: number;
  /** Bytes to map. Default: to the end of the disk. */
  length?: number;
}

/** One record with `qemu-img map --output=json` meanings. */
export interface MapEntry {
  start: number;
  length: number;
  /** Index in the backing chain of the image that answers (0 = top). */
  depth: number;
  present: boolean;
  zero: boolean;
  data: boolean;
  /** Host offset where the data is stored verbatim (absent for compressed data and holes). */
  offset?: number;
  /** The file holding the data, when `offset` is set. */
  filename?: string;
}

/**
 * The records of `[start, start+length)` in order, adjacent records with the same status and
 * contiguous host offsets merged, as qemu-img does (`qemu-img map --output=json` fields, with
 * `start`/`length`/`offset` in bytes). Progress counts mapped bytes; `signal` is checked
 * between records. `mapImage(device, start, length)` is the form of earlier versions.
 */
export async function* mapImage(
  device: BlockDevice,
  options: MapOptions | number = {},
  legacyLength?: number,
): AsyncGenerator<MapEntry> {
  const opts: MapOptions = typeof options === "number" ? { start: options, length: legacyLength } : options;
  const start = opts.start ?? 0;
  const length = opts.length ?? device.size - start;
  throwIfAborted(opts.signal);
  if (length <= 0) return;
  opts.onProgress?.({ done: 0, total: length });
  for await (const e of device.extents(start, length)) {
    throwIfAborted(opts.signal);
    opts.onProgress?.({ done: e.offset + e.length - start, total: length });
    const entry: MapEntry = {
      start: e.offset,
      length: e.length,
      depth: e.depth,
      present: e.present,
      zero: e.zero,
      data: e.data,
    };
    if (e.fileOffset !== undefined && !e.compressed) {
      entry.offset = e.fileOffset;
      entry.filename = e.file;
    }
    yield entry;
  }
}

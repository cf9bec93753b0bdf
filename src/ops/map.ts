/**
 * The allocation map of a virtual disk (`vdisk map`) as qemu-img's map records.
 * @module
 */
import type { BlockDevice } from "../core/block-device.js";

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
 * contiguous host offsets merged, as qemu-img does.
 */
export async function* mapImage(device: BlockDevice, start = 0, length = device.size - start): AsyncGenerator<MapEntry> {
  if (length <= 0) return;
  for await (const e of device.extents(start, length)) {
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

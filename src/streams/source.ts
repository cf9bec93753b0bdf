/**
 * A {@link BlockDevice} as a sequential writer's source: its data ranges from one pass over the
 * allocation map, and reads that stop once the operation is aborted.
 * @module
 */
import type { BlockDevice } from "../core/block-device.js";
import type { SequentialDataRange, SequentialSource } from "../core/sequential-writer.js";
import { checkAborted } from "./abort.js";

/**
 * The ranges of `device` that do not read as known zeros (data, or anything the map does not
 * call zero), merged, in order.
 */
export async function dataRangesOf(device: BlockDevice, signal?: AbortSignal): Promise<SequentialDataRange[]> {
  const out: Array<{ offset: number; length: number }> = [];
  for await (const e of device.extents(0, device.size)) {
    checkAborted(signal);
    if (e.zero || e.length <= 0) continue;
    const last = out[out.length - 1];
    if (last && last.offset + last.length === e.offset) last.length += e.length;
    else out.push({ offset: e.offset, length: e.length });
  }
  return out;
}

/** `device` as a {@link SequentialSource}. */
export async function sequentialSource(device: BlockDevice, signal?: AbortSignal): Promise<SequentialSource> {
  const dataRanges = device.size === 0 ? [] : await dataRangesOf(device, signal);
  return {
    size: device.size,
    dataRanges,
    async readInto(offset, into) {
      checkAborted(signal);
      if (into.length === 0) return;
      // A unit at the end of the disk may be asked for whole: the part past the end is zeros.
      const n = Math.max(0, Math.min(into.length, device.size - offset));
      if (n > 0) await device.readInto(offset, into.subarray(0, n));
      if (n < into.length) into.fill(0, n);
      checkAborted(signal);
    },
  };
}

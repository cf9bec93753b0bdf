/**
 * The zero-scan pass: narrows a source's data ranges to the units that hold a non-zero byte,
 * for writers whose layout is fixed before the data is written.
 * @module
 */
import type { SequentialDataRange, SequentialSource } from "../core/sequential-writer.js";
import type { Kernel } from "../kernel/kernel.js";

/** Bytes read per request. */
const READ_BYTES = 4 << 20;

/**
 * The units of `unitBytes` (aligned to guest offset 0) inside `source.dataRanges` that hold a
 * non-zero byte, as merged ranges clipped to the disk. Reads every data range once (one reused
 * buffer); `progress` gets the bytes read.
 */
export async function scanNonZeroUnits(
  source: SequentialSource,
  unitBytes: number,
  kernel: Kernel,
  progress: (bytes: number) => void,
): Promise<SequentialDataRange[]> {
  const out: Array<{ offset: number; length: number }> = [];
  const add = (offset: number, end: number): void => {
    const last = out[out.length - 1];
    if (last && last.offset + last.length >= offset) last.length = Math.max(last.length, end - last.offset);
    else out.push({ offset, length: end - offset });
  };
  const chunk = Math.max(unitBytes, READ_BYTES - (READ_BYTES % unitBytes));
  const buf = kernel.allocBuffer(chunk);
  try {
    for (const r of source.dataRanges) {
      let pos = Math.floor(r.offset / unitBytes) * unitBytes;
      const end = Math.min(source.size, Math.ceil((r.offset + r.length) / unitBytes) * unitBytes);
      while (pos < end) {
        const n = Math.min(chunk, end - pos);
        const view = buf.subarray(0, n);
        await source.readInto(pos, view);
        progress(Math.min(pos + n, r.offset + r.length) - Math.max(pos, r.offset));
        for (let u = 0; u < n; u += unitBytes) {
          const ue = Math.min(n, u + unitBytes);
          if (kernel.findNonZero(view, u, ue) < ue) add(pos + u, pos + ue);
        }
        pos += n;
      }
    }
  } finally {
    kernel.freeBuffer(buf);
  }
  return out;
}

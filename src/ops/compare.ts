/**
 * Comparing the guest contents of two virtual disks (`vdisk compare`) with qemu-img's
 * semantics: ranges both images know to be zero are not read; a part only the larger image has
 * must read as zeros; strict mode also demands equal sizes and equal allocation status.
 * Mismatch offsets are reported at 512-byte granularity, as qemu-img does.
 * @module
 */
import { firstDifference } from "../core/bytes.js";
import type { BlockDevice, Extent } from "../core/block-device.js";
import { settleAll } from "../core/settle.js";
import { getKernel } from "../kernel/index.js";
import type { Kernel } from "../kernel/kernel.js";
import { progressReporter, throwIfAborted, type OperationOptions } from "../core/abort.js";

/** Options of {@link compareImages}. */
export interface CompareOptions extends OperationOptions {
  /** Also fail on different sizes or allocation status (`-s`). */
  strict?: boolean;
  kernel?: Kernel;
  /** Bytes compared per read. Default 2 MiB. */
  chunkSize?: number;
  /**
   * A fast equality test for two buffers of the same length (a runtime's `memcmp`, such as
   * Node's `Buffer.equals`). The byte-by-byte search then only runs on chunks that differ.
   */
  equal?: (a: Uint8Array, b: Uint8Array) => boolean;
}

/**
 * The outcome of {@link compareImages}. `sizeMismatch` is true when the sizes differ and the
 * common part matched (qemu-img prints its size warning then, before the verdict).
 */
export type CompareResult =
  | { readonly kind: "identical"; readonly sizeMismatch: boolean }
  | { readonly kind: "content-mismatch"; readonly offset: number; readonly sizeMismatch: boolean }
  /** Strict mode: the sizes differ. */
  | { readonly kind: "size-mismatch" }
  /** Strict mode: allocation status differs at `offset`. */
  | { readonly kind: "status-mismatch"; readonly offset: number };

const SECTOR = 512;

/** Reads extents one at a time, clipped to whatever the caller consumes. */
class ExtentCursor {
  private readonly it: AsyncIterator<Extent>;
  private cur: Extent | undefined;
  constructor(private readonly device: BlockDevice, offset: number, end: number) {
    this.it = device.extents(offset, end - offset)[Symbol.asyncIterator]();
  }
  /** The extent covering `offset` (the cursor only moves forward). */
  async at(offset: number): Promise<Extent> {
    while (!this.cur || this.cur.offset + this.cur.length <= offset) {
      const r = await this.it.next();
      if (r.done) throw new RangeError(`No allocation status for offset ${offset} of a ${this.device.size}-byte image`);
      this.cur = r.value;
    }
    return this.cur;
  }
}

/** qemu's block status bits that strict mode compares. */
function statusBits(e: Extent, size: number): number {
  return (e.data ? 1 : 0) | (e.zero ? 2 : 0) | (e.fileOffset !== undefined ? 4 : 0) |
    (e.present ? 16 : 0) | (e.offset + e.length >= size ? 32 : 0);
}


/**
 * Compares `a` and `b`. Never writes. Checks `signal` between reads and rejects with its
 * reason; progress runs from 0 to the larger size.
 */
export async function compareImages(a: BlockDevice, b: BlockDevice, options: CompareOptions = {}): Promise<CompareResult> {
  const kernel = options.kernel ?? getKernel();
  const chunkMax = Math.max(SECTOR, options.chunkSize ?? 2 << 20);
  const sizeA = a.size;
  const sizeB = b.size;
  const common = Math.min(sizeA, sizeB);
  const total = Math.max(sizeA, sizeB);
  const sizeMismatch = sizeA !== sizeB;
  if (options.strict && sizeMismatch) return { kind: "size-mismatch" };
  const report = progressReporter(total, options.onProgress);
  const signal = options.signal;
  throwIfAborted(signal);
  report(0);
  const bufA = kernel.allocBuffer(chunkMax);
  const bufB = kernel.allocBuffer(chunkMax);
  try {
    /** Offset of the first non-zero sector of `dev` in `[offset, offset+len)`, or -1. */
    const nonZeroAt = async (dev: BlockDevice, offset: number, len: number): Promise<number> => {
      for (let pos = 0; pos < len; pos += chunkMax) {
        throwIfAborted(signal);
        const n = Math.min(chunkMax, len - pos);
        const view = bufA.subarray(0, n);
        await dev.readInto(offset + pos, view);
        const idx = kernel.findNonZero(view, 0, n);
        if (idx < n) return offset + pos + idx - (idx % SECTOR);
      }
      return -1;
    };

    let offset = 0;
    if (common > 0) {
      const ca = new ExtentCursor(a, 0, common);
      const cb = new ExtentCursor(b, 0, common);
      while (offset < common) {
        const ea = await ca.at(offset);
        const eb = await cb.at(offset);
        const chunk = Math.min(ea.offset + ea.length, eb.offset + eb.length, common) - offset;
        if (options.strict && statusBits(ea, sizeA) !== statusBits(eb, sizeB)) {
          return { kind: "status-mismatch", offset };
        }
        if (ea.zero && eb.zero) {
          // Both read as zeros: nothing to compare.
        } else if (ea.present === eb.present) {
          if (ea.present) {
            for (let pos = 0; pos < chunk; pos += chunkMax) {
              throwIfAborted(signal);
              const n = Math.min(chunkMax, chunk - pos);
              const va = bufA.subarray(0, n);
              const vb = bufB.subarray(0, n);
              await settleAll([a.readInto(offset + pos, va), b.readInto(offset + pos, vb)]);
              if (!options.equal?.(va, vb)) {
                const idx = firstDifference(va, vb, n);
                if (idx < n) {
                  return { kind: "content-mismatch", offset: offset + pos + idx - (idx % SECTOR), sizeMismatch: false };
                }
              }
              report(offset + pos + n);
            }
          }
        } else {
          const at = await nonZeroAt(ea.present ? a : b, offset, chunk);
          if (at >= 0) return { kind: "content-mismatch", offset: at, sizeMismatch: false };
        }
        offset += chunk;
        throwIfAborted(signal);
        report(offset);
      }
    }
    if (sizeMismatch) {
      const over = sizeA > sizeB ? a : b;
      for await (const e of over.extents(common, total - common)) {
        if (e.present && !e.zero) {
          const at = await nonZeroAt(over, e.offset, e.length);
          if (at >= 0) return { kind: "content-mismatch", offset: at, sizeMismatch };
        }
        throwIfAborted(signal);
        report(e.offset + e.length);
      }
    }
    report(total);
    return { kind: "identical", sizeMismatch };
  } finally {
    kernel.freeBuffer(bufA);
    kernel.freeBuffer(bufB);
  }
}

export { firstDifference };

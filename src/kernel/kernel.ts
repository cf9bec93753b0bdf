/**
 * The hot loops of vdisk behind one interface, implemented twice: in WebAssembly
 * (`assembly/`, loaded by `wasm-kernel.ts`) and in TypeScript (`ts-kernel.ts`, the twin and
 * the fallback). Both must give identical answers for every input.
 * @module
 */

/**
 * The kernel contract. Buffers may be any `Uint8Array`; the Wasm kernel scans buffers that are
 * views of its own memory in place (see {@link Kernel.allocBuffer}) and uses the TS twin for
 * others, because copying into Wasm memory costs more than the scan itself.
 */
export interface Kernel {
  /** `wasm` or `ts`. */
  readonly kind: "wasm" | "ts";
  /** Index of the first non-zero byte of `buf[from, to)`, or `to` when all are zero. */
  findNonZero(buf: Uint8Array, from: number, to: number): number;
  /**
   * Splits `buf[from, to)` into granules of `granule` bytes counted from `from` (the last may be
   * shorter) and returns the end of the run that starts at `from`: a run of all-zero granules when
   * the first granule is all zeros, else a run of granules that each hold a non-zero byte.
   * Returns `from` when `from >= to`.
   */
  granuleRunEnd(buf: Uint8Array, from: number, to: number, granule: number): number;
  /**
   * Index of the first set bit in `[from, to)` of bitmap `bits`, or `to`. Bit `i` lives in byte
   * `i >> 3`; within a byte bit 0 is the least significant unless `msbFirst`.
   */
  nextSetBit(bits: Uint8Array, from: number, to: number, msbFirst: boolean): number;
  /** Like {@link Kernel.nextSetBit} for a clear bit. */
  nextClearBit(bits: Uint8Array, from: number, to: number, msbFirst: boolean): number;
  /**
   * Length of the run of table entries starting at entry `first` (exclusive end `end`) that
   * translate alike. Entries are big-endian u64 at `stride` bytes apart (8, or 16 for qcow2
   * extended L2). With `cls = v & classMask` and `off = v & offsetMask` (masks given as hi/lo
   * u32 halves), entry k continues the run when its `cls` equals the first entry's and, if the
   * first entry's `off` is non-zero, its `off` equals first `off + (k - first) * step`.
   * Returns at least 1 when `first < end`, 0 otherwise.
   */
  tableRunLength(
    table: Uint8Array,
    first: number,
    end: number,
    stride: number,
    classMaskHi: number,
    classMaskLo: number,
    offsetMaskHi: number,
    offsetMaskLo: number,
    step: number,
  ): number;
  /** CRC-32C (Castagnoli) of `data`, continuing from `crc` (0 to start). */
  crc32c(data: Uint8Array, crc?: number): number;
  /**
   * A buffer of `size` bytes the kernel can scan without copying (a view of Wasm memory for
   * the Wasm kernel). It stays valid until {@link Kernel.freeBuffer}; it is not zeroed.
   */
  allocBuffer(size: number): Uint8Array;
  /** Returns a buffer from {@link Kernel.allocBuffer}. */
  freeBuffer(buf: Uint8Array): void;
}

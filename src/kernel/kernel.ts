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
 *
 * Positions are integers. A non-empty range that does not lie inside the buffer (or bitmap, or
 * table) is a `RangeError` in both kernels, so the Wasm kernel never reads memory outside the
 * caller's view; an empty range (`from >= to`) is never an error.
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
   * Offsets compare exactly, with u64 wrap-around. `stride` is an integer >= 8 and `step` an
   * integer in [0, 2^53]. Returns at least 1 when `first < end`, 0 otherwise.
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
   * the Wasm kernel, which never grows its memory, so the view is never detached). It stays
   * valid until {@link Kernel.freeBuffer}; it is not zeroed. When the Wasm arena is full the
   * result is a plain zeroed `Uint8Array`, which works everywhere but is scanned by the TS twin.
   * `size` must be a non-negative integer (else `RangeError`).
   */
  allocBuffer(size: number): Uint8Array;
  /**
   * Returns a buffer from {@link Kernel.allocBuffer} (pass the buffer itself, or a view that
   * starts at its first byte); the buffer must not be used afterwards. Plain buffers are ignored.
   * Throws `RangeError` for a view of kernel memory that does not start a live allocation
   * (double free).
   */
  freeBuffer(buf: Uint8Array): void;
}

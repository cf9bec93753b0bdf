/**
 * The WebAssembly kernel: loads the module built from `assembly/` (embedded as base64 by
 * `scripts/build-kernel.mjs`) and wraps its numbers-and-pointers exports as a {@link Kernel}.
 *
 * Memory: the module's linear memory is fixed at instantiation (64 MiB; pages never touched cost
 * nothing) and never grows, because growing detaches every view JavaScript holds. All of it above
 * the static data is an arena handed out by {@link Kernel.allocBuffer} in 4 KiB granules. Kernel
 * functions scan buffers that are views of that memory in place, by pointer; any other buffer is
 * passed to the TS twin, since copying it in would cost more than scanning it.
 * @module
 */
import { KERNEL_WASM_BASE64 } from "./generated/kernel-wasm.js";
import { checkGranule, checkRange, checkSize, checkTable } from "./kernel-args.js";
import type { Kernel } from "./kernel.js";
import { tsKernel } from "./ts-kernel.js";

/** The exports of `assembly/index.ts`. Pointers and results are u32 addresses (read back `>>> 0`). */
interface KernelExports {
  readonly memory: WebAssembly.Memory;
  findNonZero(start: number, end: number): number;
  granuleRunEnd(start: number, end: number, granule: number): number;
  nextSetBit(ptr: number, from: number, to: number, msbFirst: number): number;
  nextClearBit(ptr: number, from: number, to: number, msbFirst: number): number;
  tableRunLength(
    ptr: number, first: number, end: number, stride: number,
    classMaskHi: number, classMaskLo: number, offsetMaskHi: number, offsetMaskLo: number, step: number,
  ): number;
  crc32c(ptr: number, len: number, crc: number): number;
  alloc(size: number): number;
  free(ptr: number): number;
  arenaBase(): number;
  arenaBytes(): number;
  arenaBytesInUse(): number;
}

const EXPORTED_FUNCTIONS = [
  "findNonZero", "granuleRunEnd", "nextSetBit", "nextClearBit", "tableRunLength", "crc32c",
  "alloc", "free", "arenaBase", "arenaBytes", "arenaBytesInUse",
] as const;

/** A {@link Kernel} backed by WebAssembly, with its arena's figures. */
export interface WasmKernel extends Kernel {
  readonly kind: "wasm";
  /** Bytes of Wasm memory that {@link Kernel.allocBuffer} can hand out (about 64 MiB). */
  readonly arenaBytes: number;
  /** Bytes currently handed out, rounded up to 4 KiB per buffer. */
  arenaBytesInUse(): number;
  /** Whether `buf` is a view of this kernel's memory (and so is scanned in place). */
  ownsBuffer(buf: Uint8Array): boolean;
}

/**
 * A compiled kernel module: the `WebAssembly.Module` that {@link compileKernelModule} gives
 * (possibly posted to another worker). Spelled without naming `WebAssembly`, so that vdisk's
 * declarations type-check in projects whose libraries lack it (a Node project with
 * `lib: ["ES2022"]` and `types: ["node"]`); there it is any object.
 */
export type KernelModule = typeof globalThis extends {
  WebAssembly: { Module: abstract new (...args: never[]) => infer M };
}
  ? M
  : object;

let compiled: Promise<KernelModule> | undefined;

/** The kernel's WebAssembly module bytes (a fresh copy). */
export function kernelWasmBytes(): Uint8Array<ArrayBuffer> {
  const text = atob(KERNEL_WASM_BASE64);
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return bytes;
}

/**
 * Compiles the embedded module, asynchronously (browsers refuse synchronous compiles of large
 * modules on the main thread), once per realm; later calls return the same promise. The module
 * can be posted to workers and passed to `loadKernel` there to skip compiling again.
 */
export function compileKernelModule(): Promise<KernelModule> {
  compiled ??= WebAssembly.compile(kernelWasmBytes());
  return compiled;
}

/**
 * Instantiates a new Wasm kernel from `module` (default: the embedded module, compiled once).
 * Each call makes a separate instance with its own 64 MiB memory; most callers want the shared
 * one from `loadKernel`. Rejects when WebAssembly or its SIMD extension is unavailable, or when
 * `module` is not the vdisk kernel.
 */
export async function instantiateWasmKernel(module?: KernelModule): Promise<WasmKernel> {
  const instance = await WebAssembly.instantiate(module ?? (await compileKernelModule()), {});
  const exports = instance.exports as Record<string, unknown>;
  for (const name of EXPORTED_FUNCTIONS) {
    if (typeof exports[name] !== "function") throw new TypeError(`Wasm module is not the vdisk kernel: it lacks export ${name}`);
  }
  if (!(exports.memory instanceof WebAssembly.Memory)) throw new TypeError("Wasm module is not the vdisk kernel: it lacks its memory");
  return wrapExports(exports as unknown as KernelExports);
}

function wrapExports(wasm: KernelExports): WasmKernel {
  // The memory never grows, so this ArrayBuffer and every view of it stay attached.
  const heap = wasm.memory.buffer;
  const ts = tsKernel;
  return {
    kind: "wasm",
    arenaBytes: wasm.arenaBytes() >>> 0,
    arenaBytesInUse: () => wasm.arenaBytesInUse() >>> 0,
    ownsBuffer: (buf) => buf.buffer === heap,

    findNonZero(buf, from, to) {
      if (buf.buffer !== heap) return ts.findNonZero(buf, from, to);
      if (from >= to) return to;
      checkRange("buffer length", buf.length, from, to);
      const base = buf.byteOffset;
      return (wasm.findNonZero(base + from, base + to) >>> 0) - base;
    },

    granuleRunEnd(buf, from, to, granule) {
      if (buf.buffer !== heap) return ts.granuleRunEnd(buf, from, to, granule);
      checkGranule(granule);
      if (from >= to) return from;
      checkRange("buffer length", buf.length, from, to);
      const base = buf.byteOffset;
      // A granule at least as long as the range behaves as one covering it; this keeps it in u32.
      const g = Math.min(granule, to - from);
      return (wasm.granuleRunEnd(base + from, base + to, g) >>> 0) - base;
    },

    nextSetBit(bits, from, to, msbFirst) {
      if (bits.buffer !== heap) return ts.nextSetBit(bits, from, to, msbFirst);
      if (from >= to) return to;
      checkRange("bitmap length in bits", bits.length * 8, from, to);
      return wasm.nextSetBit(bits.byteOffset, from, to, msbFirst ? 1 : 0) >>> 0;
    },

    nextClearBit(bits, from, to, msbFirst) {
      if (bits.buffer !== heap) return ts.nextClearBit(bits, from, to, msbFirst);
      if (from >= to) return to;
      checkRange("bitmap length in bits", bits.length * 8, from, to);
      return wasm.nextClearBit(bits.byteOffset, from, to, msbFirst ? 1 : 0) >>> 0;
    },

    tableRunLength(table, first, end, stride, classMaskHi, classMaskLo, offsetMaskHi, offsetMaskLo, step) {
      if (table.buffer !== heap) {
        return ts.tableRunLength(table, first, end, stride, classMaskHi, classMaskLo, offsetMaskHi, offsetMaskLo, step);
      }
      if (first >= end) return 0;
      checkTable(table.length, first, end, stride, step);
      return wasm.tableRunLength(table.byteOffset, first, end, stride, classMaskHi, classMaskLo, offsetMaskHi, offsetMaskLo, step) >>> 0;
    },

    crc32c(data, crc = 0) {
      if (data.buffer !== heap) return ts.crc32c(data, crc);
      return wasm.crc32c(data.byteOffset, data.length, crc) >>> 0;
    },

    allocBuffer(size) {
      checkSize(size);
      const ptr = size === 0 || size > 0xffffffff ? 0 : wasm.alloc(size) >>> 0;
      // An exhausted arena degrades to a plain buffer, which the kernel scans with the TS twin.
      return ptr === 0 ? new Uint8Array(size) : new Uint8Array(heap, ptr, size);
    },

    freeBuffer(buf) {
      if (buf.buffer !== heap || buf.length === 0) return;
      if (wasm.free(buf.byteOffset) === 0) {
        throw new RangeError(`Cannot free kernel buffer at ${buf.byteOffset}: it was not returned by allocBuffer or is already free`);
      }
    },
  };
}

/**
 * Chooses the kernel: the Wasm one once loaded, else the TS twin.
 * @module
 */
import type { Kernel } from "./kernel.js";
import { tsKernel } from "./ts-kernel.js";
import { instantiateWasmKernel, type KernelModule } from "./wasm-kernel.js";

let chosen: Kernel | undefined;
let loaded: Kernel | undefined;
let loading: Promise<Kernel> | undefined;

/**
 * The process-wide kernel, loading it on first call: the Wasm kernel, or the TS twin when
 * WebAssembly (with SIMD) is unavailable or fails to instantiate. The result is cached; later
 * calls return the same kernel and ignore `module`. `module` is a precompiled kernel module (from
 * `compileKernelModule`, possibly in another worker) used instead of compiling the embedded bytes.
 * A kernel set with {@link setKernel} takes precedence.
 */
export function loadKernel(module?: KernelModule): Promise<Kernel> {
  if (chosen) return Promise.resolve(chosen);
  loading ??= (typeof WebAssembly === "object" ? instantiateWasmKernel(module) : Promise.reject(new Error("no WebAssembly")))
    .then((k: Kernel) => k, () => tsKernel)
    .then((k) => (loaded = k));
  return loading;
}

/**
 * The process-wide kernel, synchronously: the one set by {@link setKernel}, else the Wasm kernel
 * once {@link loadKernel} has finished, else the TS twin. Never starts loading.
 */
export function getKernel(): Kernel {
  return chosen ?? loaded ?? tsKernel;
}

/**
 * Replaces the process-wide kernel for {@link getKernel} and {@link loadKernel} (tests, callers
 * forcing the TS twin); `undefined` restores the default choice.
 */
export function setKernel(kernel: Kernel | undefined): void {
  chosen = kernel;
}

export type { Kernel } from "./kernel.js";
export { tsKernel } from "./ts-kernel.js";
export {
  compileKernelModule,
  instantiateWasmKernel,
  kernelWasmBytes,
  type KernelModule,
  type WasmKernel,
} from "./wasm-kernel.js";

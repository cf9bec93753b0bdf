/**
 * The runtime-neutral public surface without any format driver: what `api.ts` (every full
 * entry) and `lite.ts` (`vdisk/lite`, formats chosen by the page) share.
 * @module
 */
export * from "./errors.js";
export type { IoBackend, IoCapabilities, FileOpener, OpenFileRequest } from "./io/backend.js";
export { MemoryBackend, type MemoryBackendOptions } from "./io/memory.js";
export { HttpBackend, type HttpBackendOptions, type HttpBackendStats } from "./io/http-backend.js";
export { HttpError, type FetchLike, type HttpRequestInit, type HttpResponseLike } from "./io/http-fetch.js";
export { httpAwareOpener, isHttpUrl } from "./io/http-opener.js";
export {
  JS_COMPRESSION_CODECS,
  compressionCodecs,
  setCompressionCodecs,
  setZstdEncoder,
  type CompressionCodecs,
  type ZstdEncoderLoader,
} from "./codec/compression.js";
export type { AmendCallOptions, BlockDevice, Extent, WriteZeroesOptions } from "./core/block-device.js";
export { READ_ONLY_CAPABILITIES, type DeviceCapabilities } from "./core/capabilities.js";
export { abortReason, throwIfAborted, type OperationOptions, type Progress, type ProgressListener } from "./core/abort.js";
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
  AmendContext,
} from "./core/format.js";
export type { Mapping, DataMapping, ZeroMapping, BackingMapping, SpecialMapping, Allocation } from "./core/mapping.js";
export { ImageDevice, type CopyFromBackingOptions } from "./core/image-device.js";
export type { OpenPolicy } from "./core/policy.js";
export { MAX_BACKING_CHAIN_DEPTH } from "./core/limits.js";
export { parseSize } from "./core/options.js";
// The operations: what the CLI commands do, as library functions on BlockDevices.
export { convertImage, type ConvertOptions, type ConvertStats } from "./ops/convert.js";
export { compareImages, type CompareOptions, type CompareResult } from "./ops/compare.js";
export { checkImage, canCheck, type CheckOptions, type CheckOutcome } from "./ops/check.js";
export { mapImage, type MapEntry, type MapOptions } from "./ops/map.js";
export { imageInfo, describeImage, type ImageInfo, type ImageInfoOptions, type QJson } from "./ops/info.js";
export { resizeImage, resizeTarget, canResize, type ResizeOptions, type ResizeRequest } from "./ops/resize.js";
export { rebaseImage, canRebase, type RebaseOptions } from "./ops/rebase.js";
export { commitImage, backingChain, type CommitOptions, type CommitResult } from "./ops/commit.js";
export { ddImage, ddPlan, type DdOptions, type DdPlan } from "./ops/dd.js";
export { OffsetDevice, type OffsetOptions } from "./filters/offset.js";
export {
  getKernel,
  setKernel,
  loadKernel,
  compileKernelModule,
  tsKernel,
  type Kernel,
  type KernelModule,
} from "./kernel/index.js";

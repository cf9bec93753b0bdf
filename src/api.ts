/**
 * The runtime-neutral public surface. Every runtime entry re-exports this and adds the way
 * it turns a `source` (path, Blob) into an {@link IoBackend}.
 * @module
 */
export * from "./errors.js";
export type { IoBackend, IoCapabilities, FileOpener, OpenFileRequest } from "./io/backend.js";
export { MemoryBackend, type MemoryBackendOptions } from "./io/memory.js";
export {
  JS_COMPRESSION_CODECS,
  compressionCodecs,
  setCompressionCodecs,
  type CompressionCodecs,
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
export {
  openImageOn,
  createImageOn,
  probeFormat,
  readProbeInput,
  type OpenImageOptions,
  type CreateImageOptions,
} from "./ops/open.js";
// The operations: what the CLI commands do, as library functions on BlockDevices.
export { convertImage, type ConvertOptions, type ConvertStats } from "./ops/convert.js";
export { compareImages, type CompareOptions, type CompareResult } from "./ops/compare.js";
export { checkImage, canCheck, type CheckOptions, type CheckOutcome } from "./ops/check.js";
export { mapImage, type MapEntry, type MapOptions } from "./ops/map.js";
export { imageInfo, describeImage, type ImageInfo, type ImageInfoOptions, type QJson } from "./ops/info.js";
export { resizeImage, resizeTarget, canResize, type ResizeOptions, type ResizeRequest } from "./ops/resize.js";
export { rebaseImage, canRebase, type RebaseOptions } from "./ops/rebase.js";
export { commitImage, backingChain, type CommitOptions, type CommitResult } from "./ops/commit.js";
export { amendImage, amendOptions, type AmendOptions } from "./ops/amend.js";
export { measureImage, type MeasureImageOptions } from "./ops/measure.js";
export type { MeasureInput, MeasureResult, MeasureBitmap, GuestRange } from "./core/measure.js";
export { ddImage, ddPlan, type DdOptions, type DdPlan } from "./ops/dd.js";
export { benchImage, benchParameters, type BenchOptions, type BenchResult } from "./ops/bench.js";
export { OffsetDevice, type OffsetOptions } from "./filters/offset.js";
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
export type {
  SequentialDataRange,
  SequentialOutput,
  SequentialSource,
  SequentialWriteContext,
  SequentialWritePlan,
  SequentialWriter,
} from "./core/sequential-writer.js";
export { deviceStream, type DeviceStreamOptions } from "./core/device-stream.js";
export * from "./streams/index.js";
export {
  NbdServer,
  NbdClient,
  NbdBackend,
  startNbdServer,
  isNbdUrl,
  nbdUrl,
  parseNbdUrl,
  NBD_DEFAULT_PORT,
  NBD_MAX_PAYLOAD,
  type NbdServerOptions,
  type NbdExportSpec,
  type NbdBlockSizes,
  type NbdExportInfo,
  type NbdBackendOptions,
  type NbdAddress,
  type NbdConnect,
  type NbdListen,
  type NbdListener,
  type NbdSocket,
  type NbdTarget,
  type NbdServeOptions,
  type NbdServerHandle,
  type NbdExportInput,
} from "./nbd/index.js";

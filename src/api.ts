/**
 * The runtime-neutral public surface. Every runtime entry re-exports this and adds the way
 * it turns a `source` (path, Blob) into an {@link IoBackend}.
 * @module
 */
export * from "./api-core.js";
export {
  openImageOn,
  createImageOn,
  probeFormat,
  readProbeInput,
  type OpenImageOptions,
  type CreateImageOptions,
} from "./ops/open.js";
export { amendImage, amendOptions, type AmendOptions } from "./ops/amend.js";
export { measureImage, type MeasureImageOptions } from "./ops/measure.js";
export type { MeasureInput, MeasureResult, MeasureBitmap, GuestRange } from "./core/measure.js";
export { benchImage, benchParameters, type BenchOptions, type BenchResult } from "./ops/bench.js";
export { builtinDrivers, findDriver } from "./formats/registry.js";
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
